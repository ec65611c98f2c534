"""The monthly statement: on the 1st (community time), each person whose points moved in the
month before gets what they earned, what they spent and their balance. Sent once per person
and month: the row in `points_statement` is claimed before the notice is written, in the
tick's transaction, so a second tick or a second worker finds it taken."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import PointsAccount, PointsEntry, PointsStatement, PointsTransfer
from services.notices import Notice
from services.points.ledger import POINTS
from services.sql import insert_ignoring_conflict

STATEMENT = "points.statement"


@dataclass(frozen=True)
class Month:
    name: str  # "2026-11"
    start: datetime
    end: datetime


def previous_month(now: datetime, timezone: str) -> Month:
    """The calendar month before `now`'s, in the community's timezone, as UTC bounds."""
    end = now.astimezone(ZoneInfo(timezone)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    start = (end - timedelta(days=1)).replace(day=1)
    return Month(f"{start.year:04d}-{start.month:02d}", start.astimezone(UTC), end.astimezone(UTC))


async def due(session: AsyncSession, now: datetime, timezone: str) -> list[Notice]:
    """The statements of last month not sent yet: one notice each, its row claimed."""
    month = previous_month(now, timezone)
    credit = func.sum(case((PointsEntry.amount > 0, PointsEntry.amount), else_=0))
    debit = func.sum(case((PointsEntry.amount < 0, -PointsEntry.amount), else_=0))
    moved = (
        await session.execute(
            select(PointsAccount.person_id, credit, debit)
            .join(PointsEntry, PointsEntry.account_id == PointsAccount.id)
            .join(PointsTransfer, PointsTransfer.id == PointsEntry.transfer_id)
            .outerjoin(
                PointsStatement,
                (PointsStatement.person_id == PointsAccount.person_id)
                & (PointsStatement.month == month.name),
            )
            .where(
                PointsAccount.person_id.is_not(None),
                PointsAccount.unit == POINTS,
                PointsTransfer.created_at >= month.start,
                PointsTransfer.created_at < month.end,
                PointsStatement.person_id.is_(None),
            )
            .group_by(PointsAccount.person_id)
            .order_by(PointsAccount.person_id)
        )
    ).all()
    notices = []
    for person_id, earned, spent in moved:
        claimed = await insert_ignoring_conflict(
            session,
            PointsStatement.__table__,  # type: ignore[arg-type]
            {"person_id": person_id, "month": month.name, "sent_at": now},
        )
        if claimed:
            notices.append(
                Notice(
                    person_id,
                    STATEMENT,
                    subject_id=person_id,
                    params={"month": month.name, "earned": int(earned), "spent": int(spent)},
                )
            )
    return notices
