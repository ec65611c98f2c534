"""A resident's report comes in: stored with its number, dispatched to the first rung anyone
holds (or left for the tick when nobody can take it yet); or, for a likely duplicate, the
resident follows the report already there (+1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from models import Report
from services import audit
from services.notices import Notice
from services.reports import routing, store
from services.reports.handing import hand_over
from services.reports.lifecycle import OPEN_STATES, Action, Capacity, State
from services.reports.moves import GONE, Refused
from services.reports.policy import ReportPolicy


@dataclass
class Submitted:
    report: Report
    # Who has it now; None: nobody can take it yet, the tick dispatches it once someone can.
    to: routing.Choice | None
    notices: list[Notice] = field(default_factory=list)


async def submit(
    session: AsyncSession, new: store.NewReport, now: datetime, policy: ReportPolicy
) -> Submitted:
    report = await store.submit(session, new, now)
    handed = await hand_over(
        session, policy, report, now, action=Action.ASSIGN, capacity=Capacity.SYSTEM, level=0
    )
    if handed is None:
        return Submitted(report, None)
    return Submitted(report, handed.choice, handed.notices)


@dataclass
class Followed:
    report: Report
    new: bool


async def follow(
    session: AsyncSession, actor_id: int, report_id: int, now: datetime
) -> Followed | Refused:
    """+1: the resident hears everything the reporter hears. Only an open report."""
    report = await store.get(session, report_id)
    if report is None:
        return Refused(GONE)
    if State(report.state) not in OPEN_STATES:
        return Refused("not_allowed_now", report)
    new = await store.follow(session, report.id, actor_id, now)
    await audit.record(session, "report.follow", actor_id=actor_id, report=report.number)
    return Followed(report, new)
