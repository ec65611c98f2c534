"""Handing a report to the person who must fix it: on submit, reassignment and escalation, and
when the person who had it no longer holds a role that covers it."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.flow import Notifier
from handlers.reports import cards
from handlers.reports.cards import REPORT_TICKET, dispatch_card
from handlers.reports.rules import ReportRules
from models import Person, Report
from services import people, tickets
from services.reports import access, routing, store
from services.reports.lifecycle import Action, Capacity, Refusal

# The timeline note of a report handed on by the system, as "overdue" is for an escalation.
HANDED_ON = "handed on: the previous handler no longer covers it"


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
    exclude: frozenset[int] = frozenset(),
) -> routing.Choice | None:
    """Move the report to `to`, or to the least busy person from rung `level` up (never its
    reporter, nor anyone in `exclude`).

    None when nobody can take it (or the lifecycle refused the move, which is audited); the
    report then stays where it was and the tick tries again later.
    """
    if to is not None:
        choice: routing.Choice | None = routing.Choice(level, routing.rung(report.owner, level), to)
    else:
        choice = await routing.choose(notifier.session, report, level, exclude=exclude)
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
        rules.sla_of(report),
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
        )
        if capacity is not Capacity.SYSTEM
        else t.gettext(
            "This report was passed to you, as its previous handler no longer handles it:"
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


@dataclass(frozen=True)
class HandedOn:
    """One report of someone who lost their role: who has it now (None: nobody could take it,
    so it stays where it was, on the staff's /queue, and the tick escalates it when due)."""

    number: str
    to: routing.Choice | None


async def hand_on_uncovered(
    notifier: Notifier, rules: ReportRules, person_id: int
) -> list[HandedOn]:
    """After a role is revoked: the reports this person handles but no longer covers go to
    someone else, as an escalation would find them (their rung first, then up), and both they
    and the residents are told."""
    roles = await people.roles_of(notifier.session, person_id)
    handed: list[HandedOn] = []
    for report in await store.handled_by(notifier.session, person_id):
        if access.covers(roles, report):
            continue
        choice = await hand_over(
            notifier,
            rules,
            report,
            action=Action.REASSIGN,
            capacity=Capacity.SYSTEM,
            level=report.escalation_level,
            note=HANDED_ON,
            exclude=frozenset({person_id}),
        )
        handed.append(HandedOn(report.number or "", choice))
        if choice is None:
            continue
        await cards.tell(
            notifier,
            person_id,
            lambda t, report=report: t.gettext(
                "You no longer handle reports like {number}, so it was passed on to a colleague."
            ).format(number=report.number),
        )
        await cards.tell_residents(
            notifier,
            report,
            lambda t, report=report: t.gettext("Your report {number} is now with {who}.").format(
                number=report.number, who=cards.rung_name(t, report)
            ),
        )
    return handed
