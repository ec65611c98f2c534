"""The inline SQLite driver: statements run on the loop, but never wait there for a lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import text

from bot.database import Database, create_engine


def wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_busy_database_waits_in_a_thread_not_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    database = Database(create_engine(f"sqlite+aiosqlite:///{path}"))
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE t (x INTEGER)"))
    # Another process (here: a thread with its own connection) holds the write lock a while.
    other = sqlite3.connect(path, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    released = threading.Event()

    def release_later() -> None:
        time.sleep(0.4)
        other.commit()
        released.set()

    threading.Thread(target=release_later).start()
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while not released.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    beating = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    async with database.transaction() as session:
        await session.execute(text("INSERT INTO t VALUES (2)"))
    waited = time.perf_counter() - started
    await beating
    other.close()
    assert waited >= 0.3  # it really waited for the other writer…
    assert ticks >= 15  # …while the event loop kept serving others
    async with database.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 2
    await database.close()


async def test_rollback_leaves_nothing_and_checkpoint_truncates_wal(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    database = Database(create_engine(f"sqlite+aiosqlite:///{path}"))
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
    try:
        async with database.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("step failed")
    except RuntimeError:
        pass
    async with database.transaction() as session:
        for i in range(200):
            await session.execute(text("INSERT INTO t VALUES (:i)"), {"i": i + 10})
    async with database.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM t WHERE x = 1"))).scalar() == 0
    assert wal_size(path) > 0
    await database.close()  # a TRUNCATE checkpoint folds the WAL into the database file
    assert wal_size(path) == 0
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (200,)


async def test_results_can_be_fetched_in_batches_and_partitions(tmp_path: Path) -> None:
    """fetchmany() without a size and partitions() read the cursor's arraysize, which the
    inline cursor keeps itself (the base class would ask a sqlite3 cursor it never opens)."""
    database = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'batches.db'}"))
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1), (2), (3)"))
        async with database.sessions() as session:
            result = await session.execute(text("SELECT x FROM t ORDER BY x"))
            assert [tuple(r) for r in result.fetchmany()] == [(1,)]
            result = await session.execute(text("SELECT x FROM t ORDER BY x"))
            assert [[tuple(r) for r in p] for p in result.partitions(2)] == [[(1,), (2,)], [(3,)]]
    finally:
        await database.close()
