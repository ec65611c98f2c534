"""Durable buttons for one person, such as an approval card, checked when pressed."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import ActionTicket

# How long a card's buttons work, unless its kind says (the use case checks again anyway).
LIFETIME = timedelta(days=14)


async def issue(
    session: AsyncSession,
    *,
    person_id: int | None,
    kind: str,
    subject_id: int,
    choices: list[str],
    now: datetime,
    lifetime: timedelta | None = LIFETIME,
    chat: tuple[str, str] | None = None,
) -> ActionTicket:
    """Buttons for one person, or (person_id None) a shared card's, for anyone in `chat`.
    Choices are numbered from 1, as every option is."""
    assert (person_id is None) == (chat is not None), "a ticket is for a person or a chat"
    ticket = ActionTicket(
        token=secrets.token_urlsafe(9),
        person_id=person_id,
        channel=chat[0] if chat else None,
        chat_id=chat[1] if chat else None,
        kind=kind,
        subject_id=subject_id,
        choices={str(n): value for n, value in enumerate(choices, 1)},
        expires_at=now + lifetime if lifetime else None,
        created_at=now,
    )
    session.add(ticket)
    await session.flush()
    return ticket


async def shared(
    session: AsyncSession,
    *,
    kind: str,
    subject_id: int,
    choices: list[str],
    chat: tuple[str, str],
    now: datetime,
    lifetime: timedelta,
) -> ActionTicket:
    """A shared card's buttons in `chat`, the same each time the card is shown again (a
    group's poll card edited with its turnout keeps its buttons): issued once, while valid."""
    found = await session.scalar(
        select(ActionTicket)
        .where(
            ActionTicket.kind == kind,
            ActionTicket.subject_id == subject_id,
            ActionTicket.person_id.is_(None),
            ActionTicket.channel == chat[0],
            ActionTicket.chat_id == chat[1],
            ActionTicket.used_at.is_(None),
            ActionTicket.expires_at > now,
        )
        .order_by(ActionTicket.id.desc())
        .limit(1)
    )
    wanted = {str(n): value for n, value in enumerate(choices, 1)}
    if found is not None and found.choices == wanted:
        return found
    return await issue(
        session,
        person_id=None,
        kind=kind,
        subject_id=subject_id,
        choices=choices,
        now=now,
        lifetime=lifetime,
        chat=chat,
    )


async def find(session: AsyncSession, token: str) -> ActionTicket | None:
    return await session.scalar(select(ActionTicket).where(ActionTicket.token == token))


async def spend(session: AsyncSession, ticket_id: int, now: datetime) -> bool:
    """Mark used exactly once; a second press (or a second worker) gets False."""
    result = await session.execute(
        update(ActionTicket)
        .where(ActionTicket.id == ticket_id, ActionTicket.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def retire_for_subject(
    session: AsyncSession, kind: str, subject_id: int, now: datetime
) -> None:
    """Once one person decides, the same card on everyone else's phone goes stale.

    A ticket that another transaction is spending right now is skipped (SKIP LOCKED): it is
    being used up anyway, and waiting for it while holding the subject could deadlock with its
    presser, who waits for the subject in turn.
    """
    unused = (
        select(ActionTicket.id)
        .where(
            ActionTicket.kind == kind,
            ActionTicket.subject_id == subject_id,
            ActionTicket.used_at.is_(None),
        )
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        update(ActionTicket).where(ActionTicket.id.in_(unused)).values(used_at=now)
    )
