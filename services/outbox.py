"""Messages to other people, written with the change that caused them and sent after commit.

A row goes to a person (through whichever private chat reaches them) or to a group chat. A
group's card (a poll with its turnout) has one row per group: each change rewrites it, so
votes arriving together make one edit, and a card is edited at most every CARD_INTERVAL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models import GroupChat, Identity, OutboxMessage, Person
from services import groups
from services.sql import insert_ignoring_conflict, is_postgres

MAX_ATTEMPTS = 5
# A row claimed by a worker that died is offered again after this long.
CLAIM_TIMEOUT = timedelta(minutes=2)
# After a failed attempt n the row waits BACKOFF * 2^(n-1), at most MAX_BACKOFF.
BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(minutes=10)
# A group's card is edited at most this often: Telegram allows a group 20 messages a minute,
# and a burst of votes is one edit.
CARD_INTERVAL = timedelta(seconds=5)
# Rows whose target can't take them any more: a later change of their card adds nothing.
SETTLED_FOR_GOOD = ("blocked", "unreachable")


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


# What a private message's row keeps once it is sent, or will never be.
DONE_WITH: dict[str, Any] = {"kept": False}


def enqueue(session: AsyncSession, person_id: int, payload: dict[str, Any], now: datetime) -> None:
    session.add(OutboxMessage(person_id=person_id, payload=payload, created_at=now))


def enqueue_group(
    session: AsyncSession, group_chat_id: int, payload: dict[str, Any], now: datetime
) -> None:
    """A message to a group chat (results, an announcement): one row, sent once."""
    session.add(OutboxMessage(group_chat_id=group_chat_id, payload=payload, created_at=now))


async def enqueue_card(
    session: AsyncSession,
    group_chat_id: int,
    card_key: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    """The group's card `card_key` as it should read now. Its one row is rewritten: while it
    waits, the newer version replaces the older (one edit for many changes); once sent, it
    waits again, at least CARD_INTERVAL after the last send; while it is being sent, `settle`
    sees that it changed and sends it again. A group that can't take it gets nothing.

    The caller holds the card's subject (a poll's row), so two changes don't race here; an
    insert that loses a race anyway retries as the update it should have been.
    """
    for _ in range(2):
        query = select(OutboxMessage).where(
            OutboxMessage.group_chat_id == group_chat_id, OutboxMessage.card_key == card_key
        )
        if is_postgres(session):
            query = query.with_for_update()
        row = await session.scalar(query.execution_options(populate_existing=True))
        if row is not None:
            _rewrite(row, payload, now)
            return
        inserted = await insert_ignoring_conflict(
            session,
            OutboxMessage.__table__,  # type: ignore[arg-type]
            {
                "group_chat_id": group_chat_id,
                "card_key": card_key,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
            },
        )
        if inserted:
            return


def _rewrite(row: OutboxMessage, payload: dict[str, Any], now: datetime) -> None:
    if row.status in SETTLED_FOR_GOOD:
        return
    row.payload = payload
    if row.status in ("sent", "failed"):
        row.status, row.attempts, row.last_error = "pending", 0, None
        due = row.sent_at + CARD_INTERVAL if row.sent_at is not None else now
        row.next_attempt_at = due if due > now else None
    # "pending" keeps its time (coalesced); "sending" is sent again by `settle`.


async def card_groups(session: AsyncSession, card_key: str) -> list[int]:
    """The groups (ids) showing this card, or about to, and still able to take it."""
    return list(
        (
            await session.scalars(
                select(OutboxMessage.group_chat_id)
                .join(GroupChat, GroupChat.id == OutboxMessage.group_chat_id)
                .where(
                    OutboxMessage.card_key == card_key,
                    OutboxMessage.status.not_in(SETTLED_FOR_GOOD),
                    GroupChat.left_at.is_(None),
                )
                .order_by(OutboxMessage.group_chat_id)
            )
        ).all()
    )


@dataclass(frozen=True)
class Delivery:
    message_id: int
    payload: dict[str, Any]
    # (channel, chat id), best first: a person's private chats, or the group's chat (none
    # when the bot has left the group).
    identities: tuple[tuple[str, str], ...]
    group_chat_id: int | None = None


# What a process can deliver to, by channel: None is every chat of the channel (Telegram), a
# set is just those chats (a console reaches the one person at its keyboard).
Reach = Mapping[str, frozenset[str] | None]


def _deliverable(reach: Reach) -> ColumnElement[bool]:
    """The row's person can be reached through `reach`, or through no private chat at all;
    or its group chat is on a channel in `reach`, or the bot has left it.

    Rows for people reachable only through a channel this process doesn't run (another
    person's console) stay pending for the process that can send them; so do a group's rows
    for a process without the group's channel. Rows for people with no private chat anywhere,
    and for groups the bot has left, are taken by anyone, to be settled "unreachable".
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
    group_chats = [
        GroupChat.channel == channel
        if chat_ids is None
        else and_(GroupChat.channel == channel, GroupChat.chat_id.in_(sorted(chat_ids)))
        for channel, chat_ids in reach.items()
    ]
    return or_(
        and_(
            OutboxMessage.person_id.is_not(None),
            or_(exists().where(private, or_(false(), *chats)), ~exists().where(private)),
        ),
        and_(
            OutboxMessage.group_chat_id.is_not(None),
            exists().where(
                GroupChat.id == OutboxMessage.group_chat_id,
                or_(GroupChat.left_at.is_not(None), *group_chats),
            ),
        ),
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
    person_ids = {r.person_id for r in rows if r.person_id is not None}
    people = (
        {
            p.id: p
            for p in (
                await session.scalars(
                    select(Person)
                    .where(Person.id.in_(person_ids))
                    .options(selectinload(Person.identities))
                )
            ).all()
        }
        if person_ids
        else {}
    )
    group_ids = {r.group_chat_id for r in rows if r.group_chat_id is not None}
    chats = (
        {
            g.id: g
            for g in (await session.scalars(select(GroupChat).where(GroupChat.id.in_(group_ids))))
        }
        if group_ids
        else {}
    )
    deliveries = []
    for row in rows:
        # sent_at doubles as the claim time while the row is "sending".
        row.status, row.sent_at, row.attempts = "sending", now, row.attempts + 1
        if row.group_chat_id is not None:
            group = chats[row.group_chat_id]
            where = () if group.left_at is not None else ((group.channel, group.chat_id),)
            deliveries.append(Delivery(row.id, row.payload, where, row.group_chat_id))
            continue
        assert row.person_id is not None
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
    payload: dict[str, Any] | None = None,
) -> None:
    """status: sent | unreachable | blocked | failed | deferred.

    - failed: with attempts left, pending again after the back-off; otherwise failed for good.
    - deferred (a 429, or the channel is waiting one out): pending again at `retry_at`, and
      the attempt that the claim counted is given back.
    - sent, of a group's card that changed meanwhile (`payload` is what went out): pending
      again, to show its newer version after CARD_INTERVAL.
    - blocked, of a group chat: the bot is out of the group, which gets nothing more.

    The row is locked first: a change to a card waits, and is seen here, rather than lost.
    """
    row = await session.get(
        OutboxMessage, message_id, populate_existing=True, with_for_update=is_postgres(session)
    )
    if row is None:
        return
    row.last_error = error[:500] if error else None
    row.sent_at = now
    row.next_attempt_at = None
    if status == "sent" and row.card_key is not None and payload is not None:
        if row.payload != payload:
            row.status, row.attempts = "pending", 0
            row.next_attempt_at = now + CARD_INTERVAL
            return
    if status == "blocked" and row.group_chat_id is not None:
        await groups.gone(session, row.group_chat_id, now)
    if status == "deferred":
        assert retry_at is not None
        row.status, row.next_attempt_at = "pending", retry_at
        row.attempts = max(row.attempts - 1, 0)
    elif status == "failed" and row.attempts < MAX_ATTEMPTS:
        row.status, row.next_attempt_at = "pending", now + backoff(row.attempts)
    else:
        row.status = status
        if row.person_id is not None:
            # A private message is not kept once it is done with: it may quote a receipt of
            # an anonymous ballot, which beside the person would say who chose what.
            row.payload = DONE_WITH
