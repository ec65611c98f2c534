"""The monthly agenda (议事厅, issue 11) through the real WeChat adapter: every message a signed
and encrypted callback from tests/wechat_stub.py, every answer a passive reply or a
customer-service message through the stub's API; SQLite and PostgreSQL.

Options are numbered lists, answered with the digit or with the option's text, cards from
other people included. The menu's buttons (CLICK "agenda", "agenda history") open /agenda and
the history. A resident proposes with a photo sent through WeChat, which a staff member on
WeChat gets with the card and accepts with a digit; residents vote up to K (one more is
refused, the picks kept), a retried callback of the confirming digit casts once, a ballot is
changed; the results arrive as the chart (an image message, uploaded through the stub) and
the text. `linli agenda advance`, run as an operator runs it, moves the phases while the
residents talk to the bot; the tick does the same by the injected clock, and reminds only the
household that has not voted."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.app import Linli
from models import AgendaCycle, AgendaItem, Ballot, BallotEvent, PendingAward, Poll, Role
from services import people
from services.people import Grant
from services.voting.audit import audit_poll
from tests.conftest import FakeClock
from tests.images import photo
from tests.processes import run_linli
from tests.telegram_harness import invite_code
from tests.wechat_stub import WeChatStub

AMY, BEN, CAO, SAM = "o_amy_agenda", "o_ben_agenda", "o_cao_agenda", "o_sam_agenda"
RECEIPT = re.compile(r"\b[0-9a-f]{64}\b")
HAN = re.compile(r"[\u4e00-\u9fff]")
PNG = b"\x89PNG\r\n\x1a\n"
# Anything that would tell how the vote is going: a count of votes, a turnout, the results.
COUNTS = re.compile(r"\b\d+ votes?\b|\d+ 票|Turnout|投票率|Results of|投票结果：")


@pytest.fixture
def wechat_settings() -> dict[str, str]:
    """Two votes per voter, the top two to the council; one vote per household (default)."""
    return {"LINLI_AGENDA__VOTES_PER_VOTER": "2", "LINLI_AGENDA__COUNCIL_ITEMS": "2"}


class Phone:
    """One WeChat user: each message a callback with its own MsgId (or a given one)."""

    def __init__(self, bot: Linli, wechat: WeChatStub, openid: str) -> None:
        self.bot, self.wechat, self.openid = bot, wechat, openid
        self.msg_id = 7000 + 1000 * len(wechat.followers)

    def body(self, text: str) -> str:
        self.msg_id += 1
        return self.wechat.text(self.openid, text, msg_id=self.msg_id)

    async def post(self, body: str) -> str:
        """Deliver this callback; every text that answers it, in place or sent after."""
        assert self.bot.web is not None and self.bot.wechat is not None
        before = len(self.received())
        passive = self.wechat.reply_text(await self.wechat.post(self.bot.web, body))
        await self.bot.wechat.drain()
        await self.bot.dispatcher.drain()
        later = self.received()[before:]
        return "\n".join(([passive] if passive else []) + later)

    async def send(self, text: str) -> str:
        return await self.post(self.body(text))

    async def click(self, key: str) -> str:
        """A tap on the account's menu button whose key is `key`."""
        return await self.post(self.wechat.event(self.openid, "CLICK", key))

    async def send_photo(self, content: bytes) -> str:
        self.msg_id += 1
        media_id = f"pic-{self.openid}-{self.msg_id}"
        self.wechat.media[media_id] = content
        return await self.post(
            self.wechat.xml(
                self.openid, MsgType="image", MediaId=media_id, PicUrl="http://x", MsgId=self.msg_id
            )
        )

    def received(self) -> list[str]:
        return self.wechat.texts_to(self.openid)

    def images(self) -> list[bytes]:
        """The pictures sent to them, as uploaded (customer-service image messages)."""
        return [
            self.wechat.media[m["image"]["media_id"]]
            for m in self.wechat.sent
            if m["touser"] == self.openid and m.get("msgtype") == "image"
        ]


async def join(bot: Linli, wechat: WeChatStub, openid: str, room: str, name: str) -> Phone:
    """Scanning the invite's QR code follows the account and starts joining, in Chinese."""
    phone = Phone(bot, wechat, openid)
    assert "请问您住几室" in await phone.post(
        wechat.event(openid, "subscribe", f"qrscene_{await invite_code(bot)}")
    )
    assert "怎么称呼" in await phone.send(room)
    assert "登记完成" in await phone.send(name)
    return phone


async def join_in_english(
    bot: Linli, wechat: WeChatStub, openid: str, room: str, name: str
) -> Phone:
    """Following first, choosing English, then scanning the invite."""
    phone = Phone(bot, wechat, openid)
    await phone.post(wechat.event(openid, "subscribe"))
    assert "1 中文" in await phone.send("/language")
    assert "English" in await phone.send("2")
    assert "Which room" in await phone.post(wechat.event(openid, "SCAN", await invite_code(bot)))
    assert "What is your name" in await phone.send(room)
    assert "You are registered" in await phone.send(name)
    return phone


async def staff_member(bot: Linli, wechat: WeChatStub, openid: str) -> Phone:
    """A follower made community staff (`linli admin grant --role staff --wechat-openid`)."""
    phone = Phone(bot, wechat, openid)
    await phone.send("/help")
    async with bot.transaction() as session:
        found = await people.by_identity(session, "wechat", openid)
        assert found is not None
        await people.grant(session, found.id, Grant(Role.STAFF))
    return phone


async def propose(phone: Phone, title: str, description: str, *, english: bool = False) -> int:
    """/agenda, then each numbered question answered: by digit, or by the option's text."""
    menu = await phone.send("/agenda")
    assert ("1 Propose an item" if english else "1 提出议题") in menu, menu
    assert ("Type a short title" if english else "请输入简短的标题") in await phone.send("1")
    await phone.send(title)
    asked = await phone.send(description)
    assert asked.endswith("1 No photo\n2 Cancel" if english else "1 不加照片\n2 取消"), asked
    assert title in await phone.send("No photo" if english else "不加照片")
    thanks = await phone.send("Submit" if english else "提交")
    found = re.search(r"#(\d+)", thanks)
    assert found, thanks
    return int(found.group(1))


async def advance(bot: Linli) -> str:
    """`linli agenda advance`, run as an operator does (another process, the real time), then
    what it queued sent by this process's outbox."""
    assert bot.web is not None
    settings = bot.settings
    env = {
        "LINLI_DATABASE__URL": settings.database.url,
        "LINLI_VOTING__VOTER_KEY": settings.voting.voter_key,
        # The results chart it draws is stored where this process's channel will read it.
        "LINLI_REPORT__MEDIA_DIR": str(settings.report.media_dir),
        "LINLI_AGENDA__VOTES_PER_VOTER": "2",
        "LINLI_AGENDA__COUNCIL_ITEMS": "2",
    }
    phase = (await run_linli(env, "agenda", "advance")).strip()
    await bot.dispatcher.run_once()
    assert bot.wechat is not None
    await bot.wechat.drain()
    return phase


async def ballots(bot: Linli) -> int:
    async with bot.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Ballot)) or 0)


async def leaves(bot: Linli) -> int:
    async with bot.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(BallotEvent)) or 0)


async def test_a_month_on_wechat_moved_by_linli_agenda_advance(
    wechat_bot: Linli, wechat: WeChatStub, clock: FakeClock
) -> None:
    # The month `linli agenda advance` opens is the real one; this process's clock stands at
    # its first morning, so that proposals are open whatever the day.
    rules = wechat_bot.agenda.rules
    month = rules.month_of(datetime.now(UTC))
    clock.now = rules.calendar(month).opens_at + timedelta(hours=2)
    amy = await join(wechat_bot, wechat, AMY, "302", "王阿姨")
    ben = await join_in_english(wechat_bot, wechat, BEN, "303", "Ben")
    cao = await join(wechat_bot, wechat, CAO, "304", "曹师傅")
    sam = await staff_member(wechat_bot, wechat, SAM)

    # The menu's 议事厅 button opens /agenda: no month yet.
    before = await amy.click("agenda")
    assert before.startswith("议事厅：目前还没有开放的月份。") and before.endswith("1 往月议事")
    assert await advance(wechat_bot) == "proposals"
    menu = await amy.click("agenda")
    assert f"{month} 议事：提案征集至" in menu
    assert menu.endswith("1 提出议题\n2 本月议题\n3 往月议事"), menu

    # Amy proposes with a photo sent through WeChat, answering by digit and by text.
    assert "请输入简短的标题（最多 60 个字）" in await amy.send("1")
    assert "请说明" in await amy.send("车棚装灯")
    assert "可以附一张照片" in await amy.send("车棚晚上太黑。")
    summary = await amy.send_photo(photo(640, 480))
    assert "您的提案：\n车棚装灯\n车棚晚上太黑。\n附照片一张。" in summary
    assert summary.endswith("1 提交\n2 取消")
    uploads = len([c for c in wechat.calls if c[0] == "upload"])
    thanks = await amy.send("提交")
    lights = int(re.search(r"您的提案 #(\d+)", thanks).group(1))  # type: ignore[union-attr]
    async with wechat_bot.sessions() as session:
        item = await session.get(AgendaItem, lights)
        assert item is not None and item.photo_key is not None
    assert wechat_bot.media is not None

    # Sam, staff on WeChat, gets the card: the photo as an image message, then the numbered
    # list; a digit accepts it, and Amy hears.
    card = sam.received()[-1]
    assert card.startswith(f"新的议事提案（{month}）：\n#{lights} 车棚装灯\n车棚晚上太黑。")
    assert "提出人：王阿姨。" in card
    assert card.endswith("1 采纳\n2 合并到其他议题\n3 不采纳并说明理由")
    assert len([c for c in wechat.calls if c[0] == "upload"]) == uploads + 1
    assert sam.images() == [wechat_bot.media.get(item.photo_key)]
    assert "已由" in await sam.send("1")
    assert "您的提案“车棚装灯”已列入" in amy.received()[-1]

    # Ben proposes in English; Sam accepts by typing the option's text. Cao's item too.
    racks = await propose(ben, "Bike racks", "Bikes block the stairs.", english=True)
    assert sam.received()[-1].startswith(f"新的议事提案（{month}）：\n#{racks} Bike racks")
    await sam.send("采纳")
    assert "is on the council's agenda list" in ben.received()[-1]
    flowers = await propose(cao, "花坛补种", "花坛空了一半。")
    await sam.send("1")
    async with wechat_bot.sessions() as session:
        states = dict((await session.execute(select(AgendaItem.id, AgendaItem.status))).all())
    assert states == {lights: "accepted", racks: "accepted", flowers: "accepted"}

    # The operator opens the vote. Each resident hears, with the button as "1".
    assert await advance(wechat_bot) == "voting"
    notice = amy.received()[-1]
    assert f"{month} 议事投票已开始" in notice and "共 3 个议题，最多选 2 个" in notice
    assert notice.endswith("1 投票")
    assert ben.received()[-1].startswith(f"Voting on the council's agenda for {month} is open")
    assert ben.received()[-1].endswith("1 Vote")
    assert cao.received()[-1].endswith("1 投票")
    assert "投票" not in sam.received()[-1]

    # Amy votes from the notice with digits: a third item is one too many, her two stay ticked.
    options = [f"#{lights} 车棚装灯", f"#{racks} Bike racks", f"#{flowers} 花坛补种"]
    ballot = await amy.send("1")
    assert "请为居民议事会选择最多 2 个议题（已选 0 个）" in ballot
    assert ballot.endswith(
        f"1 ☐ {options[0]}\n2 ☐ {options[1]}\n3 ☐ {options[2]}\n4 确认我的选择\n5 取消"
    )
    await amy.send("1")
    assert "（已选 2 个）" in await amy.send("2")
    refused = await amy.send("3")
    assert "最多只能选 2 个议题，请先取消一个。" in refused
    assert refused.endswith(
        f"1 ☑ {options[0]}\n2 ☑ {options[1]}\n3 ☐ {options[2]}\n4 确认我的选择\n5 取消"
    )
    assert await ballots(wechat_bot) == 0
    voted = await amy.send("4")
    assert "您的投票已收到。" in voted and RECEIPT.search(voted)

    # Ben votes through /agenda, typing the options' text; the confirming digit reaches the
    # bot three times (twice at once, WeChat's retries, then once more): one ballot, one leaf.
    menu = await ben.send("/agenda")
    assert menu.endswith("1 This month's items\n2 Vote\n3 Past months"), menu
    assert "(0 chosen)" in await ben.send("Vote")
    await ben.send(f"#{racks} Bike racks")
    ticked = await ben.send(f"#{flowers} 花坛补种")
    assert f"2 ☑ {options[1]}\n3 ☑ {options[2]}" in ticked
    log_before = await leaves(wechat_bot)
    confirm = ben.body("4")
    answers = await asyncio.gather(ben.post(confirm), ben.post(confirm))
    assert any("Your vote is in." in a for a in answers), answers
    again = await ben.post(confirm)
    receipt = RECEIPT.findall(next(a for a in answers if "Your vote is in." in a))
    assert again == "" or receipt[0] in again
    assert await ballots(wechat_bot) == 2 and await leaves(wechat_bot) == log_before + 1

    # Amy changes her household's ballot from the menu button, by the options' text.
    menu = await amy.click("agenda")
    assert menu.endswith("1 本月议题\n2 修改我的投票\n3 往月议事"), menu
    assert "（已选 2 个）" in await amy.send("修改我的投票")
    await amy.send("2")
    await amy.send(f"#{flowers} 花坛补种")
    changed = await amy.send("确认我的选择")
    assert "您的选择已修改。" in changed
    assert await ballots(wechat_bot) == 2

    # Nothing anyone read so far shows a count.
    for phone in (amy, ben, cao, sam):
        for text in phone.received():
            assert not COUNTS.search(text), text

    # The operator publishes: the chart (an image message, uploaded) and the text, to those
    # who voted and the proposers. Flowers 2, lights 1, racks 1: the tie goes to the earlier.
    assert await advance(wechat_bot) == "published"
    results = amy.received()[-1]
    assert results.startswith(f"{month} 议事投票结果：")
    assert f"1. #{flowers} 花坛补种: 2 票 ✔ 提交议事会" in results
    assert f"2. #{lights} 车棚装灯: 1 票 ✔ 提交议事会" in results
    assert f"3. #{racks} Bike racks: 1 票\n" in results
    assert "投票率：3 户中 2 户（67%）。" in results
    english = ben.received()[-1]
    assert english.startswith(f"Results of the council's agenda vote for {month}:")
    assert "Turnout: 2 of 3 households (67 %)." in english
    assert cao.received()[-1].startswith(f"{month} 议事投票结果：")  # a proposer
    charts = {who: phone.images()[-1] for who, phone in (("amy", amy), ("ben", ben))}
    assert all(chart.startswith(PNG) for chart in charts.values())
    assert charts["amy"] != charts["ben"]  # drawn in each reader's language
    assert not any("结果" in text for text in sam.received())
    async with wechat_bot.sessions() as session:
        cycle = await session.scalar(select(AgendaCycle))
        assert cycle is not None and cycle.phase == "published" and cycle.poll_id is not None
        poll = await session.get(Poll, cycle.poll_id)
        assert poll is not None and poll.root is not None and poll.root in results
        assert await audit_poll(session, cycle.poll_id) == []
        awards = (
            await session.scalars(
                select(PendingAward.idempotency_key).where(PendingAward.reason == "agenda.selected")
            )
        ).all()
    assert set(awards) == {f"agenda:{flowers}:selected", f"agenda:{lights}:selected"}

    # Cao never voted: the notice is still the last list he was shown, and its "1" is stale
    # now. A polite answer in Chinese; nothing is cast.
    assert "议事投票现在没有开放。" in await cao.send("1")
    # The menu's 往月议事 button: the month, and its results again (the chart and the text).
    shown_before = len(amy.images())
    months = await amy.click("agenda history")
    assert months.endswith(f"1 {month}：2 个议题提交议事会"), months
    again = await amy.send("1")
    assert f"{month} 议事投票结果：" in again and f"1. #{flowers} 花坛补种: 2 票" in again
    assert len(amy.images()) == shown_before + 1
    assert await ballots(wechat_bot) == 2


# The month by the injected clock: 1 December, 09:00 in Shanghai; the vote opens on the 16th,
# closes on the 25th at 20:00, and non-voters are reminded a day before.
DEC_1 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
VOTING_OPENS = datetime(2026, 12, 15, 16, 5, tzinfo=UTC)
DAY_BEFORE_CLOSE = datetime(2026, 12, 24, 12, 30, tzinfo=UTC)
PUBLICATION = datetime(2026, 12, 25, 12, 0, tzinfo=UTC)
JAN_1 = datetime(2027, 1, 1, 1, 0, tzinfo=UTC)


async def tick_at(bot: Linli, clock: FakeClock, when: datetime) -> None:
    """Move the clock and tick. The replies sent so far are forgotten first: kept while the
    clock jumps days ahead, they would look left behind by a dead process and be sent again."""
    assert bot.wechat is not None
    await bot.wechat.drain()
    await bot.dialogue.receipts.flush()
    clock.now = when
    await bot.ticker.tick()
    await bot.wechat.drain()


async def test_the_tick_reminds_only_the_household_that_has_not_voted(
    wechat_bot: Linli, wechat: WeChatStub, clock: FakeClock
) -> None:
    clock.now = DEC_1
    await wechat_bot.ticker.tick()  # December opens
    amy = await join(wechat_bot, wechat, AMY, "302", "王阿姨")
    cao = await join(wechat_bot, wechat, CAO, "302", "曹师傅")  # Amy's household
    ben = await join_in_english(wechat_bot, wechat, BEN, "303", "Ben")
    sam = await staff_member(wechat_bot, wechat, SAM)
    lights = await propose(amy, "车棚装灯", "车棚晚上太黑。")
    assert "已由" in await sam.send("1")
    # Ben's proposal, on the 10th, is still waiting when the vote opens: it goes to next
    # month's proposals.
    clock.now = DEC_1 + timedelta(days=9)
    late = await propose(ben, "Bike racks", "Bikes block the stairs.", english=True)

    await tick_at(wechat_bot, clock, VOTING_OPENS)
    assert amy.received()[-1].endswith("1 投票")
    assert cao.received()[-1].endswith("1 投票")
    assert ben.received()[-1].endswith("1 Vote")
    # Sam answers the waiting card now: too late, and nothing changes.
    assert "投票已经开始：这个提案将留到下个月审核，没有任何改动。" in await sam.send("1")
    assert "（已选 0 个）" in await amy.send("1")
    assert (await amy.send("1")).endswith(f"1 ☑ #{lights} 车棚装灯\n2 确认我的选择\n3 取消")
    assert "您的投票已收到。" in await amy.send("确认我的选择")

    # A day before the close only Ben, whose household has not voted, is reminded; Cao, who
    # lives with Amy, is not. A second tick reminds nobody again.
    seen = {p.openid: len(p.received()) for p in (amy, cao, ben, sam)}
    await tick_at(wechat_bot, clock, DAY_BEFORE_CLOSE)
    await wechat_bot.ticker.tick()
    await wechat_bot.wechat.drain()  # type: ignore[union-attr]
    reminded = ben.received()[seen[BEN] :]
    assert len(reminded) == 1 and reminded[0].startswith(
        "Reminder: voting on the council's agenda closes at 2026-12-25 20:00, and your "
        "household's vote is not in yet."
    )
    assert reminded[0].endswith("1 Vote")
    for phone in (amy, cao, sam):
        assert len(phone.received()) == seen[phone.openid]

    # The close: Amy and Cao (their household voted) get the chart and the results; Ben not.
    images = len(cao.images())
    await tick_at(wechat_bot, clock, PUBLICATION)
    assert cao.received()[-1].startswith("2026-12 议事投票结果：")
    assert f"1. #{lights} 车棚装灯: 1 票 ✔ 提交议事会" in cao.received()[-1]
    assert "投票率：2 户中 1 户（50%）。" in cao.received()[-1]
    assert len(cao.images()) == images + 1 and cao.images()[-1].startswith(PNG)
    assert amy.received()[-1].startswith("2026-12 议事投票结果：")
    assert not any("Results" in text for text in ben.received())
    # Ben's reminder is stale now: its "1" gets a polite answer in English; nothing is cast.
    stale = await ben.send("1")
    assert "Voting on the council's agenda is not open now." in stale and not HAN.search(stale)
    assert await ballots(wechat_bot) == 1

    # Sam records the council's decision with digits; Amy, the proposer, hears it.
    assert f"1 #{lights} 车棚装灯" in await sam.send("/agenda decide")
    assert "请输入议事会的决议" in await sam.send("1")
    assert f"#{lights} 的决议已记录" in await sam.send("明年一月装两盏灯。")
    assert amy.received()[-1] == f"议事会对 #{lights}“车棚装灯”作出决议：明年一月装两盏灯。"

    # January opens: Ben's proposal, never moderated, waits there for staff.
    await tick_at(wechat_bot, clock, JAN_1)
    async with wechat_bot.sessions() as session:
        january = await session.scalar(select(AgendaCycle).where(AgendaCycle.month == "2027-01"))
        waiting = await session.get(AgendaItem, late)
    assert january is not None and waiting is not None
    assert (waiting.cycle_id, waiting.status) == (january.id, "pending")
    menu = await sam.send("/agenda")
    assert "2027-01 议事：提案征集至" in menu and "待审核的提案（1）" in menu
