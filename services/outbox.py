"""Messages to other people, written with the change that caused them and sent after commit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models import Identity, OutboxMessage, Person
from services.sql import is_postgres

MAX_ATTEMPTS = 5
# A row claimed by a worker that died is offered again after this long.
CLAIM_TIMEOUT = timedelta(minutes=2)
# After a failed attempt n the row waits BACKOFF * 2^(n-1), at most MAX_BACKOFF.
BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(minutes=10)


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


def enqueue(session: AsyncSession, person_id: int, payload: dict[str, Any], now: datetime) -> None:
    session.add(OutboxMessage(person_id=person_id, payload=payload, created_at=now))


@dataclass(frozen=True)
class Delivery:
    message_id: int
    payload: dict[str, Any]
    identities: tuple[tuple[str, str], ...]  # (channel, private chat id), best first


# What a process can deliver to, by channel: None is every chat of the channel (Telegram), a
# set is just those chats (a console reaches the one person at its keyboard).
Reach = Mapping[str, frozenset[str] | None]


def _deliverable(reach: Reach) -> ColumnElement[bool]:
    """The row's person can be reached through `reach`, or through no private chat at all.

    Rows for people reachable only through a channel this process doesn't run (another
    person's console) stay pending for the process that can send them. Rows for people with
    no private chat anywhere are taken by anyone, to be settled "unreachable".
    """
    private = and_(
        Identity.person_id == OutboxMessage.person_id, Identity.private_chat_id.is_not(None)
    )
    chats = [
        Identity.channel == channel
        if chat_ids is None
        else and_(Identity.channel == channel, Identity.private_chat_id.in_(sorted(chat_ids)))
        for channel, chat_ids in reach.items()
    ]
    return or_(
        exists().where(private, or_(false(), *chats)),
        ~exists().where(private),
    )


async def claim(
    session: AsyncSession, now: datetime, limit: int = 50, *, reach: Reach
) -> list[Delivery]:
    """Take due rows this process can deliver (`reach`); on Postgres other workers skip what
    this one holds.

    A pending row is due once its next_attempt_at (a 429's retry_after, or the back-off after
    an error) has passed.
    """
    query = (
        select(OutboxMessage)
        .where(
            or_(
                (OutboxMessage.status == "pending")
                & or_(
                    OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now
                ),
                (OutboxMessage.status == "sending") & (OutboxMessage.sent_at < now - CLAIM_TIMEOUT),
            ),
            _deliverable(reach),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if is_postgres(session):
        # Only the outbox rows are locked: the identities the filter reads stay free.
        query = query.with_for_update(skip_locked=True, of=OutboxMessage)
    rows = list((await session.scalars(query)).all())
    if not rows:
        return []
    people = {
        p.id: p
        for p in (
            await session.scalars(
                select(Person)
                .where(Person.id.in_({r.person_id for r in rows}))
                .options(selectinload(Person.identities))
            )
        ).all()
    }
    deliveries = []
    for row in rows:
        # sent_at doubles as the claim time while the row is "sending".
        row.status, row.sent_at, row.attempts = "sending", now, row.attempts + 1
        person = people[row.person_id]
        # The app they wrote from last first; the others if that one can't reach them.
        identities: list[Identity] = sorted(
            (i for i in person.identities if i.private_chat_id is not None),
            key=lambda i: (i.channel != person.last_channel, i.id),
        )
        deliveries.append(
            Delivery(
                row.id,
                row.payload,
                tuple((i.channel, i.private_chat_id or "") for i in identities),
            )
        )
    return deliveries


async def settle(
    session: AsyncSession,
    message_id: int,
    status: str,
    now: datetime,
    error: str | None = None,
    *,
    retry_at: datetime | None = None,
) -> None:
    """status: sent | unreachable | blocked | failed | deferred.

    - failed: with attempts left, pending again after the back-off; otherwise failed for good.
    - deferred (a 429, or the channel is waiting one out): pending again at `retry_at`, and
      the attempt that the claim counted is given back.
    """
    row = await session.get(OutboxMessage, message_id, populate_existing=True)
    if row is None:
        return
    row.last_error = error[:500] if error else None
    row.sent_at = now
    row.next_attempt_at = None
    if status == "deferred":
        assert retry_at is not None
        row.status, row.next_attempt_at = "pending", retry_at
        row.attempts = max(row.attempts - 1, 0)
    elif status == "failed" and row.attempts < MAX_ATTEMPTS:
        row.status, row.next_attempt_at = "pending", now + backoff(row.attempts)
    else:
        row.status = status
