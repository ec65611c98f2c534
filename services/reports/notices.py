"""The notification intents of photo reports: their kinds, and who hears them.

handlers/reports/notices.py says how each reads; the use cases only decide who is told what.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models import Report
from services import people
from services.notices import Notice, to
from services.reports import access, store
from services.reports.lifecycle import Refusal

# The card a handler works from (kind "report", subject the report id): later notices for it
# update the same card. `headline` says why it is (re)sent: new, escalated, passed (by a
# colleague, with a note), handed_on (by the system), accepted, news_sent; and for a card
# without buttons any more: moved_on, escalated_away, lost_role, rejected, duplicate, resolved.
CARD = "report.card"
CARD_KIND = "report"
# The reporter and followers (residents) hear these.
ACCEPTED = "report.accepted"
NEWS = "report.news"
REJECTED = "report.rejected"
DUPLICATE = "report.duplicate"
PASSED = "report.passed"
NOW_WITH = "report.now_with"
OVERDUE = "report.overdue"
RESOLVED = "report.resolved"
AUTO_CLOSED = "report.auto_closed"
# Only the reporter: the request to rate, with the stars as durable buttons.
RATE = "report.rate"
RATE_ACTIONS = ("1", "2", "3", "4", "5", "notfixed")
# Whoever handled it.
VERDICT = "report.verdict"
COMMENT = "report.comment"
REMINDER = "report.reminder"


async def residents(
    session: AsyncSession, report: Report, kind: str, *, skip: int | None = None, **params: Any
) -> list[Notice]:
    """The reporter and everyone who follows the report hear the same news, each once."""
    audience = [report.reporter_id] + [p.id for p in await store.followers(session, report.id)]
    return to([i for i in audience if i != skip], kind, subject_id=report.id, params=params)


async def card(
    session: AsyncSession, person_id: int, report: Report, headline: str, **params: Any
) -> Notice:
    """This person's card for the report as it is now, with the moves they may make now."""
    roles = await people.roles_of(session, person_id)
    return Notice(
        person_id,
        CARD,
        report.id,
        params={"headline": headline, "show_reporter": access.may_see_reporter(roles), **params},
        actions=access.card_actions(roles, person_id, report),
        card=CARD_KIND,
    )


async def queue_card(session: AsyncSession, person_id: int, report: Report) -> Notice:
    """The card someone opens from their queue: to work from if they may handle the report,
    else to look at only (`look_only` says why), with nobody's name."""
    found = await card(session, person_id, report, "queue")
    roles = await people.roles_of(session, person_id)
    capacity = access.handling_capacity(roles, person_id, report)
    if not isinstance(capacity, Refusal):
        return found
    look = "not_your_role" if capacity.reason == "not_your_role" else "other"
    params = {**found.params, "show_reporter": False, "look_only": look}
    return replace(found, params=params, actions=())


def card_gone(person_id: int, report: Report, headline: str, **params: Any) -> Notice:
    """The card of someone who no longer works on the report: it says why, without buttons."""
    return Notice(
        person_id,
        CARD,
        report.id,
        params={"headline": headline, "show_reporter": False, **params},
        card=CARD_KIND,
    )


def tell(person_id: int | None, kind: str, report: Report, **params: Any) -> list[Notice]:
    return [] if person_id is None else [Notice(person_id, kind, report.id, params=params)]
