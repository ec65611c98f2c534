"""Two moves on one report at the same moment, on PostgreSQL: exactly one wins, the other person
is told politely where the report stands, nobody gets the generic apology, and nothing
deadlocks. Each interleaving is forced with locks held by a third connection (tests/races.py),
never by sleeping; each pair is run in both orders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import Linli
from handlers.messages import Kind, Reply
from models import AuditEntry, PendingAward, Report, Role
from services import people
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.races import PATIENCE, Blocker
from tests.report_cast import hire, join
from tests.test_reports import events, report_without_photo, the_report

pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)

Move = Callable[[], Coroutine[Any, Any, Reply]]


@pytest.fixture
async def dialog(linli: Linli) -> Dialog:
    return Dialog(linli)


async def with_gus(dialog: Dialog) -> str:
    """Amy's report, dispatched to Gus, the grid worker; Sam is staff."""
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await hire(dialog, "sam", Role.STAFF)
    return await report_without_photo(dialog, "amy", "The bench by the door is broken")


async def open_from_queue(dialog: Dialog, who: str, number: str) -> None:
    await dialog.say(who, "/queue")
    await dialog.press(who, number)


def press(dialog: Dialog, who: str, label: str) -> Move:
    """A button press whose payload is taken now, from what `who` sees now."""
    payload = dialog.payload(who, label)
    return lambda: dialog.say(who, "", kind=Kind.CHOICE, payload=payload)


def say(dialog: Dialog, who: str, text: str) -> Move:
    return lambda: dialog.say(who, text)


async def race_on_the_row(
    linli: Linli, db_url: str, number: str, first: Move, second: Move
) -> tuple[Reply, Reply]:
    """Both wait for the report's row, held by a third connection; `first` goes first."""
    report = await the_report(linli, number)
    async with Blocker(db_url) as blocker:
        await blocker.hold_row("report", report.id)
        started = await blocker.queue(first(), second())
        await blocker.release()
        won, lost = await started[0], await started[1]
    for reply in (won, lost):
        assert reply.outcome == "ok", texts(reply)  # never "error": no deadlock, no apology
    return won, lost


async def refusals(linli: Linli) -> list[str]:
    async with linli.sessions() as session:
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "report.refused")
        )
        return [e.detail["reason"] for e in entries]


async def awards(linli: Linli) -> int:
    async with linli.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(PendingAward)) or 0)


@pytest.mark.parametrize("first", ["accept", "reject"])
async def test_accept_and_reject_at_once(
    linli: Linli, dialog: Dialog, db_url: str, first: str
) -> None:
    number = await with_gus(dialog)
    # Sam (staff) is rejecting it from /queue and writes the reason while Gus presses Accept.
    await open_from_queue(dialog, "sam", number)
    await dialog.press("sam", "Reject as not ours")
    moves = {
        "accept": press(dialog, "gus", "Accept"),
        "reject": say(dialog, "sam", "The bench belongs to the school next door"),
    }
    second = "reject" if first == "accept" else "accept"
    won, lost = await race_on_the_row(linli, db_url, number, moves[first], moves[second])

    report = await the_report(linli, number)
    if first == "accept":
        assert "Accepted." in texts(won)
        assert f"{number} is now in progress, so this can no longer be done." in texts(lost)
        assert report.state == "in_progress"
        assert await events(linli, report.id) == ["submit", "assign", "accept"]
        assert await awards(linli) == 1
        assert not any("closed without a fix" in n for n in dialog.notices("amy"))
    else:
        assert f"{number} was rejected." in texts(won)
        assert f"{number} is now rejected, so this can no longer be done." in texts(lost)
        assert report.state == "rejected"
        assert await events(linli, report.id) == ["submit", "assign", "reject"]
        assert await awards(linli) == 0
        assert not any("was accepted" in n for n in dialog.notices("amy"))
    assert await refusals(linli) == ["not_allowed_now"]


@pytest.mark.parametrize("first", ["resolve", "reassign"])
async def test_resolve_and_reassign_at_once(
    linli: Linli, dialog: Dialog, db_url: str, first: str
) -> None:
    number = await with_gus(dialog)
    await dialog.press("gus", "Accept")
    await hire(dialog, "gwen", Role.GRID_WORKER, grid="Grid 1")
    # Gus is resolving it while Sam passes it to Gwen: both are writing their note.
    await dialog.press("gus", "Resolved")
    await dialog.press("gus", "No photo possible")
    await open_from_queue(dialog, "sam", number)
    await dialog.press("sam", "Reassign")
    await dialog.press("sam", "Gwen")
    moves = {
        "resolve": say(dialog, "gus", "Tightened the screws"),
        "reassign": say(dialog, "sam", "Gwen has the tools for this"),
    }
    second = "reassign" if first == "resolve" else "resolve"
    won, lost = await race_on_the_row(linli, db_url, number, moves[first], moves[second])

    report = await the_report(linli, number)
    rating_asked = any("How well was it fixed" in n for n in dialog.notices("amy"))
    gwen_carded = any("passed this report to you" in n for n in dialog.notices("gwen"))
    if first == "resolve":
        assert "is resolved. The resident will be asked to rate the fix" in texts(won)
        assert f"{number} is now resolved, so this can no longer be done." in texts(lost)
        assert (report.state, report.resolved_at is not None) == ("resolved", True)
        assert (rating_asked, gwen_carded) == (True, False)
        assert (await events(linli, report.id))[-1] == "resolve"
    else:
        assert f"{number} is now with Gwen." in texts(won)
        assert f"{number} is now assigned, so this can no longer be done." in texts(lost)
        # Assigned, with no resolution time and no rating button: not both at once.
        assert (report.state, report.resolved_at) == ("assigned", None)
        assert (rating_asked, gwen_carded) == (False, True)
        assert (await events(linli, report.id))[-1] == "reassign"
    assert await refusals(linli) == ["not_allowed_now"]


@pytest.mark.parametrize("first", ["sam", "sue"])
async def test_two_staff_accept_at_once(
    linli: Linli, dialog: Dialog, db_url: str, first: str
) -> None:
    number = await with_gus(dialog)
    await hire(dialog, "sue", Role.STAFF)
    await open_from_queue(dialog, "sam", number)
    await open_from_queue(dialog, "sue", number)
    second = "sue" if first == "sam" else "sam"
    won, lost = await race_on_the_row(
        linli, db_url, number, press(dialog, first, "Accept"), press(dialog, second, "Accept")
    )

    assert "Accepted." in texts(won)
    assert f"{number} is now in progress, so this can no longer be done." in texts(lost)
    report = await the_report(linli, number)
    async with linli.sessions() as session:
        assignee = await session.scalar(select(Report.assignee_id).where(Report.id == report.id))
    assert report.state == "in_progress" and assignee == await person_id(linli, first)
    assert await events(linli, report.id) == ["submit", "assign", "accept"]
    assert await awards(linli) == 1
    assert sum("was accepted" in n for n in dialog.notices("amy")) == 1


async def person_id(linli: Linli, who: str) -> int:
    async with linli.sessions() as session:
        person = await people.by_identity(session, "console", who)
        assert person is not None
        return person.id


async def tick_alone(linli: Linli) -> None:
    """A tick that must run to its end: it never waits for a move that holds a report."""
    async with asyncio.timeout(PATIENCE):
        await linli.ticker.tick()


async def against_the_tick(
    linli: Linli,
    db_url: str,
    move: Move,
    *,
    move_first: bool,
    while_held: Callable[[], Coroutine[Any, Any, None]],
) -> Reply:
    """A person's move and the tick at once. Whoever locks the report first stays in the middle
    of its move: its timeline entry waits for the blocker. When the move is first, a whole tick
    runs meanwhile and must leave the report alone (`while_held` checks that)."""
    async with Blocker(db_url) as blocker:
        await blocker.hold_writes("report_event")
        tick = None
        if move_first:
            moving = (await blocker.queue(move()))[0]
            await tick_alone(linli)
            await while_held()
        else:
            tick, moving = await blocker.queue(linli.ticker.tick(), move())
        await blocker.release()
        moved = await moving
        if tick is not None:
            await tick
    return moved


@pytest.mark.parametrize("first", ["rating", "tick"])
async def test_rating_and_auto_close_at_once(
    linli: Linli, dialog: Dialog, db_url: str, clock: FakeClock, first: str
) -> None:
    number = await with_gus(dialog)
    await dialog.press("gus", "Accept")
    await dialog.press("gus", "Resolved")
    await dialog.press("gus", "No photo possible")
    await dialog.say("gus", "Tightened the screws")
    rate = press(dialog, "amy", "★★★★★")
    clock.advance(days=7)  # nobody rated it: the tick closes it now, as Amy finally rates it
    report = await the_report(linli, number)

    async def skipped_not_closed() -> None:
        assert (await the_report(linli, number)).state == "resolved"

    rated = await against_the_tick(
        linli, db_url, rate, move_first=first == "rating", while_held=skipped_not_closed
    )
    assert rated.outcome == "ok", texts(rated)
    await tick_alone(linli)  # the next tick finds the report moved on either way

    report = await the_report(linli, number)
    if first == "rating":
        assert "Thank you for rating" in texts(rated)
        assert (report.state, report.rating) == ("closed", 5)
        assert (await events(linli, report.id))[-1] == "confirm"
        assert not any("nobody rated the fix" in n for n in dialog.notices("amy"))
    else:
        assert f"{number} is now closed, so it can no longer be rated." in texts(rated)
        assert (report.state, report.rating) == ("closed", None)
        assert (await events(linli, report.id))[-1] == "auto_close"
        assert any("nobody rated the fix" in n for n in dialog.notices("amy"))


@pytest.mark.parametrize("first", ["resolve", "tick"])
async def test_resolve_and_escalation_at_once(
    linli: Linli, dialog: Dialog, db_url: str, clock: FakeClock, first: str
) -> None:
    number = await with_gus(dialog)
    await dialog.press("gus", "Accept")
    clock.advance(hours=72)  # the SLA of "Something else": overdue now, so the tick escalates
    await dialog.press("gus", "Resolved")
    await dialog.press("gus", "No photo possible")
    resolve = say(dialog, "gus", "Tightened the screws")

    async def skipped_not_escalated() -> None:
        assert (await the_report(linli, number)).escalation_level == 0

    resolved = await against_the_tick(
        linli, db_url, resolve, move_first=first == "resolve", while_held=skipped_not_escalated
    )
    assert resolved.outcome == "ok", texts(resolved)
    await tick_alone(linli)  # the next tick finds the report moved on either way

    report = await the_report(linli, number)
    sam_carded = any("Escalated to you" in n for n in dialog.notices("sam"))
    if first == "resolve":
        assert "is resolved" in texts(resolved)
        assert (report.state, report.escalation_level, sam_carded) == ("resolved", 0, False)
        assert (await events(linli, report.id))[-1] == "resolve"
    else:
        assert (
            f"{number} has moved on: it is in progress now, with someone else, so this was "
            "not done." in texts(resolved)
        )
        assert (report.state, report.escalation_level, sam_carded) == ("in_progress", 1, True)
        assert report.resolved_at is None
        assert report.assignee_id == await person_id(linli, "sam")
        assert (await events(linli, report.id))[-1] == "escalate"
        assert await refusals(linli) == ["not_your_role"]
