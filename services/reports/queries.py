"""Lists of reports: a resident's own, a handler's queue, and the rows the tick finds due."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Report, ReportFollower
from services.reports.lifecycle import HANDLING_STATES, OPEN_STATES, State
from services.reports.store import for_move


async def of_person(session: AsyncSession, person_id: int, limit: int = 20) -> list[Report]:
    """A resident's own reports and the ones they follow, newest first."""
    followed = select(ReportFollower.report_id).where(ReportFollower.person_id == person_id)
    query = (
        select(Report)
        .where(or_(Report.reporter_id == person_id, Report.id.in_(followed)))
        .order_by(Report.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


@dataclass(frozen=True)
class QueueScope:
    """Which reports someone who handles them may see; staff see everything."""

    person_id: int
    everything: bool = False
    grid_ids: frozenset[int] = frozenset()
    owners: frozenset[str] = frozenset()  # Report.owner labels: property, department:<name>


async def queue(
    session: AsyncSession, scope: QueueScope, which: str, now: datetime, limit: int = 10
) -> list[Report]:
    """which: open (being handled), overdue (past due), mine (assigned to this person)."""
    query = select(Report).where(Report.state.in_([s.value for s in HANDLING_STATES]))
    if which == "mine":
        query = query.where(Report.assignee_id == scope.person_id)
    elif not scope.everything:
        query = query.where(
            or_(
                Report.assignee_id == scope.person_id,
                Report.grid_id.in_(scope.grid_ids) & (Report.owner == "grid_worker"),
                Report.owner.in_(scope.owners),
            )
        )
    if which == "overdue":
        query = query.where(Report.due_at <= now)
    return list(
        (await session.scalars(query.order_by(Report.due_at, Report.id).limit(limit))).all()
    )


async def _due(session: AsyncSession, query: Select[tuple[Report]]) -> list[Report]:
    """Due rows for the tick, locked for its moves. Rows someone is moving right now are left
    for the next tick (SKIP LOCKED), which finds them moved on or still due: the tick never
    waits for a chat, so it can never deadlock with one."""
    query = for_move(query.order_by(Report.id), skip_locked=True)
    return list((await session.scalars(query)).all())


async def due_reminders(session: AsyncSession, now: datetime) -> list[Report]:
    query = select(Report).where(
        Report.remind_at <= now,
        Report.reminded_at.is_(None),
        Report.assignee_id.is_not(None),
        Report.state.in_([s.value for s in HANDLING_STATES]),
    )
    return await _due(session, query)


async def due_escalations(session: AsyncSession, now: datetime) -> list[Report]:
    query = select(Report).where(
        Report.escalate_at <= now,
        Report.assignee_id.is_not(None),
        Report.state.in_([State.ASSIGNED.value, State.IN_PROGRESS.value, State.REOPENED.value]),
    )
    return await _due(session, query)


async def undispatched(session: AsyncSession) -> list[Report]:
    """Submitted when nobody could take them; dispatch tries again once someone can."""
    query = select(Report).where(
        Report.state == State.SUBMITTED.value, Report.assignee_id.is_(None)
    )
    return await _due(session, query)


async def unrated_since(session: AsyncSession, before: datetime) -> list[Report]:
    query = select(Report).where(Report.state == State.RESOLVED.value, Report.resolved_at <= before)
    return await _due(session, query)


async def handled_by(session: AsyncSession, person_id: int) -> list[Report]:
    """The reports this person is handling now, locked for handing them on."""
    query = select(Report).where(
        Report.assignee_id == person_id, Report.state.in_([s.value for s in HANDLING_STATES])
    )
    return list((await session.scalars(for_move(query.order_by(Report.id)))).all())


async def open_outside(session: AsyncSession, categories: Sequence[str]) -> list[Report]:
    """Open reports whose category is not among `categories` (removed from the configuration)."""
    query = select(Report).where(
        Report.state.in_([s.value for s in OPEN_STATES]), Report.category.not_in(categories)
    )
    return list((await session.scalars(query.order_by(Report.id))).all())
