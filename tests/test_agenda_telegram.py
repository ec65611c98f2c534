"""The monthly agenda (议事厅, issue 11) through the real Telegram adapter: python-telegram-bot
speaking HTTP to the Bot API stub, a real database (SQLite and PostgreSQL), residents and staff
in English and in Chinese, the month driven by an injected clock and the scheduler's tick.

A resident proposes with a photo sent through Telegram (the stub serves the file); each staff
member gets the moderation card, with the photo and its buttons; items are accepted, rejected
with a typed reason and merged, and each proposer hears how; a resident supports an item. The
tick opens the vote: residents get a [Vote] button, tick items (☐/☑) up to K, one more is
refused with the picks kept, and confirm; a household's ballot is changed through /agenda. No
count shows before the publication; a day before the close only the household that has not
voted is reminded; at the publication the results arrive as the chart with its caption. Staff
record the council's decision and progress, which reach the proposer and the supporters, and
/agenda history shows the month. Stale and forged buttons get a polite answer in the presser's
language and change nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import Linli
from models import (
    ActionTicket,
    AgendaCycle,
    AgendaItem,
    AgendaSupport,
    AgendaUpdate,
    Ballot,
    PendingAward,
    Poll,
    Role,
)
from services import people
from services.people import Grant
from services.voting.audit import audit_poll
from tests.conftest import FakeClock
from tests.images import photo
from tests.telegram_harness import TelegramUser, invite_code, running_bot
from tests.telegram_stub import BotApiStub

# 09:00 on 1 December in Shanghai; the vote opens on the 16th at 00:00 (15th, 16:00 UTC),
# closes on the 25th at 20:00 (12:00 UTC), and non-voters are reminded a day before.
DEC_1 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
VOTING_OPENS = datetime(2026, 12, 15, 16, 5, tzinfo=UTC)
DAY_BEFORE_CLOSE = datetime(2026, 12, 24, 12, 30, tzinfo=UTC)
PUBLICATION = datetime(2026, 12, 25, 12, 0, tzinfo=UTC)

RECEIPT = re.compile(r"\b[0-9a-f]{64}\b")
HAN = re.compile(r"[\u4e00-\u9fff]")
PNG = b"\x89PNG\r\n\x1a\n"
# Anything that would tell how the vote is going: a count of votes, a turnout, the results.
COUNTS = re.compile(r"\b\d+ votes?\b|\d+ 票|Turnout|投票率|Results of|投票结果：")

# What a resident reads, in each language (written out here, not taken from the catalogs).
WORDS = {
    "en": {
        "room": "Which room",
        "name": "What is your name",
        "use": "Use",
        "registered": "You are registered",
        "menu": "proposals are open until",
        "propose": "Propose an item",
        "title": "Type a short title",
        "describe": "Describe it",
        "photo": "You may add a photo",
        "no photo": "No photo",
        "summary": "Your proposal:",
        "submit": "Submit",
        "thanks": "Your proposal #",
        "ballot": "Choose up to 2 items for the council",
        "confirm": "Confirm my choice",
        "expired": "This button has expired. Nothing was changed.",
        "not open": "Voting on the council's agenda is not open now.",
    },
    "zh": {
        "room": "请问您住几室",
        "name": "怎么称呼",
        "use": "使用",
        "registered": "登记完成",
        "menu": "提案征集至",
        "propose": "提出议题",
        "title": "请输入简短的标题",
        "describe": "请说明",
        "photo": "可以附一张照片",
        "no photo": "不加照片",
        "summary": "您的提案：",
        "submit": "提交",
        "thanks": "您的提案 #",
        "ballot": "请为居民议事会选择最多 2 个议题",
        "confirm": "确认我的选择",
        "expired": "这个按钮已失效，没有做任何更改。",
        "not open": "议事投票现在没有开放。",
    },
}


@pytest.fixture
async def bot(db_url: str, stub: BotApiStub, clock: FakeClock) -> AsyncIterator[Linli]:
    """Two votes per voter and the top two to the council (as in tests/test_agenda.py); one
    vote per household, the default."""
    clock.now = DEC_1
    async with running_bot(
        db_url,
        stub,
        clock,
        LINLI_AGENDA__VOTES_PER_VOTER="2",
        LINLI_AGENDA__COUNCIL_ITEMS="2",
    ) as linli:
        yield linli


class Person(TelegramUser):
    """A Telegram user whose every answer is waited for as a new message or photo (not the
    edit that clears the keyboard they pressed, which repeats the old text)."""

    @property
    def words(self) -> dict[str, str]:
        return WORDS["zh" if self.language.startswith("zh") else "en"]

    async def said(self, expect: str, after: int, *, edits: bool = False) -> dict[str, Any]:
        """The first new message (or, `edits`, a card updated in place) since `after` that
        shows `expect`."""
        methods = {"sendMessage", "sendPhoto"}
        if edits:
            methods |= {"editMessageText", "editMessageCaption"}

        def shown(entry: dict[str, Any]) -> bool:
            return (
                entry["index"] >= after
                and entry["chat_id"] == self.id
                and entry["method"] in methods
                and expect in (entry.get("text") or entry.get("caption") or "")
            )

        return await self.stub.wait_for(shown)

    async def type(self, text: str, expect: str) -> dict[str, Any]:
        mark = len(self.stub.sent)
        self.stub.send_text(self.id, text, first_name=self.name, language_code=self.language)
        return await self.said(expect, mark)

    async def send_photo(self, content: bytes, expect: str) -> dict[str, Any]:
        mark = len(self.stub.sent)
        self.stub.push_update(
            self.stub.message_update(
                self.id, photo=content, first_name=self.name, language_code=self.language
            )
        )
        return await self.said(expect, mark)

    async def tap(
        self, label: str, expect: str, *, on: dict[str, Any] | None = None, edits: bool = False
    ) -> dict[str, Any]:
        """Press the button whose label contains `label` on `on` (else the latest message
        with buttons)."""
        return await self.tap_data(self.button(label, on), expect, on=on, edits=edits)

    async def tap_data(
        self, data: str, expect: str, *, on: dict[str, Any] | None = None, edits: bool = False
    ) -> dict[str, Any]:
        """Send this callback data, genuine or not, as a press on `on`."""
        mark = len(self.stub.sent)
        self.stub.press(
            self.id, data, message=on or self.last_with_buttons(), language_code=self.language
        )
        return await self.said(expect, mark, edits=edits)

    def button(self, label: str, on: dict[str, Any] | None = None) -> str:
        message = on or self.last_with_buttons()
        found = [data for text, data in self.stub.buttons(message) if label in text]
        assert found, f"no button {label!r} in {self.stub.buttons(message)}"
        return found[0]

    def labels(self, message: dict[str, Any]) -> list[str]:
        return [label for label, _ in self.stub.buttons(message)]

    def everything(self) -> list[str]:
        """Every text and caption that reached this person, edits included."""
        return [e.get("text") or e.get("caption") or "" for e in self.stub.messages_to(self.id)]

    def since(self, mark: int) -> list[dict[str, Any]]:
        return [e for e in self.stub.messages_to(self.id) if e["index"] >= mark]


async def resident(
    bot: Linli,
    stub: BotApiStub,
    user_id: int,
    name: str,
    room: str,
    *,
    language: str = "en",
    building: str = "Building 2",
) -> Person:
    """Registered by an invite, through the chat."""
    person = Person(stub, user_id, name, language=language)
    words = person.words
    await person.type(f"/start {await invite_code(bot, building)}", words["room"])
    await person.type(room, words["name"])
    await person.tap(words["use"], words["registered"])
    return person


async def staff_member(
    bot: Linli, stub: BotApiStub, user_id: int, name: str, *, language: str = "en"
) -> Person:
    """Someone who wrote to the bot (so it can write back) and was made community staff, as
    `linli admin grant --role staff --telegram-id ID` does. No home: not a voter."""
    person = Person(stub, user_id, name, language=language)
    mark = len(stub.sent)
    stub.send_text(user_id, "/help", first_name=name, language_code=language)
    await stub.wait_for_message(user_id, after=mark)
    async with bot.transaction() as session:
        found = await people.by_identity(session, "telegram", str(user_id))
        assert found is not None
        await people.grant(session, found.id, Grant(Role.STAFF))
    return person


async def propose(
    person: Person, title: str, description: str, picture: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    """/agenda → Propose: the title, the description, a photo or none, Submit. The item's id
    and the summary the proposer was shown."""
    words = person.words
    await person.type("/agenda", words["menu"])
    await person.tap(words["propose"], words["title"])
    await person.type(title, words["describe"])
    await person.type(description, words["photo"])
    if picture is None:
        summary = await person.tap(words["no photo"], words["summary"])
    else:
        summary = await person.send_photo(picture, words["summary"])
    thanks = await person.tap(words["submit"], words["thanks"])
    found = re.search(r"#(\d+)", thanks["text"])
    assert found, thanks["text"]
    return int(found.group(1)), summary


async def settle(bot: Linli, stub: BotApiStub) -> None:
    """Every update answered and its replies forgotten as sent, before the clock jumps (a
    reply still kept when the clock moves days ahead looks left behind by a dead process, and
    the tick would send it again)."""
    await stub.wait_idle()
    await bot.dialogue.receipts.flush()


async def statuses(bot: Linli) -> dict[int, str]:
    async with bot.sessions() as session:
        return dict((await session.execute(select(AgendaItem.id, AgendaItem.status))).all())


async def ballot_count(bot: Linli) -> int:
    async with bot.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Ballot)) or 0)


def ticket_of(data: str) -> str:
    """The ticket token in a card button's callback data (`t<token>.<n>`)."""
    assert data.startswith("t"), data
    return data[1:].split(".")[0]


async def test_a_month_on_telegram(bot: Linli, stub: BotApiStub, clock: FakeClock) -> None:
    amy = await resident(bot, stub, 8101, "Amy", "302")
    bo = await resident(bot, stub, 8102, "Bo", "303", language="zh-hans")
    ann = await resident(bot, stub, 8103, "Ann", "101", building="Building 1")
    cy = await resident(bot, stub, 8104, "Cy", "201", building="Building 3")
    dee = await resident(bot, stub, 8105, "Dee", "302", language="zh-hans")  # Amy's household
    sam = await staff_member(bot, stub, 8201, "Sam")
    tess = await staff_member(bot, stub, 8202, "Tess", language="zh-hans")

    # Before the first tick no month is open; the tick opens December's.
    assert "no month is open yet" in (await amy.type("/agenda", "agenda"))["text"]
    await settle(bot, stub)
    await bot.ticker.tick()
    menu = await amy.type("/agenda", "proposals are open until 2026-12-16 00:00")
    assert amy.labels(menu) == ["Propose an item", "This month's items", "Past months"]

    # Amy proposes with a photo sent through Telegram: the bot fetches it from the stub.
    files_before = len(stub.calls_to("getFile"))
    lights, summary = await propose(
        amy, "Lights in the bike shed", "It is dark at night.", photo(640, 480)
    )
    assert "With a photo." in summary["text"] and len(stub.calls_to("getFile")) > files_before
    async with bot.sessions() as session:
        item = await session.get(AgendaItem, lights)
        assert item is not None and item.photo_key is not None and item.status == "pending"
        stored = bot.media.get(item.photo_key) if bot.media is not None else b""

    # Each staff member gets the card: the photo, captioned, with the three moderation buttons.
    card = await sam.said("A new proposal for the council's agenda (2026-12):", 0)
    assert card["method"] == "sendPhoto" and card["file"] == stored
    assert f"#{lights} Lights in the bike shed" in card["caption"]
    assert "It is dark at night." in card["caption"] and "Proposed by Amy." in card["caption"]
    assert sam.labels(card) == [
        "Accept the item",
        "Merge into another item",
        "Reject with a reason",
    ]
    tess_card = await tess.said("新的议事提案（2026-12）：", 0)
    assert tess_card["method"] == "sendPhoto" and "提出人：Amy。" in tess_card["caption"]
    assert tess.labels(tess_card) == ["采纳", "合并到其他议题", "不采纳并说明理由"]

    # Sam accepts: Amy is told, Tess's card is settled, in her language.
    mark = len(stub.sent)
    await sam.tap("Accept the item", "Accepted by Sam.", on=card)
    told = await amy.said("Your proposal “Lights in the bike shed” is on the council's", mark)
    assert "agenda list for 2026-12" in told["text"]
    await tess.said("已由Sam采纳。", mark)
    # The photo card can't become text: it loses its buttons, and the settled card follows.
    assert any(
        (c["chat_id"], c["message_id"]) == (sam.id, card["message_id"])
        for c in stub.calls_to("editMessageReplyMarkup")
    )
    # The old cards' buttons are stale now: Tess hears the proposal was already moderated, in
    # Chinese; Sam's own card was used up. Nothing changes.
    await tess.tap("不采纳", "这个提案已经审核过了，没有任何改动。", on=tess_card)
    await sam.tap_data(sam.button("Reject", card), WORDS["en"]["expired"], on=card)
    assert (await statuses(bot))[lights] == "accepted"

    # Bo proposes in Chinese, without a photo; Sam rejects it with a typed reason.
    gate, _ = await propose(bo, "修理东门", "东门关不上。")
    gate_card = await sam.said(f"#{gate} 修理东门", 0)
    assert gate_card["method"] == "sendMessage"  # no photo: a text card
    await sam.tap("Reject with a reason", f"Why is #{gate} “修理东门” not accepted?", on=gate_card)
    mark = len(stub.sent)
    stub.send_text(sam.id, "The property company repairs it next week.", first_name=sam.name)
    # A text card is settled in place: Sam's and Tess's, each in their language.
    settled = await sam.said(
        f"#{gate} 修理东门\nNot accepted by Sam: The property", mark, edits=True
    )
    assert settled["message_id"] == gate_card["message_id"]
    await tess.said("Sam未采纳：The property company repairs it next week.", mark, edits=True)
    rejected = await bo.said("您的提案“修理东门”未被接受。", mark)
    assert "理由：The property company repairs it next week." in rejected["text"]

    # Cy's item is accepted; Ann's is merged into Amy's lights, and she now supports those.
    benches, _ = await propose(cy, "Benches by the pond", "Older residents need a rest.")
    card = await sam.said(f"#{benches} ", 0)
    await sam.tap("Accept the item", "Accepted by Sam.", on=card, edits=True)
    dark, _ = await propose(ann, "The shed is too dark", "Please add a lamp.")
    dark_card = await sam.said(f"#{dark} The shed is too dark", 0)
    merge = await sam.tap("Merge into another item", f"Merge #{dark}", on=dark_card)
    assert sam.labels(merge) == [
        f"#{lights} Lights in the bike shed",
        f"#{benches} Benches by the pond",
        "Cancel",
    ]
    mark = len(stub.sent)
    await sam.tap(f"#{lights} ", f"Merged into #{lights} by Sam.", on=merge, edits=True)
    merged = await ann.said("was merged into", mark)
    assert f"#{lights} “Lights in the bike shed”" in merged["text"]
    bins, _ = await propose(amy, "More recycling bins", "Bins overflow on Mondays.")
    card = await sam.said(f"#{bins} ", 0)
    # Amy sends the data of Sam's [Accept] on her own proposal (from her chat): it is not her
    # button.
    await amy.tap_data(sam.button("Accept the item", card), WORDS["en"]["expired"])
    assert (await statuses(bot))[bins] == "pending"
    await sam.tap("Accept the item", "Accepted by Sam.", on=card, edits=True)

    # Bo supports the benches, in Chinese: support is shown (not counted as a vote).
    await bo.type("/agenda", "提案征集")
    listed = await bo.tap("本月议题", "按支持人数排列")
    assert bo.labels(listed)[0] == f"#{lights} Lights in the bike shed · 1 人支持"
    shown = await bo.tap(f"#{benches} ", "支持表示居民关心这件事，不算投票。", on=listed)
    await bo.tap("支持这个议题", "谢谢您的支持。", on=shown)
    async with bot.sessions() as session:
        backers = sorted((await session.execute(select(AgendaSupport.item_id))).scalars().all())
    assert backers == sorted([lights, benches])
    assert await statuses(bot) == {
        lights: "accepted",
        gate: "rejected",
        benches: "accepted",
        dark: "merged",
        bins: "accepted",
    }

    # 16 December: the tick opens the vote. Each resident is told, with a [Vote] button; the
    # staff, who have no home here, are not.
    await settle(bot, stub)
    clock.now = VOTING_OPENS
    mark = len(stub.sent)
    await bot.ticker.tick()
    notice = await amy.said("Voting on the council's agenda for 2026-12 is open until", mark)
    assert "2026-12-25 20:00: 3 items, choose up to 2." in notice["text"]
    assert "Nobody sees any results before the close." in notice["text"]
    assert amy.labels(notice) == ["Vote"]
    bo_notice = await bo.said("2026-12 议事投票已开始，截止 2026-12-25 20:00", mark)
    assert bo.labels(bo_notice) == ["投票"]
    ann_notice = await ann.said("Voting on the council's agenda", mark)
    cy_notice = await cy.said("Voting on the council's agenda", mark)
    dee_notice = await dee.said("议事投票已开始", mark)
    await stub.wait_idle()
    assert sam.since(mark) == [] and tess.since(mark) == []

    # Amy votes from the notice: two items ticked, a third is one too many and the two stay.
    ballot = await amy.tap("Vote", "Choose up to 2 items for the council (0 chosen)", on=notice)
    options = [f"#{lights} Lights in the bike shed", f"#{benches} Benches by the pond"]
    options.append(f"#{bins} More recycling bins")
    assert amy.labels(ballot) == [f"☐ {o}" for o in options] + ["Confirm my choice", "Cancel"]
    ballot = await amy.tap(f"#{lights} ", "(1 chosen)", on=ballot)
    ballot = await amy.tap(f"#{bins} ", "(2 chosen)", on=ballot)
    mark = len(stub.sent)
    await amy.tap(f"#{benches} ", "You can choose at most 2 items. Remove one first.", on=ballot)
    kept = await amy.said("(2 chosen)", mark)
    assert amy.labels(kept)[:3] == [f"☑ {options[0]}", f"☐ {options[1]}", f"☑ {options[2]}"]
    assert await ballot_count(bot) == 0
    voted = await amy.tap("Confirm my choice", "Your vote is in.", on=kept)
    receipt = RECEIPT.findall(voted["text"])
    assert len(receipt) == 1 and await ballot_count(bot) == 1

    # Bo votes through /agenda, in Chinese; Cy from the notice.
    await bo.type("/agenda", "投票进行中")
    bo_ballot = await bo.tap("投票", "已选 0 个")
    bo_ballot = await bo.tap(f"#{benches} ", "已选 1 个", on=bo_ballot)
    assert "您的投票已收到。" in (await bo.tap("确认我的选择", "回执", on=bo_ballot))["text"]
    cy_ballot = await cy.tap("Vote", "(0 chosen)", on=cy_notice)
    cy_ballot = await cy.tap(f"#{bins} ", "(1 chosen)", on=cy_ballot)
    await cy.tap("Confirm my choice", "Your vote is in.", on=cy_ballot)

    # Dee lives with Amy: /agenda offers to change their household's ballot, which shows
    # Amy's two picks; Dee swaps the bins for the benches.
    dee_menu = await dee.type("/agenda", "投票进行中")
    assert "修改我的投票" in dee.labels(dee_menu) and "投票" not in dee.labels(dee_menu)
    changing = await dee.tap("修改我的投票", "已选 2 个", on=dee_menu)
    assert dee.labels(changing)[:3] == [f"☑ {options[0]}", f"☐ {options[1]}", f"☑ {options[2]}"]
    changing = await dee.tap(f"#{bins} ", "已选 1 个", on=changing)
    changing = await dee.tap(f"#{benches} ", "已选 2 个", on=changing)
    changed = await dee.tap("确认我的选择", "您的选择已修改。", on=changing)
    assert RECEIPT.search(changed["text"]) and await ballot_count(bot) == 3

    # Nobody sees a count before the publication, staff included: the items show their
    # supporters only.
    await sam.type("/agenda", "voting is open until 2026-12-25 20:00")
    items = await sam.tap("This month's items", "most supported first")
    assert all("supporter" in label for label in sam.labels(items))
    await stub.wait_idle()
    for person in (amy, bo, ann, cy, dee, sam, tess):
        for text in person.everything():
            assert not COUNTS.search(text), text
        for entry in stub.messages_to(person.id):
            assert not any(COUNTS.search(label) for label in person.labels(entry))

    # A day before the close only Ann, whose household has not voted, is reminded (with a
    # button); a second tick reminds nobody again.
    await settle(bot, stub)
    clock.now = DAY_BEFORE_CLOSE
    mark = len(stub.sent)
    await bot.ticker.tick()
    reminder = await ann.said("Reminder: voting on the council's agenda closes at", mark)
    assert "2026-12-25 20:00, and your household's vote is not in yet." in reminder["text"]
    assert ann.labels(reminder) == ["Vote"]
    await bot.ticker.tick()
    await stub.wait_idle()
    assert [e["chat_id"] for e in stub.sent[mark:]] == [ann.id]

    # 25 December, 20:00: the vote closes. Those who voted and the proposers of the items on
    # the ballot get the results card: the chart, captioned with the ranking, the turnout and
    # the log's root. Benches 2, lights 1, bins 1: the lights have a supporter (Ann, since the
    # merge) and go to the council with the benches.
    await settle(bot, stub)
    clock.now = PUBLICATION
    mark = len(stub.sent)
    await bot.ticker.tick()
    results = await amy.said("Results of the council's agenda vote for 2026-12:", mark)
    assert results["method"] == "sendPhoto" and results["file"].startswith(PNG)
    caption = results["caption"]
    assert f"1. #{benches} Benches by the pond: 2 votes ✔ to the council" in caption
    assert f"2. #{lights} Lights in the bike shed: 1 vote ✔ to the council" in caption
    assert f"3. #{bins} More recycling bins: 1 vote" in caption
    assert f"#{bins} More recycling bins: 1 vote ✔" not in caption
    assert "Turnout: 3 of 4 households (75 %)." in caption
    bo_results = await bo.said("2026-12 议事投票结果：", mark)
    assert bo_results["method"] == "sendPhoto" and bo_results["file"].startswith(PNG)
    assert bo_results["file"] != results["file"]  # the chart in Chinese
    assert f"1. #{benches} Benches by the pond: 2 票 ✔ 提交议事会" in bo_results["caption"]
    assert "投票率：4 户中 3 户（75%）。" in bo_results["caption"]
    await cy.said("Results of the council's agenda vote for 2026-12:", mark)
    await dee.said("2026-12 议事投票结果：", mark)
    await stub.wait_idle()
    for person in (ann, sam, tess):
        assert person.since(mark) == []
    # Amy voted and proposed two of the items: one card.
    assert [e["method"] for e in amy.since(mark)] == ["sendPhoto"]
    async with bot.sessions() as session:
        cycle = await session.scalar(select(AgendaCycle))
        assert cycle is not None and cycle.phase == "published" and cycle.poll_id is not None
        poll = await session.get(Poll, cycle.poll_id)
        assert poll is not None and poll.status == "closed" and poll.root is not None
        assert poll.root in caption and poll.root in bo_results["caption"]
        assert await audit_poll(session, cycle.poll_id) == []
        awards = (
            await session.execute(
                select(PendingAward.idempotency_key).where(PendingAward.reason == "agenda.selected")
            )
        ).scalars()
        assert set(awards) == {f"agenda:{benches}:selected", f"agenda:{lights}:selected"}
        selected = dict((await session.execute(select(AgendaItem.id, AgendaItem.selected))).all())
    assert selected[benches] and selected[lights] and not selected[bins]
    assert await ballot_count(bot) == 3
    verified = await amy.type(f"/verify {receipt[0]}", "Your ballot is in the log")
    assert poll.root in verified["text"]

    # Stale buttons after the publication: Ann's reminder and Dee's unused notice say the vote
    # is not open, each in their language; Amy's used notice has expired; an old ballot's
    # toggle too. Nothing changes.
    await ann.tap("Vote", WORDS["en"]["not open"], on=reminder)
    await dee.tap("投票", WORDS["zh"]["not open"], on=dee_notice)
    await amy.tap("Vote", WORDS["en"]["expired"], on=notice)
    await cy.tap(f"#{benches} ", WORDS["en"]["expired"], on=cy_ballot)
    # Forged callback data: someone else's button, an option the card never had, a token
    # never issued, a question's form of a card's token, not our format at all.
    token = ticket_of(ann.button("Vote", ann_notice))
    forged = [
        f"t{token}.1",  # Ann's button, pressed by Bo
        f"t{token}.7",
        "tAAAAAAAAAAAA.1",
        f"s{token}.1",
        "agenda:vote:1",
        "t" + "x" * 40 + ".1",
    ]
    for data in forged:
        answer = await bo.tap_data(data, WORDS["zh"]["expired"], on=bo_notice)
        assert HAN.search(answer["text"])
    await ann.tap_data("agenda:accept", WORDS["en"]["expired"], on=ann_notice)
    assert await ballot_count(bot) == 3
    async with bot.sessions() as session:
        unused = await session.scalar(select(ActionTicket).where(ActionTicket.token == token))
    assert unused is not None and unused.used_at is None  # still Ann's

    # After the meeting Sam records the council's decision on the benches: Cy (the proposer)
    # and Bo (a supporter) are told, in their languages; Amy is not.
    told = len(stub.sent)
    which = await sam.type("/agenda decide", "The council's decision on which item?")
    assert sam.labels(which) == [
        f"#{benches} Benches by the pond",
        f"#{lights} Lights in the bike shed",
    ]
    await sam.tap(f"#{benches} ", "Type the council's decision.", on=which)
    await sam.type("Two benches go in by March.", f"The decision on #{benches} is recorded")
    decided = await cy.said(f"The council decided on #{benches} “Benches by the pond”", told)
    assert "Two benches go in by March." in decided["text"]
    await bo.said(f"议事会对 #{benches}“Benches by the pond”作出决议：Two benches", told)
    await stub.wait_idle()
    assert amy.since(told) == [] and ann.since(told) == []

    # Then progress, with a photo: it reaches the same two, as a captioned picture.
    await sam.type("/agenda", "was published on 2026-12-25 20:00")
    await sam.tap("Post progress on an item", "Progress on which item?")
    await sam.tap(f"#{benches} ", f"Where does #{benches}")
    await sam.tap("In progress", "Add a note for the residents")
    await sam.type("The carpenter comes on the 5th.", "You may add a photo")
    mark = len(stub.sent)
    await sam.send_photo(photo(800, 600), f"The update on #{benches} is posted")
    news = await cy.said(f"News on #{benches} “Benches by the pond”: In progress", mark)
    assert news["method"] == "sendPhoto" and "The carpenter comes on the 5th." in news["caption"]
    bo_news = await bo.said(f"#{benches}“Benches by the pond”的进展：进行中", mark)
    assert bo_news["method"] == "sendPhoto"
    await stub.wait_idle()
    assert amy.since(mark) == [] and ann.since(mark) == []
    async with bot.sessions() as session:
        update = await session.scalar(select(AgendaUpdate))
        assert update is not None and update.photo_key is not None
        assert (update.item_id, update.status) == (benches, "in_progress")

    # /agenda history: the month, its results, the decision and the follow-up, in Chinese.
    months = await bo.type("/agenda history", "哪个月？")
    assert bo.labels(months) == ["2026-12：2 个议题提交议事会"]
    mark = len(stub.sent)
    await bo.tap("2026-12", "决议：Two benches go in by March.", on=months)
    await bo.said("2026-12-25 进行中: The carpenter comes on the 5th.", mark)
    again = await bo.said("2026-12 议事投票结果：", mark)
    assert again["method"] == "sendPhoto" and "投票率" in again["caption"]
