"""Telegram end to end: real python-telegram-bot, real HTTP, the Bot API stub, a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.app import Linli
from models import AuditEntry, Identity, OutboxMessage, Role
from services import community, outbox, people
from services.people import Grant
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.telegram_harness import TelegramUser, invite_code, running_bot, telegram_env
from tests.telegram_stub import AsgiServer, BotApiStub


@pytest.fixture
async def bot(
    db_url: str, stub: BotApiStub, clock: FakeClock, approval: str
) -> AsyncIterator[Linli]:
    async with running_bot(db_url, stub, clock, LINLI_COMMUNITY__APPROVAL=approval) as linli:
        yield linli


async def test_registration_by_invite_auto(bot: Linli, stub: BotApiStub) -> None:
    code = await invite_code(bot)
    alice = TelegramUser(stub, 1001, "Alice")
    welcome = await alice.send("/start", expect="invite code")
    assert stub.buttons(welcome) == []
    await alice.send(f"/start {code}", expect="You are joining Building 2")
    await alice.send("605", expect="Building 2 has no room 605")
    prompt = await alice.send("504", expect="Room 504, thank you")
    assert [label for label, _ in stub.buttons(prompt)] == ["Use “Alice”"]
    await alice.press("Use", expect="You are registered in Building 2, room 504. Welcome, Alice!")
    # The pressed keyboard is cleared so it cannot be pressed again by mistake.
    cleared = stub.calls_to("editMessageReplyMarkup")
    assert cleared and cleared[-1]["message_id"] == prompt["message_id"]
    async with bot.sessions() as session:
        person = await people.by_identity(session, "telegram", "1001")
        assert person is not None and person.status == "active"


async def test_commands_menu_in_both_languages(bot: Linli, stub: BotApiStub) -> None:
    menus = {call.get("language_code"): call["commands"] for call in stub.calls_to("setMyCommands")}
    assert set(menus) == {"zh", "en", None}
    english = {c["command"]: c["description"] for c in menus["en"]}
    chinese = {c["command"]: c["description"] for c in menus["zh"]}
    assert set(english) == {
        *("start", "help", "language", "link", "report", "myreports"),
        *("poll", "verify", "points", "rewards", "timebank", "agenda", "cancel"),
    }
    assert set(chinese) == set(english)
    assert english["help"] == "Show what you can do" and chinese["help"] == "查看可以使用的功能"
    assert chinese["agenda"] == "每月议事：提出议题、支持议题并投票"
    assert menus[None] == menus["zh"]  # the community's default language


@pytest.mark.parametrize("approval", ["building_head"])
async def test_registration_approved_by_building_head(bot: Linli, stub: BotApiStub) -> None:
    head = TelegramUser(stub, 2001, "Head", language="zh-hans")
    await head.send("/help", expect="您可以使用以下功能")
    async with bot.sessions() as session, session.begin():
        person = await people.by_identity(session, "telegram", "2001")
        building = await community.building_by_name(session, "Building 2")
        assert person is not None and building is not None
        await people.grant(session, person.id, Grant(Role.BUILDING_HEAD, building_id=building.id))
    code = await invite_code(bot)
    bob = TelegramUser(stub, 2002, "Bob")
    await bob.send(f"/start {code}", expect="Which room")
    await bob.send("203", expect="What is your name")
    await bob.send("Bob Li", expect="Your building head will confirm")
    card = await stub.wait_for_message(2001, contains="Bob Li 申请加入 Building 2 203 室")
    assert [label for label, _ in stub.buttons(card)] == ["批准", "拒绝"]
    mark = len(stub.sent)
    await head.press("批准", on=card, expect="已批准：Bob Li")
    await stub.wait_for_message(2002, contains="was approved", after=mark)
    # The same card pressed again (a double tap, or a replayed update) changes nothing.
    again = await head.press("拒绝", on=card, expect="按钮已失效")
    assert again
    async with bot.sessions() as session:
        bob_person = await people.by_identity(session, "telegram", "2002")
        assert bob_person is not None and bob_person.status == "active"


async def test_language_switch(bot: Linli, stub: BotApiStub) -> None:
    wang = TelegramUser(stub, 3001, "王", language="zh-hans")
    await wang.send("/help", expect="您可以使用以下功能")
    await wang.send("/language", expect="请选择语言")
    await wang.press("English", expect="speak English with you")
    await wang.send("/help", expect="Here is what you can do")


async def test_role_refusal(bot: Linli, stub: BotApiStub) -> None:
    eve = TelegramUser(stub, 4001, "Eve")
    await eve.send("/pending", expect="/pending is not available to you")
    async with bot.sessions() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "command.refused")
        )
    assert entry is not None and entry.outcome == "refused"


async def test_duplicate_update_id_is_handled_once(bot: Linli, stub: BotApiStub) -> None:
    update = stub.message_update(5001, "/help", first_name="Dup")
    stub.push_update(update)
    await stub.wait_for_message(5001, contains="what you can do")
    stub.push_update(update)  # Telegram redelivers the very same update
    stub.send_text(5001, "/language", first_name="Dup")
    await stub.wait_for_message(5001, contains="language")
    await stub.wait_idle()
    helps = [t for t in TelegramUser(stub, 5001, "Dup").texts() if "what you can do" in t]
    assert len(helps) == 1


async def test_stale_and_forged_buttons(bot: Linli, stub: BotApiStub) -> None:
    ivy = TelegramUser(stub, 6001, "Ivy")
    old = await ivy.send("/language", expect="language")
    new = await ivy.send("/language", expect="language")
    await ivy.press("中文", on=old, expect="This button has expired")
    for forged in ("rm -rf /", "s00000000.0", "t" + "x" * 20 + ".1", "s" + "9" * 8 + ".99"):
        mark = len(stub.sent)
        stub.press(6001, forged, message=new)
        await stub.wait_for_message(6001, contains="This button has expired", after=mark)
    await ivy.press("中文", on=new, expect="以后我会用中文")


async def test_video_and_sticker_get_polite_answers(bot: Linli, stub: BotApiStub) -> None:
    code = await invite_code(bot)
    kai = TelegramUser(stub, 6501, "Kai")
    await kai.send(f"/start {code}", expect="Which room")
    mark = len(stub.sent)
    stub.push_update(stub.message_update(6501, None, video=True, first_name="Kai"))
    await stub.wait_for_message(6501, contains="Please type your room number", after=mark)
    await kai.send("x" * 5000, expect="too long")
    await kai.send("101", expect="What is your name")


async def test_flow_survives_restart(db_url: str, stub: BotApiStub, clock: FakeClock) -> None:
    async with running_bot(db_url, stub, clock) as first:
        code = await invite_code(first)
        zoe = TelegramUser(stub, 7001, "Zoe")
        await zoe.send(f"/start {code}", expect="Which room")
    # A new Application and a new engine: all that links them is the database.
    async with running_bot(db_url, stub, clock, fresh=False):
        await zoe.send("401", expect="Room 401, thank you")
        await zoe.press("Use", expect="You are registered in Building 2, room 401")


async def test_group_start_links_to_private_chat(bot: Linli, stub: BotApiStub) -> None:
    code = await invite_code(bot)
    mark = len(stub.sent)
    stub.send_text(
        8001,
        f"/start@{stub.username} {code}",
        chat_id=-100,
        chat_type="group",
        chat_title="Building 2",
    )
    reply = await stub.wait_for_message(-100, contains="private chat", after=mark)
    assert stub.buttons(reply)[0][1] == f"https://t.me/{stub.username}?start={code}"
    stub.send_text(8001, "/help@another_bot", chat_id=-100, chat_type="group")
    stub.send_text(8001, "nice weather", chat_id=-100, chat_type="group")
    await stub.wait_idle()
    assert len(stub.messages_to(-100)) == 1


async def test_blocked_user_is_recorded_not_retried(bot: Linli, stub: BotApiStub) -> None:
    async with bot.sessions() as session, session.begin():
        person = await people.identify(session, "telegram", "9001", private_chat_id="9001")
        outbox.enqueue(session, person.id, {"text": "hello"}, bot.dialogue.clock())
    stub.blocked_chats.add(9001)
    await bot.dispatcher.run_once()
    async with bot.sessions() as session:
        row = await session.scalar(select(OutboxMessage))
        chat = await session.scalar(
            select(Identity.private_chat_id).where(Identity.external_id == "9001")
        )
    assert row is not None and row.status == "blocked"
    # Unreachable there until they write again (as a broadcast marks them): the next notice
    # is not tried in that chat, and writing makes it reachable again.
    assert chat is None
    stub.blocked_chats.discard(9001)
    await TelegramUser(stub, 9001, "Back").send("/help", expect="")
    async with bot.sessions() as session:
        chat = await session.scalar(
            select(Identity.private_chat_id).where(Identity.external_id == "9001")
        )
    assert chat == "9001"


async def test_webhook_mode_checks_secret(db_url: str, stub: BotApiStub, clock: FakeClock) -> None:
    holder: dict[str, Any] = {}

    async def late_bound(scope: Any, receive: Any, send: Any) -> None:
        await holder["app"](scope, receive, send)

    server = AsgiServer(late_bound)
    await server.start()
    try:
        env = {
            "LINLI_TELEGRAM__MODE": "webhook",
            "LINLI_TELEGRAM__WEBHOOK_URL": f"{server.url}/telegram/webhook",
            "LINLI_TELEGRAM__WEBHOOK_SECRET": "s3cret-token",
        }
        settings = settings_for(db_url, **telegram_env(stub, **env))
        linli = await fresh_linli(settings, clock)
        holder["app"] = linli.web
        assert linli.telegram is not None
        await linli.telegram.start()
        try:
            assert stub.webhook is not None and stub.webhook["secret_token"] == "s3cret-token"
            update = stub.message_update(9101, "/help", first_name="Web")
            assert await stub.deliver_webhook(update, secret="wrong") == 403
            assert await stub.deliver_webhook(update, secret=None) == 403
            assert stub.messages_to(9101) == []
            assert await stub.deliver_webhook(update) == 200
            await stub.wait_for_message(9101, contains="what you can do")
            assert await stub.deliver_webhook(update) == 200  # redelivery: no second answer
            await stub.wait_idle()
            assert len(stub.messages_to(9101)) == 1
            async with httpx.AsyncClient() as client:
                health = await client.get(f"{server.url}/healthz")
                garbage = await client.post(
                    f"{server.url}/telegram/webhook",
                    content=b"{not json",
                    headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"},
                )
            assert health.json() == {"status": "ok"} and garbage.status_code == 400
        finally:
            await linli.telegram.stop()
            await linli.close()
    finally:
        await server.stop()


async def test_concurrent_chats(bot: Linli, stub: BotApiStub) -> None:
    users = [TelegramUser(stub, 10_000 + i, f"U{i}") for i in range(20)]
    await asyncio.gather(*(u.send("/help", expect="what you can do") for u in users))
