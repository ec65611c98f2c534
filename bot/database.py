"""Engine construction and migration, the only place that knows SQLite from Postgres."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession  # re-exported for typing

import migrations
from bot.sqlite_driver import InlineDBAPI

log = logging.getLogger("linli.database")
MIGRATIONS_DIR = Path(migrations.__file__).parent
# How long a write waits (in aiosqlite's thread) while another process holds SQLite's lock.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def sqlite_file(url: URL) -> str | None:
    """The file behind a SQLite URL; None for other databases and in-memory ones."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else database


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An engine tuned per DESIGN.md "Scale": SQLite gets WAL and BEGIN IMMEDIATE."""
    common: dict[str, Any] = {
        "echo": echo,
        # Parameters hold names, descriptions and conversation data: never in a log line or
        # in an error's text (DESIGN.md "Security"). Ids in the log find the row.
        "hide_parameters": True,
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No rollback on check-in: as for SQLite below, every transaction has ended by then.
        engine = create_async_engine(
            parsed,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            pool_reset_on_return=None,
            **common,
        )
        event.listen(engine.sync_engine, "handle_error", _withhold_row_values)
        return engine
    path = sqlite_file(parsed)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Every transaction ends in an explicit COMMIT or ROLLBACK, so the pool's extra rollback
    # on check-in would be one more statement per update for nothing.
    engine = create_async_engine(
        parsed,
        pool_reset_on_return=None,
        module=InlineDBAPI(patience_ms=SQLITE_BUSY_TIMEOUT_MS),
        **common,
    )
    _tune_sqlite(engine)
    return engine


def _withhold_row_values(context: ExceptionContext) -> None:
    """PostgreSQL's DETAIL quotes the failing row or key ("Failing row contains (…)"), and it
    would reach the log through the error's traceback: drop it, the constraint's name stays."""
    error: BaseException | None = context.original_exception
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, asyncpg.PostgresError):
            error.detail = None  # type: ignore[attr-defined]
        error = error.__cause__ or error.__context__


def _json_dumps(value: object) -> str:
    # orjson keeps Chinese text as UTF-8 and is several times faster than json.dumps.
    return orjson.dumps(value).decode()


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that we can say BEGIN IMMEDIATE:
        # a deferred BEGIN that later writes fails at once with "database is locked".
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Zero: a statement on the event loop must never sleep; see bot/sqlite_driver.py.
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Commits run on the event loop; a checkpoint's fsync must not. Database.checkpoint
        # does that work in a thread instead.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Sent together with the transaction's first statement (see bot/sqlite_driver.py).
        connection.connection.dbapi_connection.begin("BEGIN IMMEDIATE")  # type: ignore[union-attr]


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """The engine, its sessions, and the one way to open a write transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        # SQLite has one writer at a time. Queue our own writers here, in order, instead of
        # letting them poll the file lock: SQLite's busy handler sleeps in growing steps.
        self._writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    async def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the WAL into the database file, in a thread: it ends with an fsync."""
        path = sqlite_file(self.engine.url)
        if path is None:
            return

        def run() -> None:
            connection = sqlite3.connect(path, timeout=5)
            try:
                connection.execute(f"PRAGMA wal_checkpoint({mode})")
            finally:
                connection.close()

        await asyncio.to_thread(run)

    async def keep_checkpointing(self, every_seconds: float = 1.0) -> None:
        """Runs for as long as the bot does; a PASSIVE checkpoint never blocks a writer."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.checkpoint()
            except sqlite3.Error as exc:
                log.warning("checkpoint failed: %s", exc)

    async def close(self) -> None:
        await self.engine.dispose()
        await self.checkpoint("TRUNCATE")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._writer or nullcontext(), self.sessions() as session, session.begin():
            yield session


def alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def is_migrated(engine: AsyncEngine) -> bool:
    """True when the database is at the newest migration, so commands can trust the schema."""
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(current) == head


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade to head on the given engine, inside one transaction where the database allows."""

    def _upgrade(connection: Connection) -> None:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
