"""How reports read in chat: state and rung names, places, one-line summaries and details.

Every text is built in the reader's language (the notices themselves: notices.py)."""

from __future__ import annotations

from handlers.flow import Notifier
from handlers.i18n import N_, Translator
from handlers.reports.rules import ReportRules
from models import Building, Report
from services.reports import routing
from services.reports.lifecycle import FINAL_STATES, State

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
        "not_a_pdf": t.gettext("That file is not a PDF document we can pass on."),
    }.get(problem, t.gettext("We could not download that file. Please send it again.")).format(
        mb=megabytes
    )
