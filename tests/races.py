"""Forcing one interleaving of concurrent transactions on PostgreSQL, deterministically.

A third connection (the `Blocker`) holds a lock that the contenders need. They are started one
after the other, each only once the database shows everyone before it waiting for a lock, and
then the lock is released. PostgreSQL queues waiters for a row first come, first served, so the
order they were started in is the order they get through. Nothing sleeps and hopes: the test
polls the database for the condition it needs (`until_waiting`).

Two ways to hold the contenders back:
- `hold_row`: the row they are about to lock (both wait for the blocker), or `hold_advisory`,
  an advisory lock (a ballot's commit waits on its poll's, see services/voting/polls.py);
- `hold_writes`: a table the first contender writes to after locking its row, so it stays in
  the middle of its move, holding the row, while the second one arrives (or, when the second
  one never waits because it skips locked rows, while it runs to the end).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg

T = TypeVar("T")
PATIENCE = 30  # seconds: far beyond what a waiting contender needs to show up
WAITING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
"""


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL of the test database as asyncpg wants it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class Blocker:
    def __init__(self, url: str) -> None:
        self.dsn = asyncpg_dsn(url)
        self.tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Self:
        self.holder = await asyncpg.connect(self.dsn)
        self.watcher = await asyncpg.connect(self.dsn)
        self.transaction = self.holder.transaction()
        await self.transaction.start()
        self.held = True
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.release()
        for task in self.tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.holder.close()
        await self.watcher.close()

    async def hold_row(self, table: str, row_id: int) -> None:
        found = await self.holder.fetchval(
            f'SELECT id FROM "{table}" WHERE id = $1 FOR UPDATE', row_id
        )
        assert found == row_id, f"no row {row_id} in {table}"

    async def hold_advisory(self, first: int, second: int) -> None:
        """A transaction-level advisory lock (a poll's log: a ballot's commit waits for it)."""
        await self.holder.execute("SELECT pg_advisory_xact_lock($1, $2)", first, second)

    async def hold_writes(self, table: str) -> None:
        """Reads go on; the first INSERT, UPDATE or DELETE on `table` waits."""
        await self.holder.execute(f'LOCK TABLE "{table}" IN SHARE MODE')

    async def release(self) -> None:
        if self.held:
            self.held = False
            await self.transaction.rollback()

    async def waiting(self) -> int:
        return int(await self.watcher.fetchval(WAITING))

    async def until_waiting(self, count: int) -> None:
        """Poll until `count` other sessions wait for a lock. A contender that ends instead
        (it did not need the lock, or failed) stops the test at once with what it returned."""
        async with asyncio.timeout(PATIENCE):
            while await self.waiting() < count:
                for task in self.tasks:
                    if task.done():
                        raise AssertionError(
                            f"a contender ended instead of waiting: {task.result()!r}"
                        )
                await asyncio.sleep(0.005)

    def start(self, contender: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(contender)
        self.tasks.append(task)
        return task

    async def queue(self, *contenders: Coroutine[Any, Any, T]) -> list[asyncio.Task[T]]:
        """Start the contenders in this order, each once all before it wait; they are let
        through in the same order when the blocker releases."""
        started = []
        for contender in contenders:
            started.append(self.start(contender))
            await self.until_waiting(len(started))
        return started
