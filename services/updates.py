"""Incoming duplicates: each platform update key is handled once (DESIGN.md).

An update is looked up when it arrives and claimed when its transaction ends, in the same
INSERT that keeps its replies (services/replies.py). Two workers handling one update at once
both do the work, but only one claim commits: the other finds the key taken, raises
`AlreadyHandled`, and rolls back everything it did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import ProcessedUpdate
from services.sql import insert_ignoring

_SEEN = select(ProcessedUpdate.key).where(
    ProcessedUpdate.channel == bindparam("channel"), ProcessedUpdate.key == bindparam("key")
)


class AlreadyHandled(Exception):
    """Another delivery of this update committed first; this one must change nothing."""


def handled(connection: Connection, channel: str, key: str) -> bool:
    return connection.execute(_SEEN, {"channel": channel, "key": key}).first() is not None


async def seen(session: AsyncSession, channel: str, key: str) -> bool:
    return await session.run_sync(lambda sync: handled(sync.connection(), channel, key))


def claim(
    connection: Connection,
    channel: str,
    key: str,
    now: datetime,
    *,
    chat_id: str,
    replies: list[dict[str, Any]] | None,
) -> None:
    """At the end of the update's transaction: the key, and the replies to send (if any)."""
    claimed = insert_ignoring(
        connection,
        ProcessedUpdate.__table__,  # type: ignore[arg-type]
        {
            "channel": channel,
            "key": key,
            "received_at": now,
            "chat_id": chat_id,
            "replies": replies,
        },
    )
    if not claimed:
        raise AlreadyHandled


async def prune(session: AsyncSession, older_than: datetime) -> int:
    """Platforms stop redelivering within a day; keeping a week of keys is plenty."""
    result = await session.execute(
        delete(ProcessedUpdate).where(ProcessedUpdate.received_at < older_than)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
