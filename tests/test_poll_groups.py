"""A poll's shared card in the group chats of its scope (issue 11): through real
python-telegram-bot speaking HTTP to the Bot API stub, on SQLite and PostgreSQL, with the group
card in the community's language (Chinese and English) and each presser answered in theirs.

The card reaches the linked groups of the poll's scope only; a press votes for the presser,
whose receipt comes privately; an ineligible member, a stranger and a forged or stale button
are answered to the presser alone and change nothing; the card shows the turnout (one edit for
a burst of votes), never the counts; at the close the results reach the group, with the
quorum, and the card loses its buttons. A group that kicked the bot gets nothing more. A
WeChat resident of the same building gets the poll privately."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import Linli
from handlers.flow import Notifier
from models import Ballot, GroupChat, OutboxMessage, Role
from services import community, groups, outbox, people, scopes
from services.people import Grant
from services.voting import notices, polls
from tests.conftest import FakeClock
from tests.telegram_harness import TelegramUser, invite_code, register, running_bot
from tests.telegram_stub import BotApiStub
from tests.wechat_stub import WeChatStub

QUESTION = "Paint the bike shed green?"
# Group chats, each linked to a part of the community (Grid 1 holds Buildings 1 and 2).
B2, B2_OTHER, B1, B3, GRID1, GRID2, EVERYONE = (
    -1002002,
    -1002003,
    -1001001,
    -1003003,
    -1009001,
    -1009002,
    -1000999,
)
LINKS = {
    B2: "building:Building 2",
    B2_OTHER: "building:Building 2",
    B1: "building:Building 1",
    B3: "building:Building 3",
    GRID1: "grid:Grid 1",
    GRID2: "grid:Grid 2",
    EVERYONE: "community",
}
ALL_GROUPS = set(LINKS)

# What the group reads, in the community's language (written out, not taken from catalogs).
GROUP_WORDS = {
    "en": {
        "card": f"Poll: {QUESTION}",
        "none_yet": "0 of 3 residents have voted.",
        "two": "2 of 3 residents have voted.",
        "open_private": "Open private chat",
        "closed": f"Poll closed: {QUESTION}",
        "results": f"Results of the poll “{QUESTION}”",
        "quorum": "Quorum of 50 %: met.",
        "choose": "Choose privately",
    },
    "zh_CN": {
        "card": f"投票：{QUESTION}",
        "none_yet": "3 位居民中已有 0 位投票。",
        "two": "3 位居民中已有 2 位投票。",
        "open_private": "打开私聊",
        "closed": f"投票已结束：{QUESTION}",
        "results": f"投票“{QUESTION}”的结果",
        "quorum": "法定参与率 50%：已达到。",
        "choose": "私下选择",
    },
}


@pytest.fixture
def locale() -> str:
    """The community's language, which group chats read (a test may ask for both)."""
    return "en"


IN_BOTH = pytest.mark.parametrize("locale", ["en", "zh_CN"])


@pytest.fixture
async def bot(db_url: str, stub: BotApiStub, clock: FakeClock, locale: str) -> AsyncIterator[Linli]:
    async with running_bot(db_url, stub, clock, LINLI_COMMUNITY__DEFAULT_LOCALE=locale) as linli:
        await link_groups(linli, clock)
        yield linli


async def link_groups(bot: Linli, clock: FakeClock) -> None:
    async with bot.transaction() as session:
        for chat_id, spelled in LINKS.items():
            scope = await scopes.parse(session, spelled)
            assert scope is not None
            group = await groups.seen(session, "telegram", str(chat_id), spelled, clock())
            await groups.link(session, group.id, scope, clock())


async def open_poll(
    bot: Linli, clock: FakeClock, scope: str = "building:Building 2", **kw: Any
) -> int:
    """As `linli poll create` does: the poll, its private cards and its group cards, queued;
    then sent, as the running bot's tick would."""
    async with bot.transaction() as session:
        found = await scopes.parse(session, scope)
        assert found is not None
        poll = await polls.create(
            session,
            found,
            QUESTION,
            kw.pop("options", ["Yes", "No"]),
            deadline=clock() + timedelta(days=3),
            now=clock(),
            **kw,
        )
        notifier = Notifier(
            session,
            bot.catalogs,
            bot.settings.community.default_locale,
            clock(),
            bot.registry.notices,
        )
        await notifier.tell(await notices.opened(session, poll))
        poll_id = poll.id
    await bot.dispatcher.run_once()
    return poll_id


def in_group(stub: BotApiStub, chat_id: int) -> list[dict[str, Any]]:
    return stub.messages_to(chat_id)


def text_of(entry: dict[str, Any]) -> str:
    return entry.get("text") or entry.get("caption") or ""


async def ballots(bot: Linli) -> int:
    async with bot.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Ballot)) or 0)


async def press(
    stub: BotApiStub, user: TelegramUser, data: str, card: dict[str, Any], chat_id: int = B2
) -> dict[str, Any]:
    """A press on the group's card; Telegram's answer to it (only the presser sees that)."""
    answers = len(stub.calls_to("answerCallbackQuery"))
    stub.press(user.id, data, chat_id=chat_id, message=card, language_code=user.language)
    for _ in range(500):
        found = stub.calls_to("answerCallbackQuery")[answers:]
        if found:
            break
        await asyncio.sleep(0.02)
    await stub.wait_idle()
    found = stub.calls_to("answerCallbackQuery")[answers:]
    assert len(found) == 1, found
    return found[0]


async def tick(stub: BotApiStub, user: TelegramUser, label: str, ticked: str) -> None:
    """Press a box of the private ballot and wait for the ballot that shows it ticked."""
    mark = len(stub.sent)
    await user.press(label)
    await stub.wait_for(
        lambda e: (
            e["index"] >= mark
            and e["chat_id"] == user.id
            and e["method"] == "sendMessage"
            and any(text == ticked for text, _ in stub.buttons(e))
        )
    )


def button(stub: BotApiStub, card: dict[str, Any], label: str) -> str:
    return next(value for text, value in stub.buttons(card) if text == label)


async def residents(bot: Linli, stub: BotApiStub) -> tuple[TelegramUser, ...]:
    """Amy (English) and Bob (Chinese) and Ann in Building 2; Cy in Building 1."""
    amy = TelegramUser(stub, 7701, "Amy")
    bob = TelegramUser(stub, 7702, "Bob", language="zh-hans")
    ann = TelegramUser(stub, 7703, "Ann")
    cy = TelegramUser(stub, 7704, "Cy")
    await register(amy, await invite_code(bot), "302")
    await bob.send(f"/start {await invite_code(bot)}", expect="室")
    await bob.send("401", expect="称呼")
    await bob.press("使用", expect="登记")
    await register(ann, await invite_code(bot), "303")
    await register(cy, await invite_code(bot, "Building 1"), "101")
    return amy, bob, ann, cy


@IN_BOTH
async def test_the_group_card_votes_for_each_presser_shows_the_turnout_and_closes(
    bot: Linli, stub: BotApiStub, clock: FakeClock, locale: str
) -> None:
    words = GROUP_WORDS[locale]
    amy, bob, ann, cy = await residents(bot, stub)
    stub.strict_private = True  # Telegram: the bot can't write first to a stranger
    await open_poll(bot, clock, quorum_percent=50)

    # Building 2's two groups get the card, and no other group: not Building 2's grid, nor
    # the whole community's (most of their members could not vote).
    shown = {chat for chat in ALL_GROUPS if in_group(stub, chat)}
    assert shown == {B2, B2_OTHER}
    card = in_group(stub, B2)[-1]
    assert words["card"] in text_of(card) and words["none_yet"] in text_of(card)
    labels = [label for label, _ in stub.buttons(card)]
    assert labels == ["Yes", "No", words["open_private"]]
    assert next(v for t, v in stub.buttons(card) if t == words["open_private"]).startswith(
        "https://t.me/linli_test_bot?start=go_poll"
    )
    # Each resident also has a private card, as before.
    assert any("New poll" in text_of(m) for m in stub.messages_to(amy.id))

    # Amy votes in the group: the receipt comes privately, the group sees nothing of it.
    mark = len(stub.sent)
    answer = await press(stub, amy, button(stub, card, "Yes"), card)
    assert answer["text"] == "Your vote is in. Your receipt is in your private chat with me."
    receipt = await stub.wait_for_message(amy.id, contains="Receipt: ", after=mark)
    assert text_of(receipt).startswith("Your vote is in.")
    # Bob (Chinese) changes nothing for the others: his answer and receipt are in Chinese.
    answer = await press(stub, bob, button(stub, card, "No"), card)
    assert answer["text"] == "您的投票已收到。投票凭证已发到您与我的私聊中。"
    await stub.wait_for_message(bob.id, contains="您的投票已收到", after=mark)
    assert await ballots(bot) == 2
    # No message in the group, and its buttons stay for the next neighbour.
    assert [m for m in stub.sent[mark:] if m["chat_id"] in ALL_GROUPS] == []
    assert not [c for c in stub.calls_to("editMessageReplyMarkup") if int(c["chat_id"]) < 0]

    # Amy again, the same choice: unchanged, and the receipt again.
    answer = await press(stub, amy, button(stub, card, "Yes"), card)
    assert answer["text"].startswith("Your vote is unchanged.")

    # Both votes came within a few seconds of the card: one edit shows both, a little later.
    clock.advance(seconds=6)
    await bot.ticker.tick()
    edits = [m for m in stub.sent[mark:] if m["chat_id"] == B2]
    assert [m["method"] for m in edits] == ["editMessageText"]
    assert edits[0]["message_id"] == card["message_id"]
    assert words["two"] in text_of(edits[0])
    # The turnout only: never how many chose what, before the close.
    assert "Yes:" not in text_of(edits[0]) and "Yes：" not in text_of(edits[0])
    assert [label for label, _ in stub.buttons(edits[0])] == labels
    assert words["two"] in text_of(in_group(stub, B2_OTHER)[-1])

    # Cy lives in Building 1: refused, politely, to him alone; nothing is recorded.
    mark = len(stub.sent)
    answer = await press(stub, cy, button(stub, card, "Yes"), card)
    assert answer["show_alert"] is True
    assert answer["text"] == "Sorry, this poll is for residents of another part of the community."
    # Zed never joined nor wrote to the bot: how to join, in the alert (he can't be written to).
    zed = TelegramUser(stub, 7799, "Zed")
    answer = await press(stub, zed, button(stub, card, "No"), card)
    assert answer["show_alert"] is True and "/start" in answer["text"]
    assert "Open private chat" in answer["text"]
    # Forged and tampered buttons: "expired", to the presser alone; the card keeps its buttons.
    token = button(stub, card, "Yes")[1:].split(".")[0]
    for forged in ("tAAAAAAAAAAAA.1k", f"t{token}.9k", "not a payload"):
        answer = await press(stub, ann, forged, card)
        assert "expired" in answer["text"], forged
    assert [m for m in stub.sent[mark:] if m["chat_id"] in ALL_GROUPS] == []
    assert [m for m in stub.sent[mark:] if m["chat_id"] in (cy.id, zed.id, ann.id)] == []
    assert not [c for c in stub.calls_to("editMessageReplyMarkup") if int(c["chat_id"]) < 0]
    assert await ballots(bot) == 2
    clock.advance(seconds=30)
    await bot.ticker.tick()
    assert [m for m in stub.sent[mark:] if m["chat_id"] in ALL_GROUPS] == []

    # At the deadline: the card loses its buttons, and the results follow it, with the quorum.
    clock.advance(days=3)
    mark = len(stub.sent)
    await bot.ticker.tick()
    for chat in (B2, B2_OTHER):
        closing = [m for m in stub.sent[mark:] if m["chat_id"] == chat]
        edit = next(m for m in closing if m["method"] == "editMessageText")
        assert words["closed"] in text_of(edit) and words["two"] in text_of(edit)
        assert stub.buttons(edit) == []
        results = next(m for m in closing if m["method"] == "sendMessage")
        assert words["results"] in text_of(results) and words["quorum"] in text_of(results)
    assert not [m for m in stub.sent[mark:] if m["chat_id"] in ALL_GROUPS - {B2, B2_OTHER}]

    # A press on the card as it was (an old client): the poll is closed, nothing changes.
    answer = await press(stub, ann, button(stub, card, "No"), card)
    assert answer["text"] == "This poll is closed. Its results were sent when it closed."
    assert await ballots(bot) == 2

    # Once sent, a private message's row keeps nothing of it: no receipt stays beside a person.
    found = re.search(r"[0-9a-f]{64}", text_of(receipt))
    assert found is not None
    async with bot.sessions() as session:
        private = (
            await session.execute(
                select(OutboxMessage.status, OutboxMessage.payload).where(
                    OutboxMessage.person_id.is_not(None)
                )
            )
        ).all()
    assert private and {status for status, _ in private} == {"sent"}
    assert all(payload == outbox.DONE_WITH for _, payload in private)


@IN_BOTH
async def test_a_choice_of_several_is_made_privately(
    bot: Linli, stub: BotApiStub, clock: FakeClock, locale: str
) -> None:
    words = GROUP_WORDS[locale]
    amy = TelegramUser(stub, 7711, "Amy")
    await register(amy, await invite_code(bot), "302")
    await open_poll(bot, clock, options=["Bike rack", "Bench", "Flowers"], max_choices=2)
    card = in_group(stub, B2)[-1]
    assert "1. Bike rack\n2. Bench\n3. Flowers" in text_of(card)
    assert [label for label, _ in stub.buttons(card)] == [words["choose"], words["open_private"]]

    mark = len(stub.sent)
    answer = await press(stub, amy, button(stub, card, words["choose"]), card)
    assert answer["text"] == "Your ballot is in your private chat with me: choose there."
    ballot = await stub.wait_for_message(amy.id, contains="Your ballot for", after=mark)
    assert "Nobody in the group sees what you choose." in text_of(ballot)
    await amy.press("Choose", on=ballot, expect=f"{QUESTION}\nChoose up to 2 options")
    await tick(stub, amy, "☐ Bike rack", "☑ Bike rack")
    await tick(stub, amy, "☐ Flowers", "☑ Flowers")
    done = await amy.press("Confirm my choice", expect="Your vote is in.")
    assert "Receipt: " in text_of(done)
    # All in private: the group saw nothing but, later, its turnout.
    assert [m for m in stub.sent[mark:] if m["chat_id"] in ALL_GROUPS] == []
    clock.advance(seconds=6)
    await bot.ticker.tick()
    turnout = "1 of 1 resident has voted." if locale == "en" else "1 位居民中已有 1 位投票。"
    assert turnout in text_of(in_group(stub, B2)[-1])


async def test_a_grid_poll_and_a_community_poll_reach_the_groups_within_their_scope(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    await open_poll(bot, clock, scope="grid:Grid 1")
    assert {c for c in ALL_GROUPS if in_group(stub, c)} == {B2, B2_OTHER, B1, GRID1}
    await open_poll(bot, clock, scope="community", private=False)
    assert {c for c in ALL_GROUPS if len(in_group(stub, c)) == 2} == {B2, B2_OTHER, B1, GRID1}
    assert {c for c in ALL_GROUPS if in_group(stub, c)} == ALL_GROUPS
    # An unlinked group gets nothing more.
    async with bot.transaction() as session:
        await groups.unlink(session, "telegram", str(B3), clock())
    await open_poll(bot, clock, scope="grid:Grid 2")
    assert [len(in_group(stub, c)) for c in (B3, GRID2)] == [1, 2]


async def test_a_group_that_kicked_the_bot_gets_nothing_more(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    amy = TelegramUser(stub, 7721, "Amy")
    await register(amy, await invite_code(bot), "302")
    stub.blocked_chats.add(B2_OTHER)  # kicked, and we were not told (403 on the next send)
    await open_poll(bot, clock)
    assert in_group(stub, B2) and not in_group(stub, B2_OTHER)
    async with bot.sessions() as session:
        row = await session.scalar(
            select(OutboxMessage)
            .join(GroupChat, GroupChat.id == OutboxMessage.group_chat_id)
            .where(GroupChat.chat_id == str(B2_OTHER))
        )
        assert row is not None and (row.status, row.attempts) == ("blocked", 1)
        kicked = await groups.find(session, "telegram", str(B2_OTHER))
        assert kicked is not None and kicked.scope is None
    # Removed from the other group (Telegram told us this time): its card is not edited again.
    stub.push_update(stub.my_chat_member_update(amy.id, B2, old="member", new="left"))
    await stub.wait_idle()
    private_card = next(m for m in stub.messages_to(amy.id) if "New poll" in text_of(m))
    await amy.press("Yes", on=private_card, expect="Your vote is in.")
    clock.advance(days=4)
    mark = len(stub.sent)
    await bot.ticker.tick()
    assert [m for m in stub.sent[mark:] if m["chat_id"] < 0] == []
    # Nothing waits for those groups, and a new poll for the building goes nowhere.
    await open_poll(bot, clock)
    async with bot.sessions() as session:
        waiting = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.group_chat_id.is_not(None),
                OutboxMessage.status.in_(("pending", "sending")),
            )
        )
    assert waiting == 0
    assert [m for m in stub.sent[mark:] if m["chat_id"] < 0] == []


async def test_a_wechat_resident_of_the_building_gets_the_poll_privately(
    db_url: str, stub: BotApiStub, wechat: WeChatStub, clock: FakeClock
) -> None:
    """An Official Account has no group chats: the WeChat neighbour votes in private."""
    async with running_bot(db_url, stub, clock, **wechat.env()) as bot:
        await link_groups(bot, clock)
        amy = TelegramUser(stub, 7731, "Amy")
        await register(amy, await invite_code(bot), "302")
        openid = "o_dai_openid"
        assert bot.web is not None and bot.wechat is not None
        answer = await wechat.post(
            bot.web, wechat.event(openid, "subscribe", f"qrscene_{await invite_code(bot)}")
        )
        assert "请问您住几室" in (wechat.reply_text(answer) or "")
        for msg_id, text in ((9001, "402"), (9002, "小戴")):
            await wechat.post(bot.web, wechat.text(openid, text, msg_id=msg_id))
            await bot.wechat.drain()
        await open_poll(bot, clock)
        await bot.wechat.drain()
        card = wechat.texts_to(openid)[-1]
        assert "新投票" in card and "Yes" in card and "No" in card
        assert "2 位居民中已有 0 位投票。" in text_of(in_group(stub, B2)[-1])
        # Dai votes with the digit, privately; the group's turnout counts her.
        answer = await wechat.post(bot.web, wechat.text(openid, "1", msg_id=9003))
        await bot.wechat.drain()
        await bot.dispatcher.drain()
        said = [wechat.reply_text(answer) or "", *wechat.texts_to(openid)]
        assert any("您的投票已收到" in t for t in said)
        clock.advance(seconds=6)
        await bot.ticker.tick()
        assert "2 位居民中已有 1 位投票。" in text_of(in_group(stub, B2)[-1])


async def test_a_group_card_has_one_row_that_each_change_rewrites(
    linli: Linli, clock: FakeClock
) -> None:
    """The outbox side of the coalescing: a waiting card is replaced, a card changed while
    being sent goes again after CARD_INTERVAL, a console-only process leaves group rows alone,
    and a group that answered 403 gets nothing more."""
    key = "poll.group:1"
    telegram = {"telegram": None}

    async def card(version: str) -> None:
        async with linli.transaction() as session:
            await outbox.enqueue_card(session, group_id, key, {"text": version}, clock())

    async def claim(reach: outbox.Reach = telegram) -> list[outbox.Delivery]:
        async with linli.transaction() as session:
            return await outbox.claim(session, clock(), reach=reach)

    async def settle(delivery: outbox.Delivery, status: str = "sent") -> None:
        async with linli.transaction() as session:
            await outbox.settle(
                session, delivery.message_id, status, clock(), payload=delivery.payload
            )

    async with linli.transaction() as session:
        group_id = (await groups.seen(session, "telegram", "-42", "G", clock())).id
    await card("v1")
    await card("v2")  # still waiting: it replaces v1
    assert await claim({"console": frozenset({"amy"})}) == []  # not this process's to send
    [first] = await claim()
    assert (first.payload, first.identities) == ({"text": "v2"}, (("telegram", "-42"),))
    await card("v3")  # while v2 is being sent
    await settle(first)
    assert await claim() == []  # v3 waits CARD_INTERVAL after the last send
    clock.advance(seconds=5)
    [second] = await claim()
    assert second.payload == {"text": "v3"} and second.message_id == first.message_id
    await settle(second)
    clock.advance(seconds=1)
    await card("v4")
    assert await claim() == []
    clock.advance(seconds=4)
    [third] = await claim()
    # Telegram says 403: the bot is out of the group, which serves nothing and gets nothing.
    await settle(third, "blocked")
    await card("v5")
    async with linli.sessions() as session:
        assert await outbox.card_groups(session, key) == []
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.card_key == key))
        group = await session.get(GroupChat, group_id)
    assert row is not None and (row.status, row.payload) == ("blocked", {"text": "v4"})
    assert group is not None and group.left_at is not None and group.scope is None


async def test_a_group_linked_while_a_poll_is_open_gets_its_card_once(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    """A building head adds the bot to their building's group in the middle of a poll: the
    group gets the poll's card (not another building's), and linking it again sends no
    second card."""
    await open_poll(bot, clock)  # Building 2
    await open_poll(bot, clock, scope="building:Building 3")
    head = TelegramUser(stub, 8101, "Wang")
    await head.send("/help")  # a private chat the bot can write to
    async with bot.transaction() as session:
        person = await people.by_identity(session, "telegram", str(head.id))
        building = await community.building_by_name(session, "Building 2")
        assert person is not None and building is not None
        await people.grant(session, person.id, Grant(Role.BUILDING_HEAD, building_id=building.id))
    late = -1002999

    def cards() -> list[dict[str, Any]]:
        return [
            m
            for m in in_group(stub, late)
            if m["method"] == "sendMessage" and GROUP_WORDS["en"]["card"] in text_of(m)
        ]

    for _ in range(2):
        mark = len(stub.sent)
        await head.send("/group", chat_id=late, chat_type="supergroup", chat_title="B2 late")
        asked = await stub.wait_for_message(head.id, contains="“B2 late” for?", after=mark)
        await head.press("Building: Building 2", on=asked, expect="now serves Building: Building 2")
        await bot.dispatcher.run_once()
        assert len(cards()) == 1
    # It is the poll's own card: its buttons vote in it.
    assert [label for label, _ in stub.buttons(cards()[0])][:2] == ["Yes", "No"]


async def test_a_group_upgraded_to_a_supergroup_keeps_its_link(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    """Telegram gives a group a new id when it becomes a supergroup and says so in both chats
    (each said twice here: a redelivery changes nothing). The link follows; the next card goes
    to the new id."""
    supergroup = -1002000777
    old_says, new_says = stub.migration_updates(7001, B2, supergroup)
    for update in (old_says, new_says, old_says):
        stub.push_update(update)
    await stub.wait_idle()
    async with bot.sessions() as session:
        assert await groups.find(session, "telegram", str(B2)) is None
        moved = await groups.find(session, "telegram", str(supergroup))
    assert moved is not None and moved.scope is not None
    assert moved.scope.spelled == "building:Building 2"
    await open_poll(bot, clock)
    assert in_group(stub, supergroup) and not in_group(stub, B2)


async def test_a_card_sent_to_a_groups_old_id_follows_it_to_the_new_one(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    """We missed the service messages: Telegram refuses the send with the new id (400,
    migrate_to_chat_id). The card goes there at once and the group keeps its link."""
    supergroup = -1002000888
    stub.migrated_chats[B2] = supergroup
    await open_poll(bot, clock)
    assert [m["method"] for m in in_group(stub, supergroup)] == ["sendMessage"]
    assert GROUP_WORDS["en"]["card"] in text_of(in_group(stub, supergroup)[0])
    assert in_group(stub, B2) == []
    async with bot.sessions() as session:
        moved = await groups.find(session, "telegram", str(supergroup))
        row = await session.scalar(
            select(OutboxMessage)
            .join(GroupChat, GroupChat.id == OutboxMessage.group_chat_id)
            .where(GroupChat.chat_id == str(supergroup))
        )
    assert moved is not None and moved.scope is not None
    assert moved.scope.spelled == "building:Building 2"
    assert row is not None and row.status == "sent"
