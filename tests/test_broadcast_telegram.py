"""Broadcasts through the real Telegram adapter and the Bot API stub (issue 13): a 429 waited
out at no attempt's cost, blocked people marked unreachable until they write again, a group's
limit kept, paid broadcasts flagged, replies to residents ahead of a running broadcast, and two
dispatchers on PostgreSQL sharing one broadcast without a double send, together within the
limits the stub enforces."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.app import Linli, assemble
from models import BroadcastDelivery, Identity, Role
from services import people
from services.broadcasts import compose, deliveries
from services.people import Grant
from tests.broadcast_cast import linked_groups, residents_with_chats
from tests.conftest import FakeClock, settings_for
from tests.telegram_harness import TelegramUser, running_bot, telegram_env
from tests.telegram_stub import BotApiStub, Limits


async def announce(
    bot: Linli, clock: FakeClock, text: str, *, private: bool = True, groups: bool = False
) -> int:
    async with bot.transaction() as session:
        made, _ = await compose.create(
            session,
            author_id=None,
            text=text,
            keys=["community"],
            private=private,
            groups=groups,
            ack=False,
            send_at=clock(),
            now=clock(),
        )
        return made.id


async def staff_on_telegram(bot: Linli, stub: BotApiStub) -> tuple[TelegramUser, int]:
    """Sam, who has written to the bot, made staff; his client and his person id."""
    sam = TelegramUser(stub, 8001, "Sam")
    await sam.send("/help", expect="")
    async with bot.transaction() as session:
        person = await people.by_identity(session, "telegram", "8001")
        assert person is not None
        await people.grant(session, person.id, Grant(Role.STAFF))
    return sam, person.id


def copies(stub: BotApiStub, text: str) -> Counter[str]:
    """How many times each chat got a message with this text."""
    return Counter(
        str(m["chat_id"]) for m in stub.sent if text in (m.get("text") or m.get("caption") or "")
    )


async def test_a_429_costs_no_attempt_and_a_blocked_person_is_unreachable_until_they_write(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with running_bot(db_url, stub, clock) as bot:
        chats = await residents_with_chats(bot, 6, clock())
        stub.blocked_chats.add(int(chats[2]))
        stub.fail_next("sendMessage", 429, retry_after=3)
        broadcast = await announce(bot, clock, "<b>Water</b> off at 9")
        await bot.broadcasts.run_once()
        # One send was refused with retry_after 3: the channel waits it out (the clock says).
        async with bot.sessions() as session:
            waiting = (
                await session.scalars(
                    select(BroadcastDelivery).where(BroadcastDelivery.status == "queued")
                )
            ).all()
        assert len(waiting) == 1 and waiting[0].attempts == 0  # the 429 counted no attempt
        assert waiting[0].next_attempt_at == clock() + timedelta(seconds=3)
        clock.advance(seconds=4)
        await bot.broadcasts.run_once()
        got = copies(stub, "Water off at 9")
        assert got == {chat: 1 for chat in chats if chat != chats[2]}
        # The text went as HTML: Telegram rendered the bold.
        sent = next(m for m in stub.sent if "Water off at 9" in (m.get("text") or ""))
        assert sent["parse_mode"] == "HTML" and sent["raw_text"] == "<b>Water</b> off at 9"
        async with bot.sessions() as session:
            counts = await deliveries.counts(session, broadcast)
            blocked = await session.scalar(
                select(Identity.private_chat_id).where(Identity.external_id == chats[2])
            )
        assert (counts.delivered, counts.unreachable, counts.failed, counts.queued) == (5, 1, 0, 0)
        assert blocked is None
        # They unblock the bot and write: reachable again, and the next broadcast reaches them.
        stub.blocked_chats.discard(int(chats[2]))
        person = TelegramUser(stub, int(chats[2]), "Resident 2")
        await person.send("/help", expect="")
        await announce(bot, clock, "Lift repaired")
        await bot.broadcasts.run_once()
        assert copies(stub, "Lift repaired")[chats[2]] == 1


async def test_a_group_gets_no_more_than_its_limit(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    """The stub allows a group 3 messages in any 2 s (Telegram: 20 a minute); the bot keeps
    to 80 a minute (1.33 a second), so six announcements in a row pass with no 429."""
    stub.limits = Limits(per_group_per_minute=3, group_seconds=2.0)
    env = {"LINLI_TELEGRAM__GROUP_MESSAGES_PER_MINUTE": "80"}
    async with running_bot(db_url, stub, clock, **env) as bot:
        (group,) = await linked_groups(bot, 1, clock())
        for n in range(6):
            await announce(bot, clock, f"Notice {n}", private=False, groups=True)
        await bot.broadcasts.run_once()
        assert stub.too_many == 0
        assert sorted(m["text"] for m in stub.sent if str(m["chat_id"]) == group) == [
            f"Notice {n}" for n in range(6)
        ]


async def test_paid_broadcasts_are_flagged_and_replies_are_not(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with running_bot(db_url, stub, clock, LINLI_TELEGRAM__PAID_BROADCAST="true") as bot:
        await residents_with_chats(bot, 3, clock())
        await announce(bot, clock, "Paid for")
        await bot.broadcasts.run_once()
        amy = TelegramUser(stub, 9001, "Amy")
        await amy.send("/help", expect="")
    broadcast = [c for c in stub.calls_to("sendMessage") if c.get("text") == "Paid for"]
    replies = [c for c in stub.calls_to("sendMessage") if int(c["chat_id"]) == 9001]
    assert len(broadcast) == 3 and all(c.get("allow_paid_broadcast") for c in broadcast)
    assert replies and not any(c.get("allow_paid_broadcast") for c in replies)


async def test_a_reply_to_a_resident_goes_ahead_of_a_running_broadcast(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    """With Telegram's limits on, a broadcast to 90 people runs at the bot's pace (about 3 s);
    Amy writes in the middle of it and her answer takes the next slot: at most a couple of the
    broadcast's messages go out between her message and the answer. No 429 at all."""
    stub.limits = Limits()
    async with running_bot(db_url, stub, clock) as bot:
        amy = TelegramUser(stub, 9001, "Amy")
        await amy.send("/help", expect="")
        await residents_with_chats(bot, 90, clock())
        await announce(bot, clock, "Election day")
        running = asyncio.create_task(bot.broadcasts.run_once())
        await stub.wait_for_message(700_029, contains="Election day", timeout=10)
        mark = len(stub.sent)
        answer = await amy.send("/help", expect="")
        between = sum("Election day" in (m.get("text") or "") for m in stub.sent[mark:])
        before = stub.sent.index(answer)
        ahead = sum("Election day" in (m.get("text") or "") for m in stub.sent[mark:before])
        assert ahead <= 3, (ahead, between)
        await running
        assert len(copies(stub, "Election day")) == 90 and stub.too_many == 0


async def test_two_dispatchers_on_postgresql_share_a_broadcast_without_a_double_send(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    """Two processes' worth of the bot on one database, each sending through its own Telegram
    channel: they claim different rows (SKIP LOCKED), and their shared pace keeps the two
    together within the bot's 30 a second (the stub answers 429 past it)."""
    if not db_url.startswith("postgresql"):
        import pytest

        pytest.skip("SQLite has one writer: one dispatcher")
    stub.limits = Limits()
    async with running_bot(db_url, stub, clock) as first:
        second = assemble(settings_for(db_url, **telegram_env(stub)), clock=clock)
        assert second.telegram is not None
        await second.telegram.app.initialize()
        try:
            chats = await residents_with_chats(first, 150, clock())
            await announce(first, clock, "Shared out")
            sent = await asyncio.gather(first.broadcasts.run_once(), second.broadcasts.run_once())
        finally:
            await second.telegram.app.shutdown()
            await second.close()
    assert sorted(sent) == sorted(sent) and sum(sent) == 150
    assert all(n > 20 for n in sent), sent  # both took part
    assert copies(stub, "Shared out") == {chat: 1 for chat in chats}
    assert stub.too_many == 0


def test_the_progress_line_reads_as_the_issue_shows_it() -> None:
    from handlers.broadcasts.notices import progress_line
    from handlers.i18n import Catalogs

    started = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    counts = deliveries.Counts(queued=4770, delivered=5230)
    line = progress_line(Catalogs().get("en"), counts, started, started + timedelta(seconds=176.7))
    assert line == "▓▓▓▓▓░░░░░ 52% · 5,230/10,000 · 29.6/s · ETA 2m41s"
    chinese = progress_line(
        Catalogs().get("zh_CN"), counts, started, started + timedelta(seconds=176.7)
    )
    assert chinese.endswith("预计还需 2分41秒")


async def test_the_senders_card_shows_progress_then_the_final_report(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    """Sam sends to 100 residents at Telegram's pace (about 3.5 s): his card is sent once,
    edited in place as it goes (at most every 3 s of the bot's clock), and ends as the report."""
    async with running_bot(db_url, stub, clock) as bot:
        _, person_id = await staff_on_telegram(bot, stub)
        await residents_with_chats(bot, 100, clock())
        async with bot.transaction() as session:
            made, _ = await compose.create(
                session, author_id=person_id, text="Trees trimmed on Monday", keys=["community"],
                private=True, groups=False, ack=False, send_at=clock(), now=clock(),
            )  # fmt: skip
        ticking = asyncio.create_task(bot.broadcasts.run_once())
        await stub.wait_for_message(700_010, contains="Trees trimmed")
        clock.advance(seconds=4)  # the bot's clock: time for the card
        first = await stub.wait_for_message(8001, contains=f"Broadcast #{made.id} is going out.")
        clock.advance(seconds=4)  # and for an edit
        await ticking
        await bot.dispatcher.drain()
    cards = [
        m for m in stub.sent if m["chat_id"] == 8001 and "Broadcast #" in (m.get("text") or "")
    ]
    assert cards[0]["method"] == "sendMessage" and len(cards) >= 2
    assert all(m["method"] == "editMessageText" for m in cards[1:])
    assert all(m["message_id"] == first["message_id"] for m in cards)
    final = cards[-1]["text"]
    assert final.startswith(f"Broadcast #{made.id} is done.")
    assert "Delivered 100 · unreachable 0 · failed 0" in final
    assert "Telegram: 100 delivered, 0 unreachable, 0 failed" in final


async def test_other_errors_back_off_then_fail_with_the_reason(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with running_bot(db_url, stub, clock, LINLI_BROADCAST__MAX_ATTEMPTS="2") as bot:
        (chat,) = await residents_with_chats(bot, 1, clock())
        for _ in range(2):
            stub.fail_next("sendMessage", 500, "Internal Server Error: try later", retry_after=None)
        broadcast = await announce(bot, clock, "Boiler check")
        await bot.broadcasts.run_once()
        async with bot.sessions() as session:
            row = (await session.scalars(select(BroadcastDelivery))).one()
        assert (row.status, row.attempts) == ("queued", 1)
        assert row.next_attempt_at == clock() + timedelta(seconds=10)  # the back-off
        clock.advance(seconds=11)
        await bot.broadcasts.run_once()
        async with bot.sessions() as session:
            row = (await session.scalars(select(BroadcastDelivery))).one()
            counts = await deliveries.counts(session, broadcast)
        assert (row.status, row.attempts) == ("failed", 2)
        assert row.last_error is not None and "Internal Server Error" in row.last_error
        assert (counts.failed, counts.delivered) == (1, 0)
        assert copies(stub, "Boiler check")[chat] == 0


async def test_an_announcement_with_a_pdf_composed_and_received_on_telegram(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    """Staff attach a PDF while composing (a file that only claims to be one is refused
    politely); residents get the document, then the text naming it."""
    async with running_bot(db_url, stub, clock) as bot:
        sam, _ = await staff_on_telegram(bot, stub)
        chats = await residents_with_chats(bot, 2, clock())
        await sam.send("/broadcast", expect="Announcements:")
        await sam.press("New announcement", expect="Type the announcement")
        await sam.send("<b>Water</b> off: the plan is attached", expect="a PDF document")
        mark = len(stub.sent)
        stub.push_update(
            stub.message_update(
                8001, document={"file_name": "plan.pdf", "content": b"MZ not a pdf at all"}
            )
        )
        await stub.wait_for_message(8001, contains="not a PDF document", after=mark)
        mark = len(stub.sent)
        pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
        stub.push_update(
            stub.message_update(8001, document={"file_name": "../停水 plan.pdf", "content": pdf})
        )
        await stub.wait_for_message(8001, contains="Who is it for?", after=mark)
        await sam.press("The whole community", expect="Anyone else?")
        await sam.press("That's all", expect="Where should it go?")
        await sam.press("Private chats", expect="When?")
        await sam.press("Now", expect="Ask for acknowledgement?")
        preview = await sam.press("No", expect="Preview:")
        assert "With the document 停水 plan.pdf." in preview["text"]
        await sam.press("Send", expect="is going out to 2 chats")
        await bot.broadcasts.run_once()
    for chat in chats:
        got = [m for m in stub.sent if str(m["chat_id"]) == chat]
        assert [m["method"] for m in got] == ["sendDocument", "sendMessage"]
        assert got[0]["document"]["file_name"] == "停水 plan.pdf"
        assert got[1]["text"] == "Water off: the plan is attached\n\n📎 停水 plan.pdf"
