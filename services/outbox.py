"""Messages to other people, written with the change that caused them and sent after commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models import Identity, OutboxMessage, Person
from services.sql import is_postgres

MAX_ATTEMPTS = 5
# A row claimed by a worker that died is offered again after this long.
CLAIM_TIMEOUT = timedelta(minutes=2)


def enqueue(session: AsyncSession, person_id: int, payload: dict[str, Any], now: datetime) -> None:
    session.add(OutboxMessage(person_id=person_id, payload=payload, created_at=now))


@dataclass(frozen=True)
class Delivery:
    message_id: int
    payload: dict[str, Any]
    identities: tuple[tuple[str, str], ...]  # (channel, private chat id), best first


async def claim(session: AsyncSession, now: datetime, limit: int = 50) -> list[Delivery]:
    """Take due rows for sending; on Postgres other workers skip what this one holds."""
    query = (
        select(OutboxMessage)
        .where(
            or_(
                OutboxMessage.status == "pending",
                (OutboxMessage.status == "sending") & (OutboxMessage.sent_at < now - CLAIM_TIMEOUT),
            )
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
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
        identities: list[Identity] = [
            i for i in people[row.person_id].identities if i.private_chat_id is not None
        ]
        deliveries.append(
            Delivery(
                row.id,
                row.payload,
                tuple((i.channel, i.private_chat_id or "") for i in identities),
            )
        )
    return deliveries


async def settle(
    session: AsyncSession, message_id: int, status: str, now: datetime, error: str | None = None
) -> None:
    """status: sent | unreachable | blocked | failed; a failure with attempts left is retried."""
    final = status
    if status == "failed":
        final = case((OutboxMessage.attempts < MAX_ATTEMPTS, "pending"), else_="failed")
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status=final, sent_at=now, last_error=error[:500] if error else None)
    )
