"""Incoming duplicates: each platform update key is handled once (DESIGN.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import ProcessedUpdate
from services.sql import insert_ignoring


def claim(connection: Connection, channel: str, key: str, now: datetime) -> bool:
    """True for the first delivery; the claim commits or rolls back with the handling itself."""
    return insert_ignoring(
        connection,
        ProcessedUpdate.__table__,  # type: ignore[arg-type]
        {"channel": channel, "key": key, "received_at": now},
    )


async def seen(session: AsyncSession, channel: str, key: str) -> bool:
    """Handled already (a redelivery): a read, the claim itself stays with the handling."""
    found = await session.scalar(
        select(ProcessedUpdate.key).where(
            ProcessedUpdate.channel == channel, ProcessedUpdate.key == key
        )
    )
    return found is not None


async def prune(session: AsyncSession, older_than: datetime) -> int:
    """Platforms stop redelivering within a day; keeping a week of keys is plenty."""
    result = await session.execute(
        delete(ProcessedUpdate).where(ProcessedUpdate.received_at < older_than)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
