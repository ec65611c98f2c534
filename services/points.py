"""Participation points. Until the double-entry ledger lands, awards are recorded as pending.

A pending award is a promise, not a balance: the ledger issue settles each row into a transfer
with the same idempotency key, so nothing is paid twice and no balance is made up meanwhile.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from models import PendingAward
from services.sql import insert_ignoring_conflict


async def award_pending(
    session: AsyncSession, person_id: int, points: int, *, reason: str, key: str, now: datetime
) -> bool:
    """True when this award is new; the same key twice (a retried update) awards once."""
    if points <= 0:
        return False
    return await insert_ignoring_conflict(
        session,
        PendingAward.__table__,  # type: ignore[arg-type]
        {
            "person_id": person_id,
            "points": points,
            "reason": reason,
            "idempotency_key": key,
            "created_at": now,
        },
    )


async def withdraw_pending(session: AsyncSession, key: str) -> bool:
    """Take back an award the ledger has not settled yet (an accepted report later rejected)."""
    result = await session.execute(
        delete(PendingAward).where(
            PendingAward.idempotency_key == key, PendingAward.settled_at.is_(None)
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
