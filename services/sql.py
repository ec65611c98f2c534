"""The few statements whose spelling differs between SQLite and Postgres."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_ignoring_conflict(
    session: AsyncSession, table: Table, values: dict[str, Any]
) -> bool:
    """Insert unless a unique key already holds the row; True when this call inserted it.

    The database decides, not a check in Python, so two workers racing on one key cannot both win.
    """
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(insert(table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)  # type: ignore[attr-defined]


def is_postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"
