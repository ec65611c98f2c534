"""Who may act on a report, checked when they act: duplicates only of open reports nearby, no
moves after a role is revoked (and `linli admin revoke` hands the reports on), and nobody
handles their own report. On SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.app import Linli
from handlers.flow import TICKET_PREFIX
from handlers.messages import Kind
from models import AuditEntry, PendingAward, Report, ReportFollower, Role
from services import community, people, tickets
from services.people import Grant, RoleSet
from services.reports import access
from services.reports.handing import REPORT_TICKET
from services.reports.lifecycle import Action, Capacity, Refusal, State
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.images import photo
from tests.report_cast import hire, join, send_photo
from tests.test_config import linli as run_linli
from tests.test_reports import events, report_without_photo, the_report


@pytest.fixture
async def dialog(linli: Linli) -> Dialog:
    return Dialog(linli)


async def person_id(linli: Linli, who: str) -> int:
    async with linli.sessions() as session:
        person = await people.by_identity(session, "console", who)
        assert person is not None
        return person.id


async def refusal_reasons(linli: Linli) -> list[str]:
    async with linli.sessions() as session:
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "report.refused").order_by(AuditEntry.id)
        )
        return [e.detail["reason"] for e in entries]


async def following(linli: Linli, number: str) -> set[int]:
    report = await the_report(linli, number)
    async with linli.sessions() as session:
        rows = await session.scalars(
            select(ReportFollower.person_id).where(ReportFollower.report_id == report.id)
        )
        return set(rows)


# ---------------------------------------------------------------------- item 5: duplicates


async def test_only_an_open_report_about_the_same_place_can_be_the_original(
    linli: Linli, dialog: Dialog
) -> None:
    await join(dialog, "amy")
    await join(dialog, "bob", room="401")
    await join(dialog, "dan", room="502")
    await join(dialog, "cy", building="Building 3", room="101")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await hire(dialog, "sam", Role.STAFF)
    # Dan's bench, fixed and rated: closed.
    closed = await report_without_photo(dialog, "dan", "The bench wobbles")
    await dialog.press("gus", "Accept")
    await dialog.press("gus", "Resolved")
    await dialog.press("gus", "No photo possible")
    await dialog.say("gus", "Tightened the screws")
    await dialog.press("dan", "★★★★★")
    assert (await the_report(linli, closed)).state == "closed"
    # Amy's bench in Building 2: the one Bob's report really repeats.
    original = await report_without_photo(dialog, "amy", "The bench by the door is broken")
    # Cy's bench in Building 3, in the other grid.
    elsewhere = await report_without_photo(dialog, "cy", "The bench by the door is broken")
    # Bob's own broken light in Building 2: another kind of problem.
    await send_photo(dialog, "bob", photo())
    await dialog.press("bob", "Done")
    await dialog.press("bob", "Broken light")
    await dialog.press("bob", "My building")
    await dialog.press("bob", "Skip")
    await dialog.press("bob", "Skip")
    unrelated = texts(await dialog.press("bob", "Submit")).split("Your report ")[1].split(" ")[0]
    marked = await report_without_photo(dialog, "bob", "Bench broken again")

    asked = await dialog.press("gus", "Mark duplicate")
    assert [o.label for m in asked.messages for o in m.options] == [original]
    for number in (elsewhere, closed, unrelated):
        refused = await dialog.say("gus", number)
        assert (
            f"{number} is not an open report about the same place, so it cannot be the original "
            f"of {marked}. Choose one from the list, or type another number."
        ) in texts(refused)
    # Nothing changed: Bob follows none of them, and his report is still assigned.
    bob = await person_id(linli, "bob")
    for number in (elsewhere, closed, unrelated):
        assert bob not in await following(linli, number)
    report = await the_report(linli, marked)
    assert (report.state, report.duplicate_of_id) == ("assigned", None)

    done = await dialog.say("gus", original)
    assert f"{marked} is marked as a duplicate of {original}." in texts(done)
    assert (await the_report(linli, marked)).state == "duplicate"
    assert bob in await following(linli, original)


async def test_nothing_to_mark_a_duplicate_of(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    number = await report_without_photo(dialog, "amy", "The bench by the door is broken")
    reply = await dialog.press("gus", "Mark duplicate")
    assert (
        f"There is no open report about the same place that {number} could repeat, so it "
        "cannot be marked as a duplicate."
    ) in texts(reply)
    assert reply.flow == "-"  # no question left open


# ---------------------------------------------------------------------- item 8: revoked roles


async def test_a_revoked_worker_cannot_act_through_old_cards(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    gus = await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    in_progress = await report_without_photo(dialog, "amy", "The bench is broken")
    await dialog.press("gus", "Accept")
    working_card = dialog.seen("gus")[-1]
    to_reject = await report_without_photo(dialog, "amy", "The bin lid is broken")
    reject_card = dialog.channel.outbox["gus"][-1]
    to_reassign = await report_without_photo(dialog, "amy", "The gate squeaks")
    reassign_card = dialog.channel.outbox["gus"][-1]
    await hire(dialog, "gwen", Role.GRID_WORKER, grid="Grid 1")
    # Gus is writing what he did when his role is taken away.
    await dialog.press("gus", "Resolved", source=[working_card])
    await dialog.press("gus", "No photo possible")
    async with linli.transaction() as session:
        grid = await community.grid_by_name(session, "Grid 1")
        assert grid is not None
        assert await people.revoke(session, gus, Grant(Role.GRID_WORKER, grid_id=grid.id))

    resolved = await dialog.say("gus", "Tightened the screws")
    assert f"You no longer handle reports like {in_progress}, so this was not done." in texts(
        resolved
    )
    rejected = await dialog.press("gus", "Reject as not ours", source=[reject_card])
    assert f"You no longer handle reports like {to_reject}, so this was not done." in texts(
        rejected
    )
    reassigned = await dialog.press("gus", "Reassign", source=[reassign_card])
    assert f"You no longer handle reports like {to_reassign}, so this was not done." in texts(
        reassigned
    )
    assert reassigned.flow == "-"  # not asked whom to pass it to

    for number, state in ((in_progress, "in_progress"), (to_reject, "assigned")):
        report = await the_report(linli, number)
        assert (report.state, report.assignee_id, report.resolved_at) == (state, gus, None)
    assert (await the_report(linli, to_reassign)).assignee_id == gus
    assert await refusal_reasons(linli) == ["not_covered"] * 3
    assert not any("passed this report to you" in n for n in dialog.notices("gwen"))
    assert not any("How well was it fixed" in n for n in dialog.notices("amy"))


async def test_admin_revoke_hands_the_reports_on(
    linli: Linli, dialog: Dialog, db_url: str, clock: FakeClock
) -> None:
    await join(dialog, "amy")
    await join(dialog, "cy", building="Building 3", room="101")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 2")
    working = await report_without_photo(dialog, "amy", "The bench is broken")
    await dialog.press("gus", "Accept")
    waiting = await report_without_photo(dialog, "amy", "The bin lid is broken")
    other_grid = await report_without_photo(dialog, "cy", "The gate squeaks")
    gwen = await hire(dialog, "gwen", Role.GRID_WORKER, grid="Grid 1")
    gus = await person_id(linli, "gus")

    result = run_linli(
        "admin",
        "revoke",
        "--role",
        "grid_worker",
        "--grid",
        "Grid 1",
        "--console",
        "gus",
        env={
            "LINLI_DATABASE__URL": db_url,
            "LINLI_REPORT__MEDIA_DIR": str(linli.settings.report.media_dir),
        },
    )
    assert result.returncode == 0, result.stderr
    assert f"handed on {working} to person {gwen}" in result.stdout
    assert f"handed on {waiting} to person {gwen}" in result.stdout
    assert other_grid not in result.stdout

    for number in (working, waiting):
        report = await the_report(linli, number)
        assert (report.state, report.assignee_id) == ("assigned", gwen)
    assert (await events(linli, (await the_report(linli, working)).id))[-2:] == [
        "accept",
        "reassign",
    ]
    assert (await the_report(linli, other_grid)).assignee_id == gus  # still covered: Grid 2

    # The CLI queued the messages on the system clock; the bot sends them.
    clock.now = max(clock.now, datetime.now(UTC))
    await linli.dispatcher.run_once()
    told = dialog.notices("gus")
    for number in (working, waiting):
        assert (
            f"You no longer handle reports like {number}, so it was passed on to a colleague."
            in told
        )
        assert f"Your report {number} is now with your grid worker." in dialog.notices("amy")
    cards = [
        m
        for m in dialog.channel.outbox["gwen"]
        if m.text.startswith(
            "This report was passed to you, as its previous handler no longer handles it:"
        )
    ]
    assert len(cards) == 2 and all("Accept" in [o.label for o in c.options] for c in cards)
    # Gwen takes it from there; Gus's old card is stale.
    accepted = await dialog.press("gwen", "Accept", source=[cards[0]])
    assert "Accepted." in texts(accepted)
    assert (await dialog.press("gus", "Resolved")).outcome == "stale"


# ---------------------------------------------------------------------- item 9: own reports


async def test_nobody_is_routed_or_handles_their_own_report(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "gus")
    gus = await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await hire(dialog, "gus", Role.STAFF)
    sam = await hire(dialog, "sam", Role.STAFF)
    number = await report_without_photo(dialog, "gus", "The bench is broken")
    # Gus is the only grid worker there, and staff: both rungs skip him, Sam gets it.
    report = await the_report(linli, number)
    assert (report.assignee_id, report.escalation_level) == (sam, 1)
    assert not any("New report for you" in n for n in dialog.notices("gus"))
    assert "New report for you to handle" in dialog.notices("sam")[-1]

    # On his /queue (he is staff) he may look at it, not act on it.
    await dialog.say("gus", "/queue")
    card = await dialog.press("gus", number)
    assert "(You can look at this report but not act on it.)" in texts(card)
    assert not [o for m in card.messages for o in m.options]
    # Sam may not pass it to him either.
    await dialog.say("sam", "/queue")
    await dialog.press("sam", number)
    await dialog.press("sam", "Reassign")
    assert not any("Gus" in o.label for o in dialog.seen("sam")[-1].options)

    # A card from before this rule (kept in the database) is refused when pressed.
    async with linli.transaction() as session:
        old = await tickets.issue(
            session,
            person_id=gus,
            kind=REPORT_TICKET,
            subject_id=report.id,
            choices=["accept", "reassign", "reject", "duplicate"],
            now=linli.dialogue.clock(),
        )
    pressed = await dialog.say("gus", "", kind=Kind.CHOICE, payload=f"{TICKET_PREFIX}{old.token}.1")
    assert f"You reported {number} yourself, so someone else must handle it." in texts(pressed)
    report = await the_report(linli, number)
    assert (report.state, report.assignee_id) == ("assigned", sam)
    assert await events(linli, report.id) == ["submit", "assign"]
    async with linli.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PendingAward)) == 0
    assert await refusal_reasons(linli) == ["own_report"]


def _report(**fields: object) -> Report:
    values: dict[str, object] = {
        "reporter_id": 1,
        "assignee_id": 2,
        "state": "assigned",
        "owner": "grid_worker",
        "grid_id": 10,
    }
    values.update(fields)
    return Report(**values)


STAFF = RoleSet((Grant(Role.STAFF),))
GRID_10 = RoleSet((Grant(Role.GRID_WORKER, grid_id=10),))
GRID_20 = RoleSet((Grant(Role.GRID_WORKER, grid_id=20),))
PROPERTY_HEAD = RoleSet((Grant(Role.PROPERTY_HEAD),))
WORKS = RoleSet((Grant(Role.DEPARTMENT, department="Works"),))


@pytest.mark.parametrize(
    ("roles", "person", "fields", "action", "expected"),
    [
        # Whoever has it, within their grid, and staff, may act.
        (GRID_10, 2, {}, Action.ACCEPT, Capacity.ASSIGNEE),
        (STAFF, 3, {}, Action.REJECT, Capacity.STAFF),
        (PROPERTY_HEAD, 2, {"owner": "property", "grid_id": None}, Action.ACCEPT, "ok"),
        (WORKS, 2, {"owner": "department:Works"}, Action.ACCEPT, Capacity.ASSIGNEE),
        # Assigned, but no role covers it any more.
        (GRID_20, 2, {}, Action.ACCEPT, "not_covered"),
        (RoleSet(()), 2, {"state": "in_progress"}, Action.RESOLVE, "not_covered"),
        (WORKS, 2, {"owner": "department:Parks"}, Action.ACCEPT, "not_covered"),
        (GRID_10, 2, {"owner": "property"}, Action.ACCEPT, "not_covered"),
        # Someone else's report.
        (GRID_10, 3, {}, Action.ACCEPT, "not_your_role"),
        # One's own report, even as staff, even when it is assigned to oneself.
        (STAFF, 1, {}, Action.ACCEPT, "own_report"),
        (GRID_10, 1, {"assignee_id": 1}, Action.REJECT, "own_report"),
        # The state first: a report that moved on says so, whoever asks.
        (STAFF, 3, {"state": "closed"}, Action.ACCEPT, "not_allowed_now"),
        (STAFF, 1, {"state": "resolved"}, Action.CONFIRM, Capacity.REPORTER),
        (STAFF, 3, {"state": "resolved"}, Action.CONFIRM, "not_your_role"),
    ],
)
def test_the_authorization_function(
    roles: RoleSet,
    person: int,
    fields: dict[str, object],
    action: Action,
    expected: Capacity | str,
) -> None:
    decided = access.decide(roles, person, _report(**fields), action)
    if expected == "ok":
        assert isinstance(decided, Capacity)
    elif isinstance(expected, Capacity):
        assert decided is expected
    else:
        state = State(str(fields.get("state", "assigned")))
        assert decided == Refusal(expected, state, action)
