"""The few statements whose spelling differs between SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import Connection, Executable, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

# Opens one write transaction (commit on exit, rollback on error). The database layer decides
# how: on SQLite it also queues writers in-process, so they never sleep in SQLite's busy handler.
Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]

_INSERT_IGNORING: dict[tuple[str, str], Executable] = {}


def insert_ignoring(connection: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert unless a unique key already holds the row; True when this call inserted it.

    The database decides, not a check in Python, so two workers racing on one key cannot both win.
    The statement is built once per table and dialect: this runs for every update.
    """
    dialect = connection.dialect.name
    statement = _INSERT_IGNORING.get((table.name, dialect))
    if statement is None:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(table).on_conflict_do_nothing()
        _INSERT_IGNORING[(table.name, dialect)] = statement
    return bool(connection.execute(statement, values).rowcount)


_UPSERT: dict[tuple[str, str, tuple[str, ...]], Executable] = {}


def upsert(
    connection: Connection, table: Table, values: dict[str, Any], update: tuple[str, ...]
) -> None:
    """Insert, or overwrite the `update` columns of the row that holds the same primary key."""
    dialect = connection.dialect.name
    cache_key = (table.name, dialect, update)
    statement = _UPSERT.get(cache_key)
    if statement is None:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        base = insert(table)
        statement = base.on_conflict_do_update(
            index_elements=[c.name for c in table.primary_key.columns],
            set_={name: base.excluded[name] for name in update},
        )
        _UPSERT[cache_key] = statement
    connection.execute(statement, values)


async def insert_ignoring_conflict(
    session: AsyncSession, table: Table, values: dict[str, Any]
) -> bool:
    return await session.run_sync(lambda s: insert_ignoring(s.connection(), table, values))


def is_postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"
