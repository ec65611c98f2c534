"""Building polls through the real Telegram adapter (issue 11): python-telegram-bot speaking
HTTP to the Bot API stub, a real database (SQLite and PostgreSQL), residents in English and in
Chinese. A poll opened by the use case (as `linli poll create` does) or by a building head in
chat reaches each eligible resident as a card with buttons; a press votes and answers with the
receipt; /poll changes the vote; /verify finds the receipt; stale and forged buttons change
nothing; the tick reminds non-voters only, then closes the poll and sends the results, which
nobody saw before."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import Linli
from handlers.flow import Notifier
from models import ActionTicket, Ballot, BallotEvent, Poll, Role
from services import community, people
from services.people import Grant
from services.scopes import Scope
from services.voting import notices, polls
from tests.conftest import FakeClock
from tests.telegram_harness import TelegramUser, invite_code, running_bot
from tests.telegram_stub import BotApiStub

QUESTION = "Paint the bike shed green?"
RECEIPT = re.compile(r"\b[0-9a-f]{64}\b")
HAN = re.compile(r"[\u4e00-\u9fff]")
# What the results look like, in either language: an option with a number after it.
COUNT = re.compile(r"(Yes|No|自行车架|长椅|花坛)\s*[:：]\s*\d")

# What a resident reads, in each language (written out here, not taken from the catalogs).
WORDS = {
    "en": {
        "room": "Which room",
        "name": "What is your name",
        "use": "Use",
        "registered": "You are registered",
    },
    "zh": {
        "room": "请问您住几室",
        "name": "怎么称呼",
        "use": "使用",
        "registered": "登记完成",
    },
}


@pytest.fixture
async def bot(db_url: str, stub: BotApiStub, clock: FakeClock) -> AsyncIterator[Linli]:
    async with running_bot(db_url, stub, clock) as linli:
        yield linli


class Resident(TelegramUser):
    """A Telegram user whose every answer is waited for as a new message (not the edit that
    clears the keyboard they pressed, which repeats the old text)."""

    @property
    def words(self) -> dict[str, str]:
        return WORDS["zh" if self.language.startswith("zh") else "en"]

    async def said(self, expect: str, after: int) -> dict[str, Any]:
        def new_message(entry: dict[str, Any]) -> bool:
            return (
                entry["index"] >= after
                and entry["chat_id"] == self.id
                and entry["method"] == "sendMessage"
                and expect in (entry.get("text") or "")
            )

        return await self.stub.wait_for(new_message)

    async def type(self, text: str, expect: str) -> dict[str, Any]:
        mark = len(self.stub.sent)
        self.stub.send_text(self.id, text, first_name=self.name, language_code=self.language)
        return await self.said(expect, mark)

    async def tap(
        self, label: str, expect: str, *, on: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Press the button whose label contains `label` on `on` (else the latest message
        with buttons)."""
        return await self.tap_data(self.button(label, on), expect, on=on)

    async def tap_data(
        self, data: str, expect: str, *, on: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send this callback data, genuine or not, as a press on `on`."""
        mark = len(self.stub.sent)
        self.stub.press(
            self.id, data, message=on or self.last_with_buttons(), language_code=self.language
        )
        return await self.said(expect, mark)

    def button(self, label: str, on: dict[str, Any] | None = None) -> str:
        message = on or self.last_with_buttons()
        found = [data for text, data in self.stub.buttons(message) if label in text]
        assert found, f"no button {label!r} in {self.stub.buttons(message)}"
        return found[0]

    def everything(self) -> list[str]:
        """Every text that reached this person, edits included."""
        return [e.get("text") or e.get("caption") or "" for e in self.stub.messages_to(self.id)]


async def join(
    bot: Linli,
    stub: BotApiStub,
    user_id: int,
    name: str,
    room: str,
    *,
    language: str = "en",
    building: str = "Building 2",
) -> Resident:
    """A resident registered by an invite, through the chat."""
    person = Resident(stub, user_id, name, language=language)
    words = person.words
    await person.type(f"/start {await invite_code(bot, building)}", words["room"])
    await person.type(room, words["name"])
    await person.tap(words["use"], words["registered"])
    return person


async def person_id(bot: Linli, user: TelegramUser) -> int:
    async with bot.sessions() as session:
        person = await people.by_identity(session, "telegram", str(user.id))
    assert person is not None
    return person.id


async def open_poll(
    bot: Linli, clock: FakeClock, question: str, options: list[str], **kw: Any
) -> int:
    """As `linli poll create --scope "building:Building 2"` does: the poll, and each eligible
    resident's card through the outbox."""
    async with bot.transaction() as session:
        building = await community.building_by_name(session, "Building 2")
        assert building is not None
        poll = await polls.create(
            session,
            Scope("building", building.id, "Building 2"),
            question,
            options,
            deadline=clock() + timedelta(days=3),
            now=clock(),
            **kw,
        )
        notifier = Notifier(session, bot.catalogs, "zh_CN", clock(), bot.registry.notices)
        await notifier.tell(await notices.opened(session, poll))
        poll_id = poll.id
    await bot.dispatcher.run_once()
    return poll_id


async def close_now(bot: Linli, clock: FakeClock, poll_id: int) -> None:
    """As `linli poll close ID` does: close before the deadline and send the results."""
    async with bot.transaction() as session:
        closed = await polls.close(session, poll_id, clock(), bot.voter_key)
        assert closed is not None and closed.now
        poll = await session.get(Poll, poll_id)
        assert poll is not None
        notifier = Notifier(session, bot.catalogs, "zh_CN", clock(), bot.registry.notices)
        await notifier.tell(await notices.published(session, poll))
    await bot.dispatcher.run_once()


async def settle(bot: Linli, stub: BotApiStub) -> None:
    """Every update answered and its replies forgotten as sent, before the clock jumps (a
    reply still kept when the clock moves days ahead looks left behind by a dead process, and
    the tick would send it again)."""
    await stub.wait_idle()
    await bot.dialogue.receipts.flush()


def receipt_in(message: dict[str, Any]) -> str:
    found = RECEIPT.findall(message["text"])
    assert len(found) == 1, message["text"]
    return found[0]


async def ballots(bot: Linli, poll_id: int) -> dict[int | None, int]:
    """Each named ballot's person and option mask."""
    async with bot.sessions() as session:
        rows = (
            await session.execute(
                select(Ballot.person_id, Ballot.choices).where(Ballot.poll_id == poll_id)
            )
        ).all()
    return {p: c for p, c in rows}


async def leaf_of(bot: Linli, receipt: str) -> tuple[int, int]:
    """(poll, index) of the log entry whose hash is this receipt."""
    async with bot.sessions() as session:
        row = (
            await session.execute(
                select(BallotEvent.poll_id, BallotEvent.index).where(BallotEvent.digest == receipt)
            )
        ).one()
    return row[0], row[1]


async def log_size(bot: Linli, poll_id: int) -> int:
    async with bot.sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(BallotEvent).where(BallotEvent.poll_id == poll_id)
            )
            or 0
        )


def cards_to(user: Resident, contains: str) -> list[dict[str, Any]]:
    return [
        e
        for e in user.stub.messages_to(user.id)
        if e["method"] == "sendMessage" and contains in (e.get("text") or "")
    ]


async def test_residents_vote_change_verify_are_reminded_and_get_the_results(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    amy = await join(bot, stub, 7701, "Amy", "302")
    bo = await join(bot, stub, 7702, "Bo", "303", language="zh-hans")
    ann = await join(bot, stub, 7703, "Ann", "304", language="zh-hans")
    cy = await join(bot, stub, 7704, "Cy", "101", building="Building 1")
    poll_id = await open_poll(bot, clock, QUESTION, ["Yes", "No"], quorum_percent=50)

    # Each resident of Building 2 gets the card in their language, with one button an option.
    card = await amy.said(f"New poll: {QUESTION}", 0)
    assert "Nobody sees any results before the close." in card["text"]
    assert [label for label, _ in stub.buttons(card)] == ["Yes", "No"]
    bo_card = await bo.said(f"新投票：{QUESTION}", 0)
    assert "截止时间" in bo_card["text"] and "任何人都看不到结果" in bo_card["text"]
    assert [label for label, _ in stub.buttons(bo_card)] == ["Yes", "No"]
    ann_card = await ann.said("新投票", 0)
    await stub.wait_idle()
    assert not any(QUESTION in text for text in cy.everything())  # Building 1

    # A press votes; the answer carries the receipt, which is the ballot's leaf in the log.
    voted = await amy.tap("Yes", "Your vote is in.", on=card)
    first = receipt_in(voted)
    assert await leaf_of(bot, first) == (poll_id, 2)  # leaf 1 is the poll's seed
    amy_id, bo_id = await person_id(bot, amy), await person_id(bot, bo)
    assert await ballots(bot, poll_id) == {amy_id: 0b01}
    # The card's keyboard is cleared, and an old tap on it is refused: nothing changes.
    assert any(
        c["message_id"] == card["message_id"] and c["chat_id"] == amy.id
        for c in stub.calls_to("editMessageReplyMarkup")
    )
    await amy.tap_data(stub.buttons(card)[1][1], "This button has expired", on=card)
    assert await ballots(bot, poll_id) == {amy_id: 0b01}

    # /poll lists the open poll; another option changes the ballot, the same one does not.
    which = await amy.type("/poll", "Which poll?")
    await amy.tap(QUESTION, QUESTION, on=which)
    changed = await amy.tap("No", "Your vote is changed.")
    second = receipt_in(changed)
    assert second != first and await leaf_of(bot, second) == (poll_id, 3)
    assert await ballots(bot, poll_id) == {amy_id: 0b10}
    await amy.type("/poll", "Which poll?")
    await amy.tap(QUESTION, QUESTION)
    same = await amy.tap("No", "Your vote is unchanged.")
    assert receipt_in(same) == second and await log_size(bot, poll_id) == 3
    assert "no open polls" in (await cy.type("/poll", "no open polls"))["text"]

    bo_voted = await bo.tap("No", "您的投票已收到", on=bo_card)
    assert "回执" in bo_voted["text"]
    assert await leaf_of(bot, receipt_in(bo_voted)) == (poll_id, 4)

    # Forged and replayed callback data: a polite answer in the presser's language, no change.
    ann_yes = stub.buttons(ann_card)[0][1]
    token = ann_yes[1:].split(".")[0]
    await bo.tap_data(ann_yes, "按钮已失效", on=bo_card)  # Ann's button, pressed by Bo
    forged = [
        f"t{token}.9",  # no such option
        f"t{token[:-1]}{'A' if token[-1] != 'A' else 'B'}.1",  # a token that was never issued
        f"s{token}.1",  # a card's token as a question's
        f"poll:{poll_id}:0",  # not our format at all
        "t" + "x" * 40 + ".1",
    ]
    elsewhere = next(e for e in stub.messages_to(ann.id) if "怎么称呼" in (e.get("text") or ""))
    for data in forged:
        await ann.tap_data(data, "按钮已失效", on=elsewhere)
    assert await ballots(bot, poll_id) == {amy_id: 0b10, bo_id: 0b10}
    assert await log_size(bot, poll_id) == 4
    async with bot.sessions() as session:
        ann_ticket = await session.scalar(select(ActionTicket).where(ActionTicket.token == token))
    assert ann_ticket is not None and ann_ticket.used_at is None  # still Ann's to use

    # /verify: the receipt is found, in the reader's language; a made-up one is not.
    verified = await amy.type(f"/verify {first}", "Your ballot is in the log")
    assert f"poll {poll_id}: entry 2 of 4" in verified["text"]
    assert "not in any poll's log" in (await amy.type("/verify " + "0" * 64, "not in"))["text"]
    assert HAN.search((await bo.type("/verify " + "f" * 64, "回执"))["text"])
    assert "您的选票在投票" in (await bo.type(f"/verify {receipt_in(bo_voted)}", "选票"))["text"]

    # Nothing anyone was sent so far shows a count per option, a turnout or results.
    for person in (amy, bo, ann, cy):
        for text in person.everything():
            assert not COUNT.search(text), text
            assert "Turnout" not in text and "参与：" not in text and "结果：" not in text

    # A day before the deadline the tick reminds Ann, who has not voted, and nobody else.
    await settle(bot, stub)
    clock.advance(days=2, hours=1)
    mark = len(stub.sent)
    await bot.ticker.tick()
    reminder = await ann.said("提醒", mark)
    assert QUESTION in reminder["text"] and "/poll" in reminder["text"]
    await stub.wait_idle()
    for person in (amy, bo, cy):
        assert stub.messages_to(person.id)[-1]["index"] < mark
    await bot.ticker.tick()  # a second tick reminds nobody again
    assert [e for e in stub.sent[mark:] if e["chat_id"] != ann.id] == []
    assert len(cards_to(ann, "提醒")) == 1

    # At the deadline the tick closes the poll; everyone it went to gets the results.
    await settle(bot, stub)
    clock.advance(days=1)
    mark = len(stub.sent)
    await bot.ticker.tick()
    results = await amy.said(f"Results of the poll “{QUESTION}”", mark)
    assert "1. Yes: 0" in results["text"] and "2. No: 2" in results["text"]
    assert "Turnout: 2 of 3 (67 %)" in results["text"]
    assert "Quorum of 50 %: met" in results["text"]
    for person in (bo, ann):
        chinese = await person.said(f"投票“{QUESTION}”的结果", mark)
        assert "2. No: 2" in chinese["text"]
    async with bot.sessions() as session:
        poll = await session.get(Poll, poll_id)
    assert poll is not None and poll.status == "closed" and poll.root is not None
    assert poll.root in results["text"] and poll.size == 4
    await stub.wait_idle()
    assert not any("Results" in text for text in cy.everything())

    # Ann's card, never used, still has its buttons, which are stale now: she is told the
    # poll is closed, in Chinese.
    assert not [
        c
        for c in stub.calls_to("editMessageReplyMarkup")
        if c["message_id"] == ann_card["message_id"] and c["chat_id"] == ann.id
    ]
    await ann.tap("Yes", "该投票已结束", on=ann_card)
    assert await ballots(bot, poll_id) == {amy_id: 0b10, bo_id: 0b10}
    assert "目前没有您可以参加的投票" in (await ann.type("/poll", "投票"))["text"]
    # After the close every receipt, the replaced one too, is in the published log.
    published = await amy.type(f"/verify {first}", "Your ballot is in the log")
    assert "entry 2 of 4" in published["text"] and poll.root in published["text"]


async def test_a_building_head_opens_a_multiple_choice_poll_in_chat(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    wang = await join(bot, stub, 7801, "Wang", "501", language="zh-hans")
    wang_id = await person_id(bot, wang)
    async with bot.transaction() as session:
        building = await community.building_by_name(session, "Building 2")
        assert building is not None
        await people.grant(session, wang_id, Grant(Role.BUILDING_HEAD, building_id=building.id))
    amy = await join(bot, stub, 7802, "Amy", "302")
    bo = await join(bot, stub, 7803, "Bo", "303", language="zh-hans")

    # The head builds the poll in Chinese, step by step.
    await wang.type("/poll", "哪一个投票")
    await wang.tap("发起投票", "投票的问题是什么")
    await wang.type("楼下空地怎么用？", "第 1 个选项")
    await wang.type("自行车架", "第 2 个选项")
    await wang.type("长椅", "完成")
    await wang.type("花坛", "完成")
    await wang.tap("完成", "每人最多可以选几项")
    await wang.tap("最多选 2 项", "记名还是匿名")
    await wang.tap("记名", "谁来投票")
    await wang.tap("每位居民", "什么时候截止")
    summary = await wang.tap("3 天后", "请核对投票内容")
    assert "1. 自行车架\n2. 长椅\n3. 花坛" in summary["text"]
    opened = await wang.tap("发起投票", "投票已发起")
    poll_id = int(re.search(r"编号 (\d+)", opened["text"]).group(1))  # type: ignore[union-attr]

    card = await amy.said("New poll: 楼下空地怎么用？", 0)
    assert "Choose up to 2 options." in card["text"]
    assert [label for label, _ in stub.buttons(card)] == ["Choose"]
    bo_card = await bo.said("新投票：楼下空地怎么用？", 0)
    assert "最多可选 2 项" in bo_card["text"]
    assert [label for label, _ in stub.buttons(bo_card)] == ["选择"]
    await wang.said("新投票：楼下空地怎么用？", 0)  # the head lives in the building too

    # Amy ticks two options; a third is more than the poll takes and is not recorded.
    toggles = await amy.tap("Choose", "then confirm", on=card)
    assert [label for label, _ in stub.buttons(toggles)] == [
        "☐ 自行车架",
        "☐ 长椅",
        "☐ 花坛",
        "Confirm my choice",
    ]
    toggles = await amy.tap("自行车架", "then confirm", on=toggles)
    toggles = await amy.tap("长椅", "then confirm", on=toggles)
    assert [label for label, _ in stub.buttons(toggles)][:3] == ["☑ 自行车架", "☑ 长椅", "☐ 花坛"]
    mark = len(stub.sent)
    await amy.tap("花坛", "You can choose at most 2 options", on=toggles)
    toggles = await amy.said("then confirm", mark)
    assert [label for label, _ in stub.buttons(toggles)][:3] == ["☑ 自行车架", "☑ 长椅", "☐ 花坛"]
    assert await ballots(bot, poll_id) == {}
    voted = await amy.tap("Confirm my choice", "Your vote is in.", on=toggles)
    assert await leaf_of(bot, receipt_in(voted)) == (poll_id, 2)
    amy_id = await person_id(bot, amy)
    assert await ballots(bot, poll_id) == {amy_id: 0b011}

    # Bo starts choosing, in Chinese; the head's office closes the poll before he confirms.
    bo_toggles = await bo.tap("选择", "然后确认", on=bo_card)
    bo_toggles = await bo.tap("花坛", "然后确认", on=bo_toggles)
    assert "确认我的选择" in [label for label, _ in stub.buttons(bo_toggles)]
    mark = len(stub.sent)
    await close_now(bot, clock, poll_id)
    results = await amy.said("Results of the poll “楼下空地怎么用？”", mark)
    assert "1. 自行车架: 1" in results["text"] and "3. 花坛: 0" in results["text"]
    assert "Turnout: 1 of 3" in results["text"]
    await bo.said("的结果", mark)
    await wang.said("的结果", mark)
    await bo.tap("确认我的选择", "该投票已结束", on=bo_toggles)
    assert await ballots(bot, poll_id) == {amy_id: 0b011}

    # The organiser now sees who took part and what they chose; a resident does not.
    await wang.type("/poll", "哪一个投票")
    shown = await wang.tap("谁投了票", "参加“楼下空地怎么用？”的有（1）")
    assert "Amy: 自行车架, 长椅" in shown["text"]
    assert "no open polls" in (await amy.type("/poll", "no open polls"))["text"]
