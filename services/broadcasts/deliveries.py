"""A broadcast's delivery rows: claimed by one dispatcher at a time (`FOR UPDATE SKIP LOCKED`
on PostgreSQL, so several processes share the work; SQLite has one writer), settled one by one
right after each send, and counted.

A row is marked sent in its own transaction as soon as it went out, and claims are small, so a
crash can send twice only the rows that were in flight: those claimed and not yet settled are
offered again after `reclaim_after` (configuration): far longer than a batch takes to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Broadcast, BroadcastAck, BroadcastDelivery
from services import groups, people
from services.broadcasts.compose import DONE, SENDING
from services.sql import is_postgres

QUEUED, IN_FLIGHT, SENT, UNREACHABLE, FAILED = "queued", "sending", "sent", "unreachable", "failed"
MAX_ATTEMPTS = 5
RECLAIM_AFTER = timedelta(minutes=1)
BACKOFF = timedelta(seconds=10)
MAX_BACKOFF = timedelta(minutes=15)


@dataclass(frozen=True)
class Claimed:
    id: int
    broadcast_id: int
    person_id: int | None
    group_chat_id: int | None
    channel: str
    chat_id: str
    locale: str
    round: int


def _within(reach: Mapping[str, frozenset[str] | None]) -> ColumnElement[bool]:
    """Rows this process can send: every chat of a channel it runs (None), or only some (a
    console reaches the person at its keyboard)."""
    return or_(
        false(),
        *(
            BroadcastDelivery.channel == channel
            if chats is None
            else and_(
                BroadcastDelivery.channel == channel, BroadcastDelivery.chat_id.in_(sorted(chats))
            )
            for channel, chats in reach.items()
        ),
    )


async def claim(
    session: AsyncSession,
    now: datetime,
    *,
    reach: Mapping[str, frozenset[str] | None],
    limit: int = 8,
    reclaim_after: timedelta = RECLAIM_AFTER,
) -> list[Claimed]:
    """Up to `limit` due rows this process can send (`reach`), oldest first, marked in
    flight."""
    query = (
        select(BroadcastDelivery)
        .where(
            _within(reach),
            or_(
                (BroadcastDelivery.status == QUEUED)
                & or_(
                    BroadcastDelivery.next_attempt_at.is_(None),
                    BroadcastDelivery.next_attempt_at <= now,
                ),
                (BroadcastDelivery.status == IN_FLIGHT)
                & (BroadcastDelivery.claimed_at < now - reclaim_after),
            ),
        )
        .order_by(BroadcastDelivery.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    rows = list((await session.scalars(query)).all())
    for row in rows:
        row.status, row.claimed_at, row.attempts = IN_FLIGHT, now, row.attempts + 1
    return [
        Claimed(
            r.id,
            r.broadcast_id,
            r.person_id,
            r.group_chat_id,
            r.channel,
            r.chat_id,
            r.locale,
            r.round,
        )
        for r in rows
    ]


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


async def settle(
    session: AsyncSession,
    delivery_id: int,
    status: str,
    now: datetime,
    *,
    error: str | None = None,
    retry_at: datetime | None = None,
    via: str | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    lasting: bool = True,
) -> None:
    """status: sent | unreachable | failed | deferred (a 429: queued again at `retry_at`, the
    attempt given back). A failure with attempts left (of `max_attempts`) is queued again
    after a back-off. An
    unreachable private chat is marked so on the person's identity until they write again (when
    `lasting`: a block, not a message that cannot go now); an unreachable group is one the bot
    is out of."""
    row = await session.get(BroadcastDelivery, delivery_id, populate_existing=True)
    if row is None or row.status != IN_FLIGHT:
        return  # settled by whoever claimed it after a timeout
    row.last_error = error[:300] if error else None
    row.next_attempt_at = None
    if status == SENT:
        row.status, row.sent_at, row.via = SENT, now, via or row.channel
    elif status == "deferred":
        assert retry_at is not None
        row.status, row.next_attempt_at = QUEUED, retry_at
        row.attempts = max(row.attempts - 1, 0)
    elif status == FAILED and row.attempts < max_attempts:
        row.status, row.next_attempt_at = QUEUED, now + backoff(row.attempts)
    else:
        row.status = status
        if status == UNREACHABLE and lasting:
            if row.group_chat_id is not None:
                await groups.gone(session, row.group_chat_id, now)
            else:
                await people.unreachable(session, row.channel, row.chat_id)


async def finish_if_done(session: AsyncSession, broadcast_id: int, now: datetime) -> bool:
    """Nothing queued or in flight any more: the broadcast is done, once (True for the caller
    that finished it, who shows the final report)."""
    left = await session.scalar(
        select(func.count())
        .select_from(BroadcastDelivery)
        .where(
            BroadcastDelivery.broadcast_id == broadcast_id,
            BroadcastDelivery.status.in_((QUEUED, IN_FLIGHT)),
        )
    )
    if left:
        return False
    done = await session.scalar(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == SENDING)
        .values(status=DONE, finished_at=now)
        .returning(Broadcast.id)
    )
    return done is not None


@dataclass
class Counts:
    """How a broadcast is going: queued (waiting or in flight), delivered, unreachable, failed
    and acknowledged, in all and per channel (WeChat split by how it went: inside the window
    or by template)."""

    queued: int = 0
    delivered: int = 0
    unreachable: int = 0
    failed: int = 0
    acknowledged: int = 0
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.queued + self.delivered + self.unreachable + self.failed


_BUCKET = {QUEUED: "queued", IN_FLIGHT: "queued", SENT: "delivered"}


async def counts(session: AsyncSession, broadcast_id: int) -> Counts:
    found = Counts()
    rows = await session.execute(
        select(
            BroadcastDelivery.channel,
            BroadcastDelivery.via,
            BroadcastDelivery.status,
            func.count(),
        )
        .where(BroadcastDelivery.broadcast_id == broadcast_id, BroadcastDelivery.round == 0)
        .group_by(BroadcastDelivery.channel, BroadcastDelivery.via, BroadcastDelivery.status)
    )
    for channel, via, status, n in rows.all():
        bucket = _BUCKET.get(status, status)
        setattr(found, bucket, getattr(found, bucket) + n)
        where = via if bucket == "delivered" and via else channel
        per = found.by_channel.setdefault(where, {})
        per[bucket] = per.get(bucket, 0) + n
    found.acknowledged = int(
        await session.scalar(
            select(func.count())
            .select_from(BroadcastAck)
            .where(BroadcastAck.broadcast_id == broadcast_id)
        )
        or 0
    )
    return found
