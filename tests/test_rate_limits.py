"""A 429 from Telegram loses nothing (issue 8, item 13; DESIGN.md "Rate limits").

Direct replies wait out `retry_after` and send the same message again; outbox rows get a
next-attempt time. A 429 costs no attempt; other errors back off until MAX_ATTEMPTS.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from telegram.error import RetryAfter

from bot.app import Linli
from bot.channels.telegram import retry_after_seconds
from bot.channels.telegram_http import AiohttpRequest
from models import OutboxMessage
from services import outbox, people
from tests.conftest import FakeClock
from tests.telegram_harness import TelegramUser, running_bot
from tests.telegram_stub import BotApiStub


@pytest.fixture
async def bot(db_url: str, stub: BotApiStub, clock: FakeClock) -> AsyncIterator[Linli]:
    async with running_bot(db_url, stub, clock) as linli:
        yield linli


async def notice_for(linli: Linli, clock: FakeClock, telegram_id: int, text: str) -> int:
    async with linli.sessions() as session, session.begin():
        person = await people.identify(
            session, "telegram", str(telegram_id), private_chat_id=str(telegram_id)
        )
        outbox.enqueue(session, person.id, {"text": text}, clock())
        await session.flush()
        row = await session.scalar(
            select(OutboxMessage).where(OutboxMessage.person_id == person.id)
        )
        assert row is not None
        return row.id


async def row(linli: Linli, message_id: int) -> OutboxMessage:
    async with linli.sessions() as session:
        found = await session.get(OutboxMessage, message_id)
        assert found is not None
        return found


def sends(stub: BotApiStub) -> int:
    return len(stub.calls_to("sendMessage"))


# ------------------------------------------------------------------ the transport


async def test_our_raw_send_maps_a_429_to_retry_after(stub: BotApiStub) -> None:
    """sendMessage goes out as raw JSON, past PTB's own error mapping: it must say 429 too."""
    http = AiohttpRequest()
    await http.initialize()
    url = f"{stub.api_base_url}{stub.token}/sendMessage"
    try:
        stub.fail_next("sendMessage", error_code=429, retry_after=7)
        with pytest.raises(RetryAfter) as told:
            await http.call(url, {"chat_id": 1, "text": "hi"})
        assert retry_after_seconds(told.value) == 7
        stub.fail_next("sendMessage", error_code=429, retry_after=None)
        with pytest.raises(RetryAfter) as guessed:
            await http.call(url, {"chat_id": 1, "text": "hi"})
        assert retry_after_seconds(guessed.value) == 1
        assert (await http.call(url, {"chat_id": 1, "text": "hi"}))["text"] == "hi"
    finally:
        await http.shutdown()


# ------------------------------------------------------------------ direct replies


async def test_a_direct_reply_that_meets_a_429_arrives_after_retry_after(
    sqlite_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with running_bot(sqlite_url, stub, clock):
        user = TelegramUser(stub, 3001, "Ray")
        stub.fail_next("sendMessage", error_code=429, retry_after=1)
        started = time.monotonic()
        await user.send("/help", expect="what you can do", patience=10)
        assert time.monotonic() - started >= 1.0
        # One refused call, then the same message once: no hammering, nothing twice.
        assert [str(c["chat_id"]) for c in stub.calls_to("sendMessage")] == ["3001", "3001"]
        assert len(stub.messages_to(3001)) == 1


async def test_a_429_in_the_middle_of_a_long_message_loses_none_of_it(
    sqlite_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    """A text sent in two parts: the second meets the 429 and is waited out in place, so the
    first is not sent twice (the outbox would otherwise send the whole message again)."""
    async with running_bot(sqlite_url, stub, clock) as linli:
        user = TelegramUser(stub, 3101, "Ruth")
        await user.send("/help", expect="what you can do")
        long_text = "\n".join(f"line {i} " + "x" * 60 for i in range(80))  # > 4096: two parts
        async with linli.sessions() as session, session.begin():
            person = await people.by_identity(session, "telegram", "3101")
            assert person is not None
            outbox.enqueue(session, person.id, {"text": long_text}, clock())
        mark, calls_before = len(stub.sent), sends(stub)
        stub.fail_next("sendMessage", error_code=429, retry_after=1, after=1)
        assert await linli.dispatcher.run_once() == 1
        parts = [e["text"] for e in stub.sent[mark:]]
        assert len(parts) == 2 and "\n".join(parts) == long_text
        assert sends(stub) - calls_before == 3  # part one, part two refused, part two again


# ------------------------------------------------------------------ the outbox


async def test_an_outbox_429_waits_retry_after_and_costs_no_attempt(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    message_id = await notice_for(bot, clock, 9001, "water off at 9")
    stub.fail_next("sendMessage", error_code=429, retry_after=30)
    assert await bot.dispatcher.run_once() == 0
    waiting = await row(bot, message_id)
    assert waiting.status == "pending" and waiting.attempts == 0
    assert waiting.next_attempt_at == clock() + timedelta(seconds=30)
    assert waiting.last_error is not None and "30" in waiting.last_error
    calls = sends(stub)
    assert await bot.dispatcher.run_once() == 0
    clock.advance(seconds=29)
    assert await bot.dispatcher.run_once() == 0
    assert sends(stub) == calls  # nothing is sent before next_attempt_at
    clock.advance(seconds=1)
    assert await bot.dispatcher.run_once() == 1
    await stub.wait_for_message(9001, contains="water off at 9")
    done = await row(bot, message_id)
    assert done.status == "sent" and done.attempts == 1
    assert len(stub.messages_to(9001)) == 1


async def test_a_429_pauses_the_whole_bot_for_retry_after(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    ids = [await notice_for(bot, clock, 9100 + i, f"notice {i}") for i in range(3)]
    stub.fail_next("sendMessage", error_code=429, retry_after=10)
    calls = sends(stub)
    assert await bot.dispatcher.run_once() == 0
    assert sends(stub) == calls + 1  # the others were not tried while the bot must wait
    for message_id in ids:
        waiting = await row(bot, message_id)
        assert (waiting.status, waiting.attempts) == ("pending", 0)
        assert waiting.next_attempt_at == clock() + timedelta(seconds=10)
    clock.advance(seconds=10)
    assert await bot.dispatcher.run_once() == 3
    for i in range(3):
        await stub.wait_for_message(9100 + i, contains=f"notice {i}")


async def test_other_errors_back_off_then_fail_with_the_reason(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    message_id = await notice_for(bot, clock, 9201, "the lift is fixed")
    for _ in range(outbox.MAX_ATTEMPTS):
        stub.fail_next(
            "sendMessage", error_code=500, description="Internal Server Error", retry_after=None
        )
    gaps: list[timedelta] = []
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        assert await bot.dispatcher.run_once() == 0
        current = await row(bot, message_id)
        assert current.attempts == attempt
        assert current.last_error is not None and "Internal Server Error" in current.last_error
        if attempt == outbox.MAX_ATTEMPTS:
            assert current.status == "failed"
            break
        assert current.status == "pending" and current.next_attempt_at is not None
        gap = current.next_attempt_at - clock()
        gaps.append(gap)
        calls = sends(stub)
        clock.advance(seconds=gap.total_seconds() - 1)
        assert await bot.dispatcher.run_once() == 0
        assert sends(stub) == calls  # not before next_attempt_at
        clock.advance(seconds=1)
    assert gaps == sorted(gaps) and len(set(gaps)) == len(gaps)  # each wait longer than the last
    assert gaps[0] >= timedelta(seconds=1)
    calls = sends(stub)
    clock.advance(days=1)
    assert await bot.dispatcher.run_once() == 0
    assert sends(stub) == calls and stub.messages_to(9201) == []
