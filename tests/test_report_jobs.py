"""The tick's report jobs when one report is bad: each report is moved on its own, so a report
whose category was removed from bot.toml is skipped (and logged once) while every other report
is still dispatched, reminded, escalated and closed; `linli init` names it. SQLite and Postgres."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import update

from bot.app import Linli
from models import Report, Role
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.report_cast import hire, join
from tests.test_config import linli as run_linli
from tests.test_reports import draft_without_photo, events, report_without_photo, the_report

GONE = "gone"  # a category that was in bot.toml when the report was made, and is no more


@pytest.fixture
async def dialog(linli: Linli) -> Dialog:
    return Dialog(linli)


async def waiting_report(dialog: Dialog, who: str, description: str) -> str:
    """Submitted while nobody could take it: it waits for the tick to dispatch it."""
    reply = await draft_without_photo(dialog, who, description)
    if "Mine is different" in [o.label for m in reply.messages for o in m.options]:
        await dialog.press(who, "Mine is different")
    submitted = (await dialog.press(who, "Submit")).messages[0].text
    assert "Community staff will pass it to the right person soon" in submitted, submitted
    return submitted.split("Your report ")[1].split(" ")[0]


async def remove_category(linli: Linli, number: str) -> None:
    """As if its category had been taken out of the configuration."""
    async with linli.transaction() as session:
        await session.execute(update(Report).where(Report.number == number).values(category=GONE))


async def tick(linli: Linli, clock: FakeClock, **advance: float) -> None:
    clock.advance(**advance)
    await linli.ticker.tick()
    await linli.dispatcher.drain()


async def test_a_report_of_a_removed_category_stops_no_other(
    linli: Linli, dialog: Dialog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="linli.reports")
    await join(dialog, "amy")
    bad_waiting = await waiting_report(dialog, "amy", "The bench is broken")
    waiting = await waiting_report(dialog, "amy", "The bin lid is broken")
    await remove_category(linli, bad_waiting)
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    overdue = await report_without_photo(dialog, "amy", "The gate squeaks")
    bad_overdue = await report_without_photo(dialog, "amy", "The lamp flickers")
    await remove_category(linli, bad_overdue)
    fixed = await report_without_photo(dialog, "amy", "The door sticks")
    await dialog.press("gus", "Accept")
    await dialog.press("gus", "Resolved")
    await dialog.press("gus", "No photo possible")
    await dialog.say("gus", "Planed the door")

    await tick(linli, clock)  # dispatched
    assert f"New report for you to handle:\n\nReport {waiting}" in "\n".join(dialog.notices("gus"))
    assert (await the_report(linli, waiting)).state == "assigned"
    await tick(linli, clock, hours=54)  # three quarters of 72 h: reminded
    reminded = "\n".join(dialog.notices("gus"))
    for number in (waiting, overdue):
        assert f"Reminder: {number} (Something else) is due by" in reminded
    await hire(dialog, "sam", Role.STAFF)
    await tick(linli, clock, hours=18)  # 72 h: escalated
    escalated = "\n".join(dialog.notices("sam"))
    for number in (waiting, overdue):
        assert f"Report {number}" in escalated
        assert (await the_report(linli, number)).escalation_level == 1
    await tick(linli, clock, days=6)  # a week after the fix nobody rated: closed
    assert (await the_report(linli, fixed)).state == "closed"
    assert (await events(linli, (await the_report(linli, fixed)).id))[-1] == "auto_close"

    # The bad ones were left as they were, and each was logged once, not every tick.
    assert (await the_report(linli, bad_waiting)).assignee_id is None
    assert (await the_report(linli, bad_overdue)).escalation_level == 0
    logged = [r.getMessage() for r in caplog.records if GONE in r.getMessage()]
    assert sorted(logged) == sorted(
        f"report {number} has category '{GONE}', which is not configured; the tick skips it"
        for number in (bad_waiting, bad_overdue)
    )


async def test_init_warns_about_open_reports_of_removed_categories(
    linli: Linli, dialog: Dialog, db_url: str
) -> None:
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    bad = await report_without_photo(dialog, "amy", "The bench is broken")
    await report_without_photo(dialog, "amy", "The bin lid is broken")
    await remove_category(linli, bad)

    result = run_linli("init", env={"LINLI_DATABASE__URL": db_url})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "no longer configured" in line]
    assert len(warnings) == 1, result.stderr
    assert f"open report {bad} has category '{GONE}'" in warnings[0]
    assert "WARNING" in warnings[0]


async def test_people_can_still_pass_on_and_reopen_a_report_of_a_removed_category(
    linli: Linli, dialog: Dialog
) -> None:
    await join(dialog, "amy")
    workers = {
        await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1"): "gus",
        await hire(dialog, "gil", Role.GRID_WORKER, grid="Grid 1"): "gil",
    }
    await hire(dialog, "sam", Role.STAFF)
    number = await report_without_photo(dialog, "amy", "The lamp flickers")
    await remove_category(linli, number)
    worker = workers[(await the_report(linli, number)).assignee_id or 0]
    other = "gil" if worker == "gus" else "gus"
    await dialog.press(worker, "Reassign")
    await dialog.press(worker, other.title())
    passed = await dialog.say(worker, "On leave this week")
    assert f"{number} is now with {other.title()}" in texts(passed)
    await dialog.press(other, "Accept")
    await dialog.press(other, "Resolved")
    await dialog.press(other, "No photo possible")
    await dialog.say(other, "New bulb")
    reopened = await dialog.press("amy", "Not fixed")
    assert "is reopened" in texts(reopened)
    report = await the_report(linli, number)
    assert (report.state, report.escalation_level) == ("reopened", 1)  # up to the staff
    assert f"Report {number}" in "\n".join(dialog.notices("sam"))
