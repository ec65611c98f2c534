"""`/points top`: a building's leaderboard of the points earned this month. Only residents who
opted in are named; the others are counted, never named nor ranked in a way that singles them
out (a rank is given among the named only). Earned means awards (and their withdrawals), not
what a redemption spent or gave back, so that redeeming a reward does not cost a place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Household, LeaderboardMember, Person, PointsAccount, PointsEntry, PointsTransfer
from services.points.ledger import POINTS
from services.points.rewards import REDEEM_REASON, REFUND_REASON
from services.sql import insert_ignoring_conflict

SHOWN = 10


@dataclass(frozen=True)
class Board:
    building_id: int
    named: list[tuple[str, int, int]]  # (name, points earned, person id), best first
    others: int  # residents of the building who earned points and are not named
    own_rank: int | None  # among the named, when the asker opted in
    opted_in: bool


async def opt(session: AsyncSession, person_id: int, named: bool, now: datetime) -> None:
    table = LeaderboardMember.__table__
    if named:
        await insert_ignoring_conflict(
            session,
            table,  # type: ignore[arg-type]
            {"person_id": person_id, "joined_at": now},
        )
    else:
        await session.execute(
            delete(LeaderboardMember).where(LeaderboardMember.person_id == person_id)
        )


async def board(
    session: AsyncSession, person_id: int, since: datetime, until: datetime
) -> Board | None:
    """The asker's building's board for [since, until); None for someone with no home."""
    building_id = await session.scalar(
        select(Household.building_id)
        .join(Person, Person.household_id == Household.id)
        .where(Person.id == person_id)
    )
    if building_id is None:
        return None
    earned = func.sum(PointsEntry.amount).label("earned")
    rows = (
        await session.execute(
            select(Person.id, Person.display_name, earned, LeaderboardMember.person_id)
            .join(Household, Household.id == Person.household_id)
            .join(
                PointsAccount,
                (PointsAccount.person_id == Person.id) & (PointsAccount.unit == POINTS),
            )
            .join(PointsEntry, PointsEntry.account_id == PointsAccount.id)
            .join(PointsTransfer, PointsTransfer.id == PointsEntry.transfer_id)
            .outerjoin(LeaderboardMember, LeaderboardMember.person_id == Person.id)
            .where(
                Household.building_id == building_id,
                Person.status == "active",
                PointsTransfer.created_at >= since,
                PointsTransfer.created_at < until,
                PointsTransfer.reason.not_in((REDEEM_REASON, REFUND_REASON)),
            )
            .group_by(Person.id, Person.display_name, LeaderboardMember.person_id)
            .having(earned > 0)
            .order_by(earned.desc(), Person.id)
        )
    ).all()
    named = [(name, int(points), pid) for pid, name, points, member in rows if member is not None]
    opted_in = bool(
        await session.scalar(
            select(func.count())
            .select_from(LeaderboardMember)
            .where(LeaderboardMember.person_id == person_id)
        )
    )
    own = next((n for n, (_, _, pid) in enumerate(named, 1) if pid == person_id), None)
    return Board(building_id, named[:SHOWN], len(rows) - len(named), own, opted_in)
