"""Cards over real python-telegram-bot and the Bot API stub: a card is edited in place, sent
anew when its message is gone, and a shared card in a group answers each presser privately
while its buttons stay. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import Linli
from handlers.flow import Notifier
from handlers.messages import CardRef, ChatRef, Option, Outgoing
from services import cards
from tests.conftest import FakeClock
from tests.telegram_harness import TelegramUser, invite_code, register, running_bot
from tests.telegram_stub import BotApiStub
from tests.test_reports_telegram import report_without_photo
from tests.test_seams import CHEER, cheer, shared_buttons

GROUP = -100777


@pytest.fixture
async def bot(db_url: str, stub: BotApiStub, clock: FakeClock) -> AsyncIterator[Linli]:
    async with running_bot(db_url, stub, clock) as linli:
        yield linli


async def shown(bot: Linli, chat_id: int, card: CardRef) -> cards.Shown | None:
    async with bot.sessions() as session:
        return await cards.find(session, "telegram", str(chat_id), card.kind, card.subject)


async def test_a_card_is_edited_in_place_and_sent_anew_when_gone(
    bot: Linli, stub: BotApiStub
) -> None:
    assert bot.telegram is not None
    amy = TelegramUser(stub, 7501, "Amy")
    await amy.send("/help", expect="what you can do")
    card = CardRef("test", "1")
    first = Outgoing("Round one", options=(Option("Go", "s00000000.1"),), card=card)
    await bot.telegram.send(str(amy.id), first)
    sent = stub.messages_to(amy.id)[-1]
    assert sent["method"] == "sendMessage" and stub.buttons(sent) == [("Go", "s00000000.1")]

    await bot.telegram.send(str(amy.id), Outgoing("Round two", card=card))
    edited = stub.messages_to(amy.id)[-1]
    assert (edited["method"], edited["message_id"]) == ("editMessageText", sent["message_id"])
    assert edited["text"] == "Round two" and stub.buttons(edited) == []
    # The same card again, unchanged: Telegram says "not modified", which is no error.
    before = len(stub.messages_to(amy.id))
    await bot.telegram.send(str(amy.id), Outgoing("Round two", card=card))
    assert len(stub.messages_to(amy.id)) == before

    # The person deleted it: the card arrives as a new message, whose id is kept from now on.
    await bot.telegram.app.bot.delete_message(amy.id, sent["message_id"])
    await bot.telegram.send(str(amy.id), Outgoing("Round three", card=card))
    again = stub.messages_to(amy.id)[-1]
    assert again["method"] == "sendMessage" and again["message_id"] != sent["message_id"]
    assert await shown(bot, amy.id, card) == cards.Shown(str(again["message_id"]), False)
    await bot.telegram.send(str(amy.id), Outgoing("Round four", card=card))
    last = stub.messages_to(amy.id)[-1]
    assert (last["method"], last["message_id"]) == ("editMessageText", again["message_id"])


async def test_a_shared_card_in_a_group(bot: Linli, stub: BotApiStub, clock: FakeClock) -> None:
    assert bot.telegram is not None
    bot.registry.on_shared_ticket(CHEER, cheer)
    code = await invite_code(bot)
    amy, bob, zed = (
        TelegramUser(stub, 7601, "Amy"),
        TelegramUser(stub, 7602, "Bob"),
        TelegramUser(stub, 7603, "Zed"),
    )
    await register(amy, code, "302")
    await register(bob, await invite_code(bot), "401")
    await report_without_photo(amy, "Broken bench")
    await amy.press("Submit", expect="is in")
    async with bot.transaction() as session:
        notifier = Notifier(session, bot.catalogs, "en", clock())
        options = await shared_buttons(notifier, 1, ChatRef("telegram", str(GROUP), False))
    card = CardRef("cheer", "1")
    stub.send_text(amy.id, "/help", chat_id=GROUP, chat_type="group", chat_title="Building 2")
    await stub.wait_idle()
    await bot.telegram.send(
        str(GROUP), Outgoing("R-2026-000001: a broken bench", options, card=card)
    )
    posted = stub.messages_to(GROUP)[-1]
    data = stub.buttons(posted)[0][1]

    mark = len(stub.sent)
    stub.press(bob.id, data, chat_id=GROUP, message=posted)
    updated = await stub.wait_for_message(GROUP, contains="neighbours see it too", after=mark)
    await stub.wait_idle()
    # Only Bob reads that he follows it: Telegram's answer to his press, not a group message.
    assert stub.calls_to("answerCallbackQuery")[-1]["text"] == "You now follow R-2026-000001 (+1)."
    assert (updated["method"], updated["message_id"]) == ("editMessageText", posted["message_id"])
    # The buttons stay for the next neighbour: nothing cleared them.
    assert [label for label, _ in stub.buttons(updated)] == ["+1"]
    assert not [c for c in stub.calls_to("editMessageReplyMarkup") if c["chat_id"] == GROUP]

    stub.press(bob.id, data, chat_id=GROUP, message=posted)
    await stub.wait_idle()
    assert stub.calls_to("answerCallbackQuery")[-1]["text"] == "You already follow R-2026-000001."
    stub.press(zed.id, data, chat_id=GROUP, message=posted)
    await stub.wait_idle()
    assert "join the community" in stub.calls_to("answerCallbackQuery")[-1]["text"]
    assert all("follow" not in (m.get("text") or "") for m in stub.messages_to(GROUP)[:-1])
