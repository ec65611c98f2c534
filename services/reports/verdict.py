"""The reporter's verdict on a fix: 3–5 stars close the report, 1–2 or "not fixed" reopen it and
send it one rung up with a new deadline. A comment goes to whoever fixed it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services import audit, tickets
from services.reports import access, notices, store
from services.reports.handing import escalate
from services.reports.lifecycle import Action, Refusal, rating_action
from services.reports.moves import GONE, Moved, Refused
from services.reports.policy import ReportPolicy

RATING_TICKET = "report_rating"
COMMENT_LIMIT = 500
# The timeline note of a reopened report's escalation.
REOPENED = "reopened by the resident"


async def rate(
    session: AsyncSession,
    actor_id: int,
    report_id: int,
    stars: int | None,
    now: datetime,
    policy: ReportPolicy,
    *,
    note: str,
) -> Moved | Refused:
    """`stars` 1–5, or None for "not fixed". `note` is the timeline's wording of the verdict."""
    # Locked first: the tick may be closing it, or the reporter pressing twice elsewhere.
    report = await store.lock(session, report_id)
    if report is None:
        return Refused(GONE)
    action = rating_action(stars) if stars is not None else Action.REOPEN
    decided = await access.may(session, actor_id, report, action)
    if isinstance(decided, Refusal):
        await store.record_refusal(session, report, decided, None, actor_id)
        return Refused(decided.reason, report)
    moved = await store.apply(
        session, report, action, decided, actor_id=actor_id, now=now, note=note
    )
    if isinstance(moved, Refusal):
        return Refused(moved.reason, report)
    report.rating = stars
    await tickets.retire_for_subject(session, RATING_TICKET, report.id, now)
    handler_id = report.assignee_id  # who fixed it, before the report moves on
    result = Moved(report, notices.tell(handler_id, notices.VERDICT, report, stars=stars))
    if action is Action.REOPEN:
        handed = await escalate(session, policy, report, now, note=REOPENED, stay_at_top=True)
        if handed is not None:
            # A fix that did not hold gets a new deadline, as a new report would.
            report.due_at = now + policy.sla_of(report)
            result.notices += handed.notices
    return result


async def comment(
    session: AsyncSession, actor_id: int, report_id: int, text: str, now: datetime
) -> Moved | Refused:
    """The reporter's words on the fix, for whoever handled it."""
    report = await store.lock(session, report_id)
    if report is None:
        return Refused(GONE)
    if report.reporter_id != actor_id:
        return Refused("not_your_role", report)
    report.rating_comment = text[:COMMENT_LIMIT]
    await audit.record(session, "report.comment", actor_id=actor_id, report=report.number)
    return Moved(report, notices.tell(report.assignee_id, notices.COMMENT, report, comment=text))
