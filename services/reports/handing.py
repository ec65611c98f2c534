"""Handing a report to the person who must fix it: on submit, reassignment and escalation, and
when the person who had it no longer holds a role that covers it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from models import Person, Report
from services import people, tickets
from services.notices import Notice
from services.reports import access, notices, queries, routing, store
from services.reports.lifecycle import Action, Capacity, Refusal
from services.reports.policy import ReportPolicy

# The timeline note of a report handed on by the system, as "overdue" is for an escalation.
HANDED_ON = "handed on: the previous handler no longer covers it"
OVERDUE = "overdue"
REPORT_TICKET = "report"


@dataclass
class Handed:
    """Who has the report now, and who is told."""

    choice: routing.Choice
    notices: list[Notice] = field(default_factory=list)


async def hand_over(
    session: AsyncSession,
    policy: ReportPolicy,
    report: Report,
    now: datetime,
    *,
    action: Action,
    capacity: Capacity,
    level: int,
    actor_id: int | None = None,
    note: str = "",
    to: Person | None = None,
    exclude: frozenset[int] = frozenset(),
) -> Handed | None:
    """Move the (locked) report to `to`, or to the least busy person from rung `level` up (never
    its reporter, nor anyone in `exclude`); they get a fresh card, and the card of whoever had
    it loses its buttons.

    None when nobody can take it (or the lifecycle refused the move, which is audited); the
    report then stays where it was and the tick tries again later.
    """
    if to is not None:
        choice: routing.Choice | None = routing.Choice(level, routing.rung(report.owner, level), to)
    else:
        choice = await routing.choose(session, report, level, exclude=exclude)
    if choice is None:
        return None
    moved = await store.apply(
        session, report, action, capacity, actor_id=actor_id, now=now, note=note
    )
    if isinstance(moved, Refusal):
        return None
    previous = report.assignee_id
    store.set_assignee(
        report,
        choice.person.id,
        choice.level,
        policy.sla_of(report),
        now,
        reminder_fraction=policy.reminder_fraction,
        top=choice.level >= routing.top_level(report.owner),
        new_period=action is not Action.REASSIGN,
    )
    # Buttons on the previous assignee's card go stale with the move.
    await tickets.retire_for_subject(session, REPORT_TICKET, report.id, now)
    headline = {
        Action.ASSIGN: "new",
        Action.ESCALATE: "escalated",
        Action.REASSIGN: "passed" if capacity is not Capacity.SYSTEM else "handed_on",
    }[action]
    handed = Handed(
        choice, [await notices.card(session, choice.person.id, report, headline, note=note)]
    )
    if previous is not None and previous != choice.person.id:
        if action is Action.ESCALATE and note == OVERDUE:
            gone = "escalated_away"
        elif action is Action.REASSIGN and capacity is Capacity.SYSTEM:
            gone = "lost_role"
        else:
            gone = "moved_on"
        handed.notices.append(notices.card_gone(previous, report, gone))
    return handed


async def escalate(
    session: AsyncSession,
    policy: ReportPolicy,
    report: Report,
    now: datetime,
    *,
    note: str,
    stay_at_top: bool,
) -> Handed | None:
    """One rung up. At the top an overdue report stays put (None), while a reopened one goes
    back to the top rung (`stay_at_top`), so that someone gets a fresh card for it."""
    level = report.escalation_level + 1
    if stay_at_top:
        level = min(level, routing.top_level(report.owner))
    return await hand_over(
        session,
        policy,
        report,
        now,
        action=Action.ESCALATE,
        capacity=Capacity.SYSTEM,
        level=level,
        note=note,
    )


@dataclass(frozen=True)
class HandedOn:
    """One report of someone who lost their role: who has it now (None: nobody could take it,
    so it stays where it was, on the staff's /queue, and the tick escalates it when due)."""

    number: str
    to: routing.Choice | None


@dataclass
class HandedOnAll:
    reports: list[HandedOn] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


async def hand_on_uncovered(
    session: AsyncSession, policy: ReportPolicy, person_id: int, now: datetime
) -> HandedOnAll:
    """After a role is revoked: the reports this person handles but no longer covers go to
    someone else, as an escalation would find them (their rung first, then up), and both they
    and the residents are told."""
    roles = await people.roles_of(session, person_id)
    result = HandedOnAll()
    for report in await queries.handled_by(session, person_id):
        if access.covers(roles, report):
            continue
        handed = await hand_over(
            session,
            policy,
            report,
            now,
            action=Action.REASSIGN,
            capacity=Capacity.SYSTEM,
            level=report.escalation_level,
            note=HANDED_ON,
            exclude=frozenset({person_id}),
        )
        result.reports.append(HandedOn(report.number or "", handed.choice if handed else None))
        if handed is None:
            continue
        result.notices += handed.notices
        result.notices += await notices.residents(session, report, notices.NOW_WITH)
    return result
