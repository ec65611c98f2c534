"""Handing a report to the person who must fix it: on submit, reassignment and escalation."""

from __future__ import annotations

from handlers.flow import Notifier
from handlers.reports.cards import REPORT_TICKET, dispatch_card
from handlers.reports.rules import ReportRules
from models import Person, Report
from services import people, tickets
from services.reports import routing, store
from services.reports.lifecycle import Action, Capacity, Refusal


async def hand_over(
    notifier: Notifier,
    rules: ReportRules,
    report: Report,
    *,
    action: Action,
    capacity: Capacity,
    level: int,
    actor_id: int | None = None,
    note: str = "",
    to: Person | None = None,
) -> routing.Choice | None:
    """Move the report to `to`, or to the least busy person from rung `level` up.

    None when nobody can take it (or the lifecycle refused the move, which is audited); the
    report then stays where it was and the tick tries again later.
    """
    rule = rules.category(report.category)
    assert rule is not None, report.category
    if to is not None:
        choice: routing.Choice | None = routing.Choice(level, routing.rung(report.owner, level), to)
    else:
        choice = await routing.choose(notifier.session, report, level)
    if choice is None:
        return None
    moved = await store.apply(
        notifier.session, report, action, capacity, actor_id=actor_id, now=notifier.now, note=note
    )
    if isinstance(moved, Refusal):
        return None
    store.set_assignee(
        report,
        choice.person.id,
        choice.level,
        rule.category,
        notifier.now,
        reminder_fraction=rules.reminder_fraction,
        top=choice.level >= routing.top_level(report.owner),
        new_period=action is not Action.REASSIGN,
    )
    # Cards on the previous assignee's phone go stale with the move.
    await tickets.retire_for_subject(notifier.session, REPORT_TICKET, report.id, notifier.now)
    t = notifier.translator_for(choice.person)
    headline = {
        Action.ASSIGN: t.gettext("New report for you to handle:"),
        Action.ESCALATE: t.gettext("Escalated to you — please take this report in hand:"),
        Action.REASSIGN: t.gettext("A colleague passed this report to you: {note}").format(
            note=note
        ),
    }[action]
    roles = await people.roles_of(notifier.session, choice.person.id)
    notifier.notify(
        choice.person,
        await dispatch_card(
            notifier, rules, report, choice.person, headline, for_staff=roles.is_staff
        ),
    )
    return choice


async def escalate(
    notifier: Notifier, rules: ReportRules, report: Report, *, note: str, stay_at_top: bool
) -> routing.Choice | None:
    """One rung up. At the top an overdue report stays put (None), while a reopened one goes
    back to the top rung (`stay_at_top`), so that someone gets a fresh card for it."""
    level = report.escalation_level + 1
    if stay_at_top:
        level = min(level, routing.top_level(report.owner))
    return await hand_over(
        notifier,
        rules,
        report,
        action=Action.ESCALATE,
        capacity=Capacity.SYSTEM,
        level=level,
        note=note,
    )
