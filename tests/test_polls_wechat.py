"""Building polls through the real WeChat adapter (issue 11): every message a correctly signed
and encrypted callback from tests/wechat_stub.py, every answer a passive reply or a
customer-service message through the stub's API. A poll card is a numbered list; a resident
votes with the digit or the option's text and gets the receipt; /verify finds it; /poll
changes the vote; a retried callback votes once; a digit after the close gets a polite answer.
Chinese (WeChat's default) and English, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from sqlalchemy import func, select

from bot.app import Linli
from handlers.flow import Notifier
from models import Ballot, BallotEvent, Poll
from services import community
from services.scopes import Scope
from services.voting import notices, polls
from tests.conftest import FakeClock
from tests.report_cast import person_id
from tests.telegram_harness import invite_code
from tests.wechat_stub import WeChatStub

QUESTION = "车棚刷成绿色吗？"
OPTIONS = ["刷成绿色", "保持原样"]
AMY, BEN, CAO, DAI = "o_amy_openid", "o_ben_openid", "o_cao_openid", "o_dai_openid"
RECEIPT = re.compile(r"\b[0-9a-f]{64}\b")
HAN = re.compile(r"[\u4e00-\u9fff]")


class Phone:
    """One WeChat user: each message a callback with its own MsgId (or a given one)."""

    def __init__(self, bot: Linli, wechat: WeChatStub, openid: str) -> None:
        self.bot, self.wechat, self.openid = bot, wechat, openid
        self.msg_id = 5000 + 1000 * len(wechat.followers)

    def body(self, text: str) -> str:
        self.msg_id += 1
        return self.wechat.text(self.openid, text, msg_id=self.msg_id)

    async def post(self, body: str) -> str:
        """Deliver this callback; every text that answers it, in place or sent after."""
        assert self.bot.web is not None and self.bot.wechat is not None
        before = len(self.wechat.texts_to(self.openid))
        passive = self.wechat.reply_text(await self.wechat.post(self.bot.web, body))
        await self.bot.wechat.drain()
        await self.bot.dispatcher.drain()
        later = self.wechat.texts_to(self.openid)[before:]
        return "\n".join(([passive] if passive else []) + later)

    async def send(self, text: str) -> str:
        return await self.post(self.body(text))

    async def event(self, event: str, key: str = "") -> str:
        assert self.bot.web is not None
        answer = await self.wechat.post(self.bot.web, self.wechat.event(self.openid, event, key))
        return self.wechat.reply_text(answer) or ""

    def received(self) -> list[str]:
        return self.wechat.texts_to(self.openid)


async def join(bot: Linli, wechat: WeChatStub, openid: str, room: str, name: str) -> Phone:
    """Scanning the invite's QR code follows the account and starts joining, in Chinese."""
    phone = Phone(bot, wechat, openid)
    assert "请问您住几室" in await phone.event("subscribe", f"qrscene_{await invite_code(bot)}")
    assert "怎么称呼" in await phone.send(room)
    assert "登记完成" in await phone.send(name)
    return phone


async def join_in_english(
    bot: Linli, wechat: WeChatStub, openid: str, room: str, name: str
) -> Phone:
    """Following first, choosing English, then scanning the invite."""
    phone = Phone(bot, wechat, openid)
    await phone.event("subscribe")
    assert "1 中文" in await phone.send("/language")
    assert "English" in await phone.send("2")
    assert "Which room" in await phone.event("SCAN", await invite_code(bot))
    assert "What is your name" in await phone.send(room)
    assert "You are registered" in await phone.send(name)
    return phone


async def open_poll(bot: Linli, clock: FakeClock) -> int:
    """As `linli poll create --scope "building:Building 2"` does: the poll, and each eligible
    resident's card through the outbox."""
    async with bot.transaction() as session:
        building = await community.building_by_name(session, "Building 2")
        assert building is not None
        poll = await polls.create(
            session,
            Scope("building", building.id, "Building 2"),
            QUESTION,
            OPTIONS,
            deadline=clock() + timedelta(days=3),
            now=clock(),
        )
        notifier = Notifier(session, bot.catalogs, "zh_CN", clock(), bot.registry.notices)
        await notifier.tell(await notices.opened(session, poll))
        poll_id = poll.id
    await bot.dispatcher.run_once()
    return poll_id


def receipt_in(text: str) -> str:
    found = RECEIPT.findall(text)
    assert len(found) == 1, text
    return found[0]


async def leaf_of(bot: Linli, receipt: str) -> tuple[int, int]:
    async with bot.sessions() as session:
        row = (
            await session.execute(
                select(BallotEvent.poll_id, BallotEvent.index).where(BallotEvent.digest == receipt)
            )
        ).one()
    return row[0], row[1]


async def ballots(bot: Linli, poll_id: int) -> dict[int | None, int]:
    async with bot.sessions() as session:
        rows = (
            await session.execute(
                select(Ballot.person_id, Ballot.choices).where(Ballot.poll_id == poll_id)
            )
        ).all()
    return {p: c for p, c in rows}


async def log_size(bot: Linli, poll_id: int) -> int:
    async with bot.sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(BallotEvent).where(BallotEvent.poll_id == poll_id)
            )
            or 0
        )


async def test_residents_vote_on_wechat_with_digits_and_words(
    wechat_bot: Linli, wechat: WeChatStub, clock: FakeClock
) -> None:
    amy = await join(wechat_bot, wechat, AMY, "302", "王阿姨")
    ben = await join_in_english(wechat_bot, wechat, BEN, "303", "Ben")
    cao = await join_in_english(wechat_bot, wechat, CAO, "304", "Cao")
    dai = await join(wechat_bot, wechat, DAI, "401", "戴叔")
    poll_id = await open_poll(wechat_bot, clock)
    ids = {
        who.openid: await person_id(wechat_bot, who.openid, "wechat")
        for who in (amy, ben, cao, dai)
    }

    # The card arrives as a customer-service message: the question and a numbered list.
    card = amy.received()[-1]
    assert card.startswith(f"新投票：{QUESTION}") and "投票结束前，任何人都看不到结果" in card
    assert card.endswith("1 刷成绿色\n2 保持原样")
    english = ben.received()[-1]
    assert english.startswith(f"New poll: {QUESTION}") and "Deadline:" in english
    assert english.endswith("1 刷成绿色\n2 保持原样")
    assert cao.received()[-1] == english

    # Amy answers with the digit; the receipt is her ballot's leaf in the poll's log.
    voted = await amy.send("1")
    assert "您的投票已收到" in voted and "回执" in voted
    first = receipt_in(voted)
    assert await leaf_of(wechat_bot, first) == (poll_id, 2)
    assert await ballots(wechat_bot, poll_id) == {ids[AMY]: 0b01}

    # Ben answers with the option's text, and WeChat delivers that callback three times: twice
    # at once (no answer yet) and once more later. One ballot, one entry in the log.
    body = ben.body("保持原样")
    answers = await asyncio.gather(ben.post(body), ben.post(body))
    assert any("Your vote is in." in a for a in answers)
    ben_receipt = receipt_in(next(a for a in answers if "Your vote is in." in a))
    again = await ben.post(body)
    assert again == "" or ben_receipt in again  # at most its reply again, never a new vote
    assert await leaf_of(wechat_bot, ben_receipt) == (poll_id, 3)
    assert await ballots(wechat_bot, poll_id) == {ids[AMY]: 0b01, ids[BEN]: 0b10}
    assert await log_size(wechat_bot, poll_id) == 3

    # /verify, in each one's language.
    checked = await amy.send(f"/verify {first}")
    assert f"您的选票在投票 {poll_id} 的记录中：第 2 条，共 3 条" in checked
    assert "not in any poll's log" in await ben.send("/verify " + "0" * 64)
    assert HAN.search(await amy.send("/verify 12345"))

    # Amy changes her vote with /poll, answering each numbered question with a digit.
    assert f"1 {QUESTION}" in await amy.send("/poll")
    assert "1 刷成绿色\n2 保持原样" in await amy.send("1")
    changed = await amy.send("2")
    assert "您的选择已修改" in changed
    assert await leaf_of(wechat_bot, receipt_in(changed)) == (poll_id, 4)
    assert await ballots(wechat_bot, poll_id) == {ids[AMY]: 0b10, ids[BEN]: 0b10}

    # Nothing before the close shows how anyone voted.
    for who in (amy, ben, cao, dai):
        for text in who.received():
            assert "保持原样: " not in text and "刷成绿色: " not in text and "Turnout" not in text

    # At the deadline the tick closes the poll and everyone it went to gets the results. (The
    # replies sent so far are forgotten first: kept while the clock jumps days ahead, they
    # would look left behind by a dead process, and the tick would send them again.)
    await wechat_bot.dialogue.receipts.flush()
    clock.advance(days=3, hours=1)
    await wechat_bot.ticker.tick()
    results = amy.received()[-1]
    assert results.startswith(f"投票“{QUESTION}”的结果") and "2. 保持原样: 2" in results
    assert ben.received()[-1].startswith(f"Results of the poll “{QUESTION}”")
    assert "Turnout: 2 of 4 (50 %)" in ben.received()[-1]

    # Cao never voted: the card is still the last list he was shown. His digit now gets a
    # polite answer in English, Dai's in Chinese; neither is a ballot.
    late = await cao.send("2")
    assert "This poll is closed" in late and not HAN.search(late)
    assert "该投票已结束" in await dai.send("保持原样")
    assert await ballots(wechat_bot, poll_id) == {ids[AMY]: 0b10, ids[BEN]: 0b10}
    async with wechat_bot.sessions() as session:
        poll = await session.get(Poll, poll_id)
    assert poll is not None and poll.root is not None and poll.size == 4
    published = await amy.send(f"/verify {first}")
    assert "第 2 条，共 4 条" in published and poll.root in published


async def test_a_multiple_choice_ballot_on_wechat(
    wechat_bot: Linli, wechat: WeChatStub, clock: FakeClock
) -> None:
    amy = await join(wechat_bot, wechat, AMY, "302", "王阿姨")
    async with wechat_bot.transaction() as session:
        building = await community.building_by_name(session, "Building 2")
        assert building is not None
        poll = await polls.create(
            session,
            Scope("building", building.id, "Building 2"),
            "楼下空地怎么用？",
            ["自行车架", "长椅", "花坛"],
            deadline=clock() + timedelta(days=3),
            now=clock(),
            max_choices=2,
        )
        notifier = Notifier(
            session, wechat_bot.catalogs, "zh_CN", clock(), wechat_bot.registry.notices
        )
        await notifier.tell(await notices.opened(session, poll))
        poll_id = poll.id
    await wechat_bot.dispatcher.run_once()
    card = amy.received()[-1]
    assert "最多可选 2 项" in card and card.endswith("\n1 选择")

    listed = await amy.send("1")
    assert listed.endswith("1 ☐ 自行车架\n2 ☐ 长椅\n3 ☐ 花坛\n4 确认我的选择")
    await amy.send("1")
    assert (await amy.send("长椅")).endswith("1 ☑ 自行车架\n2 ☑ 长椅\n3 ☐ 花坛\n4 确认我的选择")
    # A third is one more than the poll takes: refused, and the two ticked stay ticked.
    refused = await amy.send("3")
    assert "这个投票最多只能选 2 项" in refused
    assert refused.endswith("1 ☑ 自行车架\n2 ☑ 长椅\n3 ☐ 花坛\n4 确认我的选择")
    assert await ballots(wechat_bot, poll_id) == {}
    voted = await amy.send("4")
    assert "您的投票已收到" in voted
    assert await leaf_of(wechat_bot, receipt_in(voted)) == (poll_id, 2)
    assert await ballots(wechat_bot, poll_id) == {await person_id(wechat_bot, AMY, "wechat"): 0b011}
