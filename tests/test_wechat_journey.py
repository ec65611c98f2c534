"""The whole loop on WeChat alone, in Chinese and in English: a resident joins by a scanned
invite, reports with a photo and a spoken description, a grid worker on WeChat takes the card
with digits and resolves it, and the resident rates the fix. Every message is a signed and
encrypted callback from the stub; every answer a passive reply or a customer-service message."""

from __future__ import annotations

import pytest

from bot.app import Linli
from models import Role
from services import community, people
from services.people import Grant
from tests.conftest import FakeClock
from tests.images import photo
from tests.telegram_harness import TelegramUser, invite_code, register, running_bot
from tests.telegram_stub import BotApiStub
from tests.test_reports import the_report
from tests.wechat_stub import WeChatStub

AMY, GUS = "o_amy_openid", "o_gus_openid"


class Follower:
    """One WeChat user: what they send, and everything that reached them, in order."""

    def __init__(self, wechat_bot: Linli, wechat: WeChatStub, openid: str) -> None:
        self.wechat_bot, self.wechat, self.openid = wechat_bot, wechat, openid
        self.msg_id = 1000 * (1 + len(openid))

    async def send(self, text: str = "", **fields: object) -> str:
        """Send a text (or other fields) and return every text that answers it."""
        assert self.wechat_bot.web is not None and self.wechat_bot.wechat is not None
        before = len(self.wechat.texts_to(self.openid))
        self.msg_id += 1
        if text:
            body = self.wechat.text(self.openid, text, msg_id=self.msg_id)
        else:
            body = self.wechat.xml(self.openid, MsgId=self.msg_id, **fields)
        passive = self.wechat.reply_text(await self.wechat.post(self.wechat_bot.web, body))
        await self.wechat_bot.wechat.drain()
        await self.wechat_bot.dispatcher.drain()
        later = self.wechat.texts_to(self.openid)[before:]
        return "\n".join(([passive] if passive else []) + later)

    async def event(self, event: str, key: str = "") -> str:
        assert self.wechat_bot.web is not None
        answer = await self.wechat.post(
            self.wechat_bot.web, self.wechat.event(self.openid, event, key)
        )
        return self.wechat.reply_text(answer) or ""

    def received(self) -> list[str]:
        return self.wechat.texts_to(self.openid)


WORDS = {
    "zh": {
        "room": "请问您住几室",
        "registered": "登记",
        "photo": "已收到第 1 张照片",
        "voice": "语音",
        "said": "楼道里垃圾堆了三天",
        "garbage": "垃圾堆放",
        "done": "完成",
        "skip": "跳过",
        "submitted": "R-2026-000001",
        "card": "1 接单",
        "accepted": "已接单",
        "told": "已被接单",
        "resolved": "已处理",
        "fix": "灯泡已更换",
        "closed": "报告已办结",
        "comment": "又快又好，谢谢！",
    },
    "en": {
        "room": "Which room",
        "registered": "You are registered",
        "photo": "Photo 1 of 4 received",
        "voice": "Voice note kept",
        "said": "Bags piled up in the corridor for three days",
        "garbage": "Garbage pile",
        "done": "Done",
        "skip": "Skip",
        "submitted": "R-2026-000001 is in",
        "card": "1 Accept",
        "accepted": "Accepted. When you have news, choose below",
        "told": "was accepted",
        "resolved": "resolved",
        "fix": "Bulb replaced",
        "closed": "now closed",
        "comment": "Quick and friendly, thanks!",
    },
}


@pytest.mark.parametrize("language", ["zh", "en"])
async def test_the_whole_loop_on_wechat(
    wechat_bot: Linli, wechat: WeChatStub, language: str
) -> None:
    words = WORDS[language]
    amy, gus = Follower(wechat_bot, wechat, AMY), Follower(wechat_bot, wechat, GUS)
    code = await invite_code(wechat_bot)
    if language == "en":
        # Following the account first, choosing English, then scanning the invite.
        await amy.event("subscribe")
        assert "English" in await amy.send("/language")
        assert "English" in await amy.send("2")
        assert words["room"] in await amy.event("SCAN", code)
    else:
        assert words["room"] in await amy.event("subscribe", f"qrscene_{code}")
    assert "302" in await amy.send("302")
    registered = await amy.send("王阿姨")
    assert words["registered"] in registered

    await gus.send("/help")
    if language == "en":
        await gus.send("/language")
        await gus.send("English")
    async with wechat_bot.transaction() as session:
        worker = await people.by_identity(session, "wechat", GUS)
        grid = await community.grid_by_name(session, "Grid 1")
        assert worker is not None and grid is not None
        await people.grant(session, worker.id, Grant(Role.GRID_WORKER, grid_id=grid.id))

    wechat.media["img-1"] = photo(1600, 1200)
    wechat.media["img-2"] = photo(800, 600)
    wechat.media["voice-1"] = b"#!AMR\n" + b"\x00" * 200
    assert words["photo"] in await amy.send(MsgType="image", MediaId="img-1", PicUrl="http://x")
    spoken = await amy.send(
        MsgType="voice", MediaId="voice-1", Format="amr", Recognition=words["said"]
    )
    assert words["voice"] in spoken
    assert "1 " in await amy.send(words["done"])  # the categories, numbered
    assert "3 bike shed" in await amy.send(words["garbage"])  # chosen by its name
    assert words["skip"] in await amy.send("1")
    summary = await amy.send(words["skip"])
    assert words["said"] in summary
    submitted = await amy.send("1")
    assert words["submitted"] in submitted

    card = gus.received()[-1]
    assert words["card"] in card and "R-2026-000001" in card
    assert [m["msgtype"] for m in wechat.sent if m["touser"] == GUS][-2:] == ["image", "text"]
    accepted = await gus.send("1")
    assert words["accepted"] in accepted
    assert words["told"] in amy.received()[-1]
    assert (await the_report(wechat_bot)).state == "in_progress"
    # Resolving: the option's number, an "after" photo, what was done.
    assert "R-2026-000001" in await gus.send("2")
    await gus.send(MsgType="image", MediaId="img-2", PicUrl="http://x")
    assert words["resolved"] in await gus.send(words["fix"])

    # The resident is asked to rate it, with the fix's photo, and answers with a digit.
    rating = amy.received()[-1]
    assert words["fix"] in rating and "4 ★★★★" in rating and "6 " in rating
    assert [m["msgtype"] for m in wechat.sent if m["touser"] == AMY][-2:] == ["image", "text"]
    assert words["closed"] in await amy.send("4")
    await amy.send(words["comment"])
    assert words["comment"] in gus.received()[-1]
    report = await the_report(wechat_bot)
    assert (report.state, report.rating, report.rating_comment) == ("closed", 4, words["comment"])


async def test_a_report_filed_on_telegram_is_handled_by_a_worker_on_wechat(
    db_url: str, stub: BotApiStub, wechat: WeChatStub, clock: FakeClock
) -> None:
    """Both platforms at once in one bot: Amy reports on Telegram (real PTB, the Bot API stub),
    Gus answers the card on WeChat with digits, and Amy rates the fix on Telegram."""
    async with running_bot(db_url, stub, clock, **wechat.env()) as bot:
        amy = TelegramUser(stub, 7101, "Amy")
        gus = Follower(bot, wechat, GUS)
        await register(amy, await invite_code(bot), "302")
        await gus.send("/help")
        async with bot.transaction() as session:
            worker = await people.by_identity(session, "wechat", GUS)
            grid = await community.grid_by_name(session, "Grid 1")
            assert worker is not None and grid is not None
            await people.grant(session, worker.id, Grant(Role.GRID_WORKER, grid_id=grid.id))

        mark = len(stub.sent)
        stub.push_update(stub.message_update(amy.id, None, photo=photo(), first_name="Amy"))
        await stub.wait_for_message(amy.id, contains="Photo 1 of 4 received", after=mark)
        await amy.press("Done", expect="What kind of problem")
        await amy.press("Garbage pile", expect="Where is the problem")
        await amy.press("My building", expect="Anything that helps")
        await amy.press("Skip", expect="Describe the problem")
        await amy.send("Bags piled up", expect="Please check your report")
        await amy.press("Submit", expect="R-2026-000001 is in")
        await bot.dispatcher.drain()

        # On WeChat the card is the photo, uploaded as temporary media, then numbered text.
        assert [m["msgtype"] for m in wechat.sent if m["touser"] == GUS][-2:] == ["image", "text"]
        card = gus.received()[-1]
        assert "R-2026-000001" in card and "1 接单" in card and "Amy" not in card
        mark = len(stub.sent)
        assert "已接单" in await gus.send("1")
        await stub.wait_for_message(amy.id, contains="was accepted", after=mark)
        assert "处理后的照片" in await gus.send("已处理")  # the option's text works as its digit
        wechat.media["after"] = photo(800, 600)
        await gus.send(MsgType="image", MediaId="after", PicUrl="http://x")
        assert "已处理" in await gus.send("垃圾已清运")

        rating = await stub.wait_for_message(amy.id, contains="is resolved: 垃圾已清运")
        await amy.press("★★★★★", on=rating, expect="now closed")
        await amy.press("Skip", expect="Thank you.")
        await bot.dispatcher.drain()
        assert "评分 5/5" in gus.received()[-1]
        report = await the_report(bot)
        assert (report.state, report.rating) == ("closed", 5)
