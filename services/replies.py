"""Replies are at-least-once (DESIGN.md "Incoming duplicates").

The replies to an update are written with the update's own transaction and forgotten once the
channel has sent them. A crash between the commit and the send leaves them here: a redelivery
of the update sends them again instead of being dropped as a duplicate, and the tick sends
what a dead process left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from models import PendingReply
from services.sql import is_postgres

_TABLE = PendingReply.__table__
_INSERT = insert(_TABLE)


def keep(
    connection: Connection,
    *,
    channel: str,
    key: str,
    chat_id: str,
    messages: list[dict[str, Any]],
    now: datetime,
) -> None:
    connection.execute(
        _INSERT,
        {
            "channel": channel,
            "key": key,
            "chat_id": chat_id,
            "messages": messages,
            "created_at": now,
        },
    )


async def kept(session: AsyncSession, channel: str, key: str) -> list[dict[str, Any]] | None:
    """The replies of an update that may not have gone out, or None."""
    return await session.scalar(
        select(PendingReply.messages).where(
            PendingReply.channel == channel, PendingReply.key == key
        )
    )


async def forget(session: AsyncSession, keys: Sequence[tuple[str, str]]) -> None:
    """Sent: (channel, key) pairs whose replies reached the platform."""
    if keys:
        await session.execute(
            delete(PendingReply).where(tuple_(PendingReply.channel, PendingReply.key).in_(keys))
        )


async def left_behind(
    session: AsyncSession, before: datetime, limit: int = 50
) -> list[PendingReply]:
    """Replies older than any live sender keeps them: their process died before sending."""
    query = (
        select(PendingReply)
        .where(PendingReply.created_at < before)
        .order_by(PendingReply.created_at)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    return list((await session.scalars(query)).all())
