"""What the scheduler tick does for one report (DESIGN.md "Time"): dispatch what nobody could
take, remind the assignee, escalate what is overdue, close what was resolved but never rated.
The tick (handlers/reports/schedule.py) finds the due rows, locked, and calls these one by one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from models import Report
from services import tickets
from services.notices import Notice
from services.reports import notices, store
from services.reports.handing import OVERDUE, escalate, hand_over
from services.reports.lifecycle import Action, Capacity, Refusal
from services.reports.policy import ReportPolicy
from services.reports.verdict import RATING_TICKET


async def dispatch_waiting(
    session: AsyncSession, report: Report, now: datetime, policy: ReportPolicy
) -> list[Notice] | None:
    """None: still nobody to take it."""
    handed = await hand_over(
        session, policy, report, now, action=Action.ASSIGN, capacity=Capacity.SYSTEM, level=0
    )
    if handed is None:
        return None
    return handed.notices + await notices.residents(session, report, notices.NOW_WITH)


def remind(report: Report, now: datetime) -> list[Notice]:
    report.reminded_at = now
    return notices.tell(report.assignee_id, notices.REMINDER, report)


async def escalate_overdue(
    session: AsyncSession, report: Report, now: datetime, policy: ReportPolicy
) -> list[Notice] | None:
    """None: at the top of the ladder, or nobody above; it stays overdue on the staff's queue."""
    handed = await escalate(session, policy, report, now, note=OVERDUE, stay_at_top=False)
    if handed is None:
        report.escalate_at = None
        return None
    return handed.notices + await notices.residents(session, report, notices.OVERDUE)


async def auto_close(
    session: AsyncSession, report: Report, now: datetime, policy: ReportPolicy
) -> list[Notice] | None:
    moved = await store.apply(
        session, report, Action.AUTO_CLOSE, Capacity.SYSTEM, actor_id=None, now=now
    )
    if isinstance(moved, Refusal):
        return None
    await tickets.retire_for_subject(session, RATING_TICKET, report.id, now)
    return await notices.residents(session, report, notices.AUTO_CLOSED, days=policy.autoclose_days)
