"""Pending awards: an award recorded in one cheap statement where a use case must stay short
(a ballot, a registration), and before the ledger existed.

A pending award is a promise, not a balance: services/points/awards.py pays each row as the
ledger transfer with the same idempotency key, so nothing is paid twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CTE, ColumnElement, Connection, Table, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models import PendingAward
from services.sql import insert_ignoring

_TABLE: Table = PendingAward.__table__  # type: ignore[assignment]


def record_pending(
    connection: Connection,
    person_id: int,
    points: int,
    *,
    reason: str,
    key: str,
    now: datetime,
) -> bool:
    """`award_pending` inside a synchronous block of statements (`session.run_sync`), for use
    cases that run as one; one INSERT … ON CONFLICT DO NOTHING, none for zero points."""
    if points <= 0:
        return False
    return insert_ignoring(
        connection,
        _TABLE,
        {
            "person_id": person_id,
            "points": points,
            "reason": reason,
            "idempotency_key": key,
            "created_at": now,
        },
    )


def pending_after(written: CTE, at: ColumnElement[datetime]) -> CTE:
    """PostgreSQL: `record_pending` as a part of a use case's own statement (a data-modifying
    CTE), made only if `written` returns a row, at `at`; one round trip fewer where a lock is
    held. Its parameters: `award_person`, `award_points` (nothing for 0), `award_reason`,
    `award_key`."""
    points = bindparam("award_points", type_=_TABLE.c.points.type)
    return (
        pg_insert(_TABLE)
        .from_select(
            ["person_id", "points", "reason", "idempotency_key", "created_at"],
            select(
                bindparam("award_person", type_=_TABLE.c.person_id.type),
                points,
                bindparam("award_reason", type_=_TABLE.c.reason.type),
                bindparam("award_key", type_=_TABLE.c.idempotency_key.type),
                at,
            )
            .select_from(written)
            .where(points > 0),
        )
        .on_conflict_do_nothing()
        .cte("award")
    )


async def award_pending(
    session: AsyncSession, person_id: int, points: int, *, reason: str, key: str, now: datetime
) -> bool:
    """True when this award is new; the same key twice (a retried update) awards once."""
    if points <= 0:
        return False
    return await session.run_sync(
        lambda sync: record_pending(
            sync.connection(), person_id, points, reason=reason, key=key, now=now
        )
    )


async def withdraw_pending(session: AsyncSession, key: str) -> bool:
    """Take back an award the ledger has not settled yet (an accepted report later rejected)."""
    result = await session.execute(
        delete(PendingAward).where(
            PendingAward.idempotency_key == key, PendingAward.settled_at.is_(None)
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
