"""How reports read in chat: one-line summaries, the dispatch card, and status notices.

Every text is built in the reader's language. The reporter's name and room appear only on cards
for staff (DESIGN.md "Privacy"); workers and other residents see the problem, not the person.
"""

from __future__ import annotations

from collections.abc import Callable

from handlers.flow import Notifier, Someone
from handlers.i18n import N_, Translator
from handlers.messages import Attachment, Outgoing
from handlers.reports.rules import ReportRules
from models import Building, Person, Report
from services import people
from services.reports import routing, store
from services.reports.lifecycle import FINAL_STATES, State

REPORT_TICKET = "report"
RATING_TICKET = "report_rating"

STATE_NAMES = {
    State.SUBMITTED: N_("submitted"),
    State.ASSIGNED: N_("assigned"),
    State.IN_PROGRESS: N_("in progress"),
    State.RESOLVED: N_("resolved"),
    State.CLOSED: N_("closed"),
    State.REJECTED: N_("rejected"),
    State.DUPLICATE: N_("duplicate"),
    State.REOPENED: N_("reopened"),
}
RUNG_NAMES = {
    routing.GRID_WORKER: N_("your grid worker"),
    routing.PROPERTY: N_("property management"),
    routing.PROPERTY_HEAD: N_("the head of property management"),
    routing.DEPARTMENT: N_("the responsible department"),
    routing.DEPARTMENT_HEAD: N_("the head of the responsible department"),
    routing.STAFF: N_("community staff"),
}


def state_name(t: Translator, report: Report) -> str:
    return t.gettext(STATE_NAMES[State(report.state)])


def rung_name(t: Translator, report: Report) -> str:
    return t.gettext(RUNG_NAMES[routing.rung(report.owner, report.escalation_level)])


def place_label(
    t: Translator,
    place: str | None,
    building: str | None,
    location: tuple[float, float] | None,
) -> str:
    """A shared place, else the building, with the pin when there is one: drafts and reports."""
    label = place or building or t.gettext("location sent")
    if location is not None:
        label += f" (📍 {location[0]:.5f}, {location[1]:.5f})"
    return label


async def where(notifier: Notifier, t: Translator, report: Report) -> str:
    building = (
        await notifier.session.get(Building, report.building_id)
        if report.building_id is not None
        else None
    )
    location = (
        (report.latitude, report.longitude)
        if report.latitude is not None and report.longitude is not None
        else None
    )
    return place_label(t, report.place, building.name if building else None, location)


def summary_line(t: Translator, rules: ReportRules, report: Report, place: str) -> str:
    return t.gettext("{number} · {category} · {place} · {state}").format(
        number=report.number,
        category=rules.category_name(report.category, t),
        place=place,
        state=state_name(t, report),
    )


def details(t: Translator, rules: ReportRules, report: Report, place: str) -> list[str]:
    lines = [
        t.gettext("Report {number}").format(number=report.number),
        t.gettext("Category: {category}").format(category=rules.category_name(report.category, t)),
        t.gettext("Where: {place}").format(place=place),
    ]
    if report.place_detail:
        lines.append(t.gettext("Detail: {detail}").format(detail=report.place_detail))
    if report.description:
        lines.append(t.gettext("Description: {text}").format(text=report.description))
    lines.append(t.gettext("Status: {state}").format(state=state_name(t, report)))
    if report.due_at is not None and State(report.state) not in _DONE:
        lines.append(t.gettext("Due by: {due}").format(due=rules.local(report.due_at)))
    return lines


_DONE = FINAL_STATES | {State.RESOLVED}

# Which buttons a dispatch card carries in each state.
CARD_ACTIONS: dict[State, tuple[tuple[str, str], ...]] = {
    State.ASSIGNED: (
        (N_("Accept"), "accept"),
        (N_("Reassign"), "reassign"),
        (N_("Reject as not ours"), "reject"),
        (N_("Mark duplicate"), "duplicate"),
    ),
    State.REOPENED: (
        (N_("Accept"), "accept"),
        (N_("Reassign"), "reassign"),
    ),
    State.IN_PROGRESS: (
        (N_("Progress update"), "progress"),
        (N_("Resolved"), "resolve"),
        (N_("Reassign"), "reassign"),
    ),
}


def media_problem(t: Translator, problem: str, rules: ReportRules) -> str:
    """The polite answer to a file we will not keep, shared by every step that takes photos."""
    megabytes = rules.limits.max_bytes // (1024 * 1024)
    return {
        "too_big": t.gettext(
            "That file is too big (the limit is {mb} MB). Please send a smaller photo."
        ),
        "too_many_pixels": t.gettext(
            "That picture is too large to handle. Please send an ordinary photo from your camera."
        ),
        "not_an_image": t.gettext(
            "That file is not a photo we can read. Please send a JPEG or PNG."
        ),
        "broken": t.gettext("That photo seems to be damaged or incomplete. Please send it again."),
    }.get(problem, t.gettext("We could not download that file. Please send it again.")).format(
        mb=megabytes
    )


async def dispatch_card(
    notifier: Notifier,
    rules: ReportRules,
    report: Report,
    reader: Someone,
    headline: str,
    *,
    for_staff: bool,
    with_actions: bool = True,
) -> Outgoing:
    """The card someone handling the report works from: photo, facts, and the next moves."""
    t = notifier.translator_for(reader)
    place = await where(notifier, t, report)
    lines = [headline, "", *details(t, rules, report, place)]
    if for_staff:
        reporter = await people.with_household(notifier.session, report.reporter_id)
        if reporter is not None:
            home = people.building_of(reporter)
            room = reporter.household.room if reporter.household else ""
            lines.append(
                t.gettext("Reported by: {name}{home}").format(
                    name=reporter.display_name or "-",
                    home=f" ({home.name} {room})" if home else "",
                )
            )
    actions = CARD_ACTIONS.get(State(report.state), ()) if with_actions else ()
    options = (
        await notifier.ticket_options(
            reader,
            REPORT_TICKET,
            report.id,
            [(t.gettext(label), value) for label, value in actions],
        )
        if actions
        else ()
    )
    photos = await store.media_of(notifier.session, report.id, "before")
    voices = await store.media_of(notifier.session, report.id, "voice")
    path = rules.storage.path
    return Outgoing(
        "\n".join(lines),
        options=options,
        image_path=str(path(photos[0].media_key)) if photos else None,
        attachments=tuple(
            [Attachment("photo", str(path(p.media_key))) for p in photos[1:]]
            + [Attachment("voice", str(path(v.media_key))) for v in voices]
        ),
    )


async def tell(
    notifier: Notifier, person_id: int | None, text: Callable[[Translator], str]
) -> Person | None:
    """One person hears `text`, in their own language; None if there is nobody to tell."""
    person = await notifier.session.get(Person, person_id) if person_id is not None else None
    if person is not None:
        notifier.notify(person, Outgoing(text(notifier.translator_for(person))))
    return person


async def tell_residents(
    notifier: Notifier,
    report: Report,
    text: Callable[[Translator], str],
    *,
    skip: int | None = None,
) -> None:
    """The reporter and everyone who follows the report hear the same news."""
    reporter = await notifier.session.get(Person, report.reporter_id)
    audience = [reporter] if reporter is not None else []
    audience += await store.followers(notifier.session, report.id)
    for person in audience:
        if person.id != skip:
            notifier.notify(person, Outgoing(text(notifier.translator_for(person))))
