"""Issue 8, item 7: logs carry ids, never names, texts or SQL parameters (DESIGN.md "Security").

A registration and a report go through Telegram while the database refuses the very statements
that carry a person's name and a report's description, as a constraint would. Everything that is
logged meanwhile, at DEBUG and with tracebacks, is searched for what the people typed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from bot.app import Linli
from tests.conftest import FakeClock
from tests.telegram_harness import TelegramUser, invite_code, running_bot
from tests.telegram_stub import BotApiStub

# Everything people type or are called: none of it may be logged.
FIRST_NAME = "Firstcanary"  # the name Telegram sends along with every update
REFUSED_NAME = "Refusedcanary Qian"  # the database refuses this one
NAME = "Namecanary Sun"
HINT = "Hintcanary behind the bins"
DESCRIPTION = "Desccanary the pipe is leaking"
CHATTER = "Chattercanary how are you"
CANARIES = ("Firstcanary", "Refusedcanary", "Namecanary", "Hintcanary", "Desccanary", "Chatter")

SQLITE_REFUSALS = (
    """CREATE TRIGGER refuse_name BEFORE UPDATE OF display_name ON person
       WHEN NEW.display_name LIKE 'Refusedcanary%'
       BEGIN SELECT RAISE(ABORT, 'refused by the test'); END""",
    """CREATE TRIGGER refuse_report BEFORE INSERT ON report
       BEGIN SELECT RAISE(ABORT, 'refused by the test'); END""",
)
SQLITE_CLEANUP = ("DROP TRIGGER refuse_name", "DROP TRIGGER refuse_report")
# On PostgreSQL a check constraint: its error's DETAIL names the whole failing row.
PG_REFUSALS = (
    "ALTER TABLE person ADD CONSTRAINT refuse_name "
    "CHECK (display_name NOT LIKE 'Refusedcanary%') NOT VALID",
    "ALTER TABLE report ADD CONSTRAINT refuse_report CHECK (false) NOT VALID",
)
PG_CLEANUP = (
    "ALTER TABLE person DROP CONSTRAINT refuse_name",
    "ALTER TABLE report DROP CONSTRAINT refuse_report",
)


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


async def run_sql(bot: Linli, statements: tuple[str, ...]) -> None:
    async with bot.db.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def test_no_log_line_carries_names_or_texts(
    db_url: str, clock: FakeClock, everything_logged: pytest.LogCaptureFixture
) -> None:
    async with BotApiStub() as stub, running_bot(db_url, stub, clock) as bot:
        postgres = bot.db.dialect.name == "postgresql"
        await run_sql(bot, PG_REFUSALS if postgres else SQLITE_REFUSALS)
        try:
            code = await invite_code(bot)
            kim = TelegramUser(stub, 7301, FIRST_NAME)
            await kim.send(CHATTER, expect="I didn't catch that")
            await kim.send(f"/start {code}", expect="Which room")
            await kim.send("302", expect="What is your name")
            await kim.send(REFUSED_NAME, expect="Sorry, something went wrong")
            await kim.send(NAME, expect="You are registered")

            await kim.send("/report", expect="Please send up to 4 photos")
            await kim.press("Continue without a photo", expect="What kind of problem")
            await kim.press("Something else", expect="Where is the problem")
            await kim.press("My building", expect="Anything that helps")
            await kim.send(HINT, expect="Describe the problem")
            await kim.send(DESCRIPTION, expect="Please check your report")
            await kim.press("Submit", expect="Sorry, something went wrong")
            await stub.wait_idle()
        finally:
            await run_sql(bot, PG_CLEANUP if postgres else SQLITE_CLEANUP)

    failures = [r for r in everything_logged.records if r.levelno >= logging.ERROR]
    assert len(failures) >= 2, "both refused statements are logged as failed updates"
    assert all(r.exc_info for r in failures)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = "\n".join(formatter.format(record) for record in everything_logged.records)
    assert "refused by the test" in logged or "refuse_report" in logged  # the cause is there
    leaked = [canary for canary in CANARIES if canary in logged]
    assert not leaked, f"logged: {leaked}"
