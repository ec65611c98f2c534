"""Replies are at-least-once (DESIGN.md "Incoming duplicates").

The replies to an update are kept on its processed_update row, written with the update's own
transaction (services/updates.claim), and forgotten once the channel has sent them. A crash
between the commit and the send leaves them there: a redelivery of the update sends them again
instead of being dropped as a duplicate, and the tick sends what a dead process left behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import ProcessedUpdate


@dataclass(frozen=True)
class Unsent:
    channel: str
    key: str
    chat_id: str
    messages: list[dict[str, Any]]


async def kept(session: AsyncSession, channel: str, key: str) -> list[dict[str, Any]] | None:
    """The replies of a handled update that may not have gone out, or None."""
    return await session.scalar(
        select(ProcessedUpdate.replies).where(
            ProcessedUpdate.channel == channel, ProcessedUpdate.key == key
        )
    )


async def forget(session: AsyncSession, keys: Sequence[tuple[str, str]]) -> None:
    """Sent: (channel, key) pairs whose replies reached the platform.

    One statement per channel, `channel = … AND key IN (…)`: SQLite would scan the whole table
    for a row-value IN over both columns of the primary key.
    """
    by_channel: dict[str, list[str]] = defaultdict(list)
    for channel, key in keys:
        by_channel[channel].append(key)
    for channel, channel_keys in by_channel.items():
        await session.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.channel == channel, ProcessedUpdate.key.in_(channel_keys))
            .values(replies=null())
        )


async def left_behind(session: AsyncSession, before: datetime, limit: int = 50) -> list[Unsent]:
    """Replies older than any live sender keeps them: their process died before sending.

    Only the tick's leader asks (bot/scheduler.py), so no row lock is needed."""
    query = (
        select(
            ProcessedUpdate.channel,
            ProcessedUpdate.key,
            ProcessedUpdate.chat_id,
            ProcessedUpdate.replies,
        )
        .where(ProcessedUpdate.replies.is_not(None), ProcessedUpdate.received_at < before)
        .order_by(ProcessedUpdate.received_at)
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    return [Unsent(r.channel, r.key, r.chat_id or "", r.replies or []) for r in rows]
