"""Item 14 of the hardening issue: effects exactly-once, replies at-least-once.

A crash between the commit and the send is what happens when the process dies after handling
an update: the replies were committed with it and never left. Here that is a handled update
whose reply was never reported sent, or a send that failed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import event, func, select

from bot.app import Linli
from bot.database import Database, create_engine, migrate
from handlers.messages import Kind
from models import ProcessedUpdate, Report
from services import replies
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.races import Blocker
from tests.report_cast import join
from tests.telegram_harness import TelegramUser, invite_code, register, running_bot
from tests.telegram_stub import BotApiStub
from tests.test_reports import draft_without_photo


async def count(linli: Linli, model: type) -> int:
    async with linli.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def unsent(linli: Linli) -> int:
    """Updates whose replies are kept because they may not have gone out."""
    async with linli.sessions() as session:
        query = select(func.count()).where(ProcessedUpdate.replies.is_not(None))
        return int(await session.scalar(query) or 0)


async def test_a_redelivered_update_whose_replies_never_left_gets_them_again(
    linli: Linli,
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await draft_without_photo(dialog, "amy", "The lift is stuck")
    submit = dialog.channel.incoming(
        "amy", kind=Kind.CHOICE, payload=dialog.payload("amy", "Submit"), key="press-submit"
    )

    first = await linli.dialogue.handle(submit)  # committed; then the process died
    assert "Your report R-2026-000001 is in" in texts(first)
    again = await linli.dialogue.handle(submit)  # Telegram redelivers the update
    assert again.outcome == "resent"
    assert texts(again) == texts(first)
    assert await count(linli, Report) == 1  # the effect happened once

    again.sent()
    await linli.dialogue.receipts.flush()
    assert await unsent(linli) == 0
    third = await linli.dialogue.handle(submit)
    assert third.outcome == "duplicate" and third.messages == []


async def test_a_reply_sent_and_then_redelivered_is_not_repeated(linli: Linli) -> None:
    dialog = Dialog(linli)
    await dialog.say("amy", "/help", key="help-1")
    again = await dialog.say("amy", "/help", key="help-1")
    assert again.outcome == "duplicate" and again.messages == []


async def resident_whose_next_answer_fails(linli: Linli, stub: BotApiStub) -> TelegramUser:
    amy = TelegramUser(stub, 501, "Amy")
    await register(amy, await invite_code(linli), "302")
    # The next answer cannot be delivered (the network dropped it).
    stub.fail_next("sendMessage", error_code=400, description="Bad Request: flaky")
    return amy


async def test_the_tick_sends_replies_a_failed_send_left_behind(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with running_bot(db_url, stub, clock) as linli:
        amy = await resident_whose_next_answer_fails(linli, stub)
        stub.send_text(amy.id, "/help")
        await stub.wait_idle()
        assert "registered" in amy.texts()[-1]  # the answer to /help never arrived
        assert await unsent(linli) == 1

        clock.advance(minutes=1)
        await linli.ticker.tick()
        assert await unsent(linli) == 1  # a live process may still be sending

        clock.advance(minutes=2)
        report = await linli.ticker.tick()
        assert report.replies_resent == 1
        assert "/report" in amy.texts()[-1]
        assert await unsent(linli) == 0


async def test_a_redelivered_update_after_a_failed_send_is_answered(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with running_bot(db_url, stub, clock) as linli:
        amy = await resident_whose_next_answer_fails(linli, stub)
        update = stub.message_update(amy.id, "/help", first_name="Amy", language_code="en")
        stub.push_update(update)
        await stub.wait_idle()
        before = len(amy.texts())
        stub.push_update(update)  # Telegram delivers the same update again
        answer = await stub.wait_for_message(amy.id, contains="/report", after=len(stub.sent) - 1)
        assert answer is not None
        assert len(amy.texts()) == before + 1


async def test_one_update_handled_by_two_workers_at_once_counts_once(
    db_url: str, two_workers: tuple[Linli, Linli]
) -> None:
    first, second = two_workers
    dialog = Dialog(first)
    await join(dialog, "amy")
    await draft_without_photo(dialog, "amy", "The lift is stuck")
    submit = dialog.channel.incoming(
        "amy", kind=Kind.CHOICE, payload=dialog.payload("amy", "Submit"), key="tap"
    )
    # Telegram delivers the same update to two workers (a webhook retried after a timeout).
    async with Blocker(db_url) as blocker:
        await blocker.hold_writes("report")
        tasks = await blocker.queue(first.dialogue.handle(submit), second.dialogue.handle(submit))
        await blocker.release()
        both = await asyncio.gather(*tasks)
    assert await count(first, Report) == 1
    # Either may win; the other answers as a redelivery with the winner's replies.
    won, lost = sorted(both, key=lambda r: r.outcome)  # "ok" < "resent"
    assert (won.outcome, lost.outcome) == ("ok", "resent")
    assert texts(lost) == texts(won)  # the same answer again, never a second report


async def test_forgetting_sent_replies_searches_the_primary_key(tmp_path: Path) -> None:
    """It runs every fraction of a second against a week of updates: never a table scan."""
    database = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}"))
    await migrate(database.engine)
    statements: list[tuple[str, object]] = []

    def capture(_conn: object, _cursor: object, sql: str, params: object, *_: object) -> None:
        statements.append((sql, params))

    event.listen(database.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with database.transaction() as session:
            await replies.forget(session, [("telegram", "1"), ("telegram", "2"), ("wechat", "3")])
        updates_run = [(s, p) for s, p in statements if s.startswith("UPDATE processed_update")]
        assert len(updates_run) == 2  # one per channel
        async with database.engine.connect() as connection:
            for sql, params in updates_run:
                plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
                details = " ".join(str(row[-1]) for row in plan)
                assert "SEARCH processed_update USING INDEX" in details, details
                assert "SCAN processed_update" not in details, details
    finally:
        await database.close()
