"""Points, the time bank and rewards end to end (issue 12), through the real adapters: Amy on
Telegram (python-telegram-bot speaking HTTP to the Bot API stub), Dai on WeChat (signed and
encrypted callbacks to the WeChat stub, in Chinese). Amy, an elderly resident whom staff
marked, asks for help; Dai takes it from her numbered list on WeChat; Amy confirms the real
time and the minutes and Dai's points follow; both read it in /points. Then Amy redeems a
reward, gets its code and QR image on Telegram, and staff hand it over by scanning the QR: a
deep link that opens /pickup with the code."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import zxingcpp
from PIL import Image

from models import Role
from services import people
from services.people import Grant
from services.points import awards, rewards, timebank
from tests.conftest import FakeClock
from tests.report_cast import person_id
from tests.telegram_harness import TelegramUser, invite_code, register, running_bot
from tests.telegram_stub import BotApiStub
from tests.test_polls_wechat import Phone
from tests.wechat_stub import WeChatStub

DAI = "o_dai_openid"


def option_number(card: str, label: str) -> str:
    """The digit a WeChat numbered list gives the option that reads `label`."""
    found = re.search(rf"^(\d+) {re.escape(label)}", card, re.MULTILINE)
    assert found, card
    return found.group(1)


async def test_time_bank_across_telegram_and_wechat_then_a_reward_picked_up_by_its_qr(
    db_url: str, stub: BotApiStub, wechat: WeChatStub, clock: FakeClock
) -> None:
    async with running_bot(db_url, stub, clock, **wechat.env()) as bot:
        amy = TelegramUser(stub, 7731, "Amy")
        sam = TelegramUser(stub, 7732, "Sam")
        await register(amy, await invite_code(bot), "302")
        await register(sam, await invite_code(bot), "303")
        dai = Phone(bot, wechat, DAI)
        assert "请问您住几室" in await dai.event(
            "subscribe", f"qrscene_{await invite_code(bot, 'Building 1')}"
        )
        assert "怎么称呼" in await dai.send("402")
        assert "登记完成" in await dai.send("小戴")
        amy_id = await person_id(bot, str(amy.id), "telegram")
        async with bot.transaction() as session:
            sam_id = await person_id(bot, str(sam.id), "telegram")
            await people.grant(session, sam_id, Grant(Role.STAFF))
            await timebank.mark_elder(session, amy_id, True, clock(), actor_id=sam_id)

        # Amy asks on Telegram: the pool covers her, she has no minutes of her own.
        menu = await amy.send("/timebank", expect="Time bank: neighbours help neighbours.")
        assert "The community covers up to 10 h more of your help this month." in menu["text"]
        await amy.press("Ask for help", expect="What do you need help with?")
        await amy.send("Company to the clinic", expect="About how long")
        await amy.press("1 h", expect="Ask the neighbours for: Company to the clinic (about 1 h)?")
        await amy.press("Ask", expect="Asked (request #")

        # Dai helps on WeChat, answering numbered lists with digits, in Chinese.
        card = await dai.send("/timebank")
        assert "时间银行：邻里互助。" in card
        picked = await dai.send(option_number(card, "帮助邻居（1 个等待中）"))
        assert "Company to the clinic，约1小时（Building 2）" in picked
        asked = await dai.send(option_number(picked, "帮忙 #"))
        thanks = await dai.send(option_number(asked, "我来帮忙"))
        assert "谢谢您！Amy（Building 2，302室）请求帮助：Company to the clinic。" in thanks
        await stub.wait_for_message(
            amy.id, contains="小戴 will help you with: Company to the clinic."
        )

        # Amy confirms 75 minutes, typed; the pool pays them, and Dai hears it on WeChat.
        await amy.send("/timebank", expect="Time bank")
        await amy.press("My requests and help", expect="小戴 is helping.")
        await amy.press("Done: confirm #", expect="how long did the help take?")
        await amy.send("75", expect="Confirm 1 h 15 min of help from 小戴?")
        done = await amy.press("Confirm", expect="Thank you! 75 minutes went to your helper.")
        assert "The community covered 1 h 15 min of them." in done["text"]
        await bot.dispatcher.drain()
        said = "\n".join(dai.received())
        assert "Amy确认了您帮忙1小时15分钟：Company to the clinic。" in said
        assert "您收到了 75 分钟。" in said and "另获志愿服务积分 12 分。" in said
        statement = await dai.send("/points")
        assert "您的积分：12" in statement and "时间银行：75 分钟" in statement
        assert "+75 分钟" in statement

        # A reward for Amy's points: redeemed on Telegram, a code and its QR image.
        async with bot.transaction() as session:
            await awards.award_by_staff(session, amy_id, 40, "Sorting week", clock())
            await rewards.add(
                session,
                name_zh="环保袋",
                name_en="Eco bag",
                price=30,
                stock=5,
                starts_at=clock() - timedelta(days=1),
                ends_at=clock() + timedelta(days=30),
                now=clock(),
            )
        await amy.send("/rewards", expect="• Eco bag: 30 points (5 left)")
        await amy.press("Eco bag · 30", expect="Redeem Eco bag for 30 points?")
        photo = await amy.press("Redeem", expect="Redeemed: Eco bag.")
        assert photo["method"] == "sendPhoto" and "Your points: 10" in photo["caption"]
        code = re.search(r"Your pickup code: (\w{4}) (\w{4})", photo["caption"])
        assert code is not None
        scanned = zxingcpp.read_barcodes(Image.open(io.BytesIO(photo["file"])))
        link = f"https://t.me/{stub.username}?start=go_pickup-{code[1]}{code[2]}"
        assert [found.text for found in scanned] == [link]

        # Sam scans it: Telegram opens the bot with /start and the link's parameter.
        handed = await sam.send(
            f"/start go_pickup-{code[1]}{code[2]}", expect="Hand over Eco bag to Amy"
        )
        assert "(Building 2, room 302)" in handed["text"]
        await stub.wait_for_message(amy.id, contains="You picked up Eco bag.")
        # Amy cannot: /pickup is staff's.
        await amy.send(
            f"/start go_pickup-{code[1]}{code[2]}", expect="Sorry, /pickup is not available"
        )
