"""The WeChat Official Account channel, with correctly signed and encrypted callback XML from
tests/wechat_stub.py and the bot's outbound calls going to the stub's API over real HTTP.
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from bot.app import Linli
from handlers.messages import Outgoing
from models import Identity, Invite, OutboxMessage, Role
from services import community, outbox, people
from services.people import Grant
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.dialog import Dialog
from tests.images import photo
from tests.processes import run_linli
from tests.report_cast import join
from tests.telegram_harness import invite_code
from tests.test_reports import report_without_photo, the_report
from tests.wechat_stub import WeChatStub, sign

AMY = "o_amy_openid"


async def bot_for(db_url: str, clock: FakeClock, stub: WeChatStub, **env: str) -> Linli:
    return await fresh_linli(settings_for(db_url, **stub.env(), **env), clock)


async def test_the_handshake_echoes_only_a_signed_request(
    wechat_bot: Linli, wechat: WeChatStub
) -> None:
    stamp, nonce = str(int(time.time())), "n0nce"
    good = {
        "timestamp": stamp,
        "nonce": nonce,
        "echostr": "hello",
        "signature": sign(wechat.token, stamp, nonce),
    }
    transport = httpx.ASGITransport(app=wechat_bot.web)
    async with httpx.AsyncClient(transport=transport, base_url="http://linli") as client:
        echoed = await client.get("/wechat", params=good)
        forged = await client.get("/wechat", params={**good, "signature": "f" * 40})
    assert (echoed.status_code, echoed.text) == (200, "hello")
    assert forged.status_code == 403 and "hello" not in forged.text


async def test_a_resident_joins_by_a_scanned_invite_and_answers_with_digits(
    wechat_bot: Linli, wechat: WeChatStub
) -> None:
    assert wechat_bot.web is not None
    code = await invite_code(wechat_bot)
    # Scanning the invite's QR code subscribes and starts registration at once (in Chinese,
    # the community's language: WeChat does not tell us the person's).
    asked = wechat.reply_text(
        await wechat.post(wechat_bot.web, wechat.event(AMY, "subscribe", f"qrscene_{code}"))
    )
    assert asked is not None and "请问您住几室" in asked
    named = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "302")))
    assert named is not None and "怎么称呼" in named
    done = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "王阿姨")))
    assert done is not None and "王阿姨" in done
    # Options are the engine's numbered list; the digit answers it.
    menu = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "/language")))
    assert menu is not None and "1 中文" in menu and "2 English" in menu
    english = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "2")))
    assert english == "Done. I will speak English with you from now on."
    async with wechat_bot.sessions() as session:
        identity = await session.scalar(select(Identity).where(Identity.channel == "wechat"))
    assert identity is not None and identity.external_id == AMY


async def test_a_retried_message_is_handled_once(wechat_bot: Linli, wechat: WeChatStub) -> None:
    assert wechat_bot.web is not None
    code = await invite_code(wechat_bot)
    await wechat.post(wechat_bot.web, wechat.event(AMY, "subscribe", f"qrscene_{code}"))
    await wechat.post(wechat_bot.web, wechat.text(AMY, "302", msg_id=41))
    first = await wechat.post(wechat_bot.web, wechat.text(AMY, "王阿姨", msg_id=42))
    again = await wechat.post(wechat_bot.web, wechat.text(AMY, "王阿姨", msg_id=42))
    assert "王阿姨" in (wechat.reply_text(first) or "")
    # The retry changes nothing (the reply, if it may not have gone out, comes again).
    assert wechat.reply_text(again) in (None, wechat.reply_text(first))
    async with wechat_bot.sessions() as session:
        uses = await session.scalar(select(Invite.uses).where(Invite.code == code))
    assert uses == 1


async def registered(linli: Linli, wechat: WeChatStub, openid: str = AMY) -> None:
    assert linli.web is not None
    code = await invite_code(linli)
    await wechat.post(linli.web, wechat.event(openid, "subscribe", f"qrscene_{code}"))
    await wechat.post(linli.web, wechat.text(openid, "302"))
    await wechat.post(linli.web, wechat.text(openid, "王阿姨"))


async def test_a_retried_message_is_processed_once_across_a_restart(
    db_url: str, clock: FakeClock, wechat: WeChatStub
) -> None:
    """A photo: processing it twice would count it twice in the draft."""
    wechat.media["p1"] = photo()
    wechat.media["p2"] = photo(640, 480)
    first_photo = wechat.xml(AMY, MsgType="image", MediaId="p1", PicUrl="http://x", MsgId=77)
    first = await bot_for(db_url, clock, wechat)
    try:
        await registered(first, wechat)
        assert first.web is not None
        got = wechat.reply_text(await wechat.post(first.web, first_photo))
        assert got is not None and "已收到第 1 张照片" in got
    finally:
        await first.close()
    # WeChat retries the same message after the process restarted.
    second = await bot_for(db_url, clock, wechat)
    try:
        assert second.web is not None
        again = await wechat.post(second.web, first_photo)
        # Its reply may not have gone out: it may come again; nothing runs twice.
        assert wechat.reply_text(again) in (None, got)
        assert [c[1]["media_id"] for c in wechat.calls if c[0] == "media_get"] == ["p1"]
        another = wechat.xml(AMY, MsgType="image", MediaId="p2", PicUrl="http://x", MsgId=78)
        counted = wechat.reply_text(await wechat.post(second.web, another))
        assert counted is not None and "已收到第 2 张照片" in counted
    finally:
        await second.close()


async def test_a_slow_large_image_is_answered_in_time_and_its_reply_follows(
    db_url: str, clock: FakeClock, wechat: WeChatStub
) -> None:
    """The download of a 12-megapixel photo is held back: WeChat gets `success` within the
    budget, its retries of the same message neither start the work again nor lose the
    reply, which goes out through the customer-service API once the photo is in."""
    linli = await bot_for(db_url, clock, wechat, LINLI_WECHAT__REPLY_BUDGET_SECONDS="0.2")
    try:
        await registered(linli, wechat)
        assert linli.web is not None and linli.wechat is not None
        wechat.media["big"] = photo(4000, 3000)
        wechat.media_gate = asyncio.Event()
        image = wechat.xml(AMY, MsgType="image", MediaId="big", PicUrl="http://x", MsgId=88)
        first = await wechat.post(linli.web, image)
        assert first.text == "success", wechat.reply_text(first)
        assert (await wechat.post(linli.web, image)).text == "success"  # WeChat's retry
        assert not any("已收到第 1 张照片" in t for t in wechat.texts_to(AMY))
        wechat.media_gate.set()
        await linli.wechat.drain()
        assert [c for c in wechat.calls if c[0] == "media_get"] == [
            ("media_get", {"media_id": "big"})
        ]
        assert sum("已收到第 1 张照片" in t for t in wechat.texts_to(AMY)) == 1
        # A retry after the work is done changes nothing and sends nothing more.
        assert (await wechat.post(linli.web, image)).text == "success"
        await linli.wechat.drain()
        assert sum("已收到第 1 张照片" in t for t in wechat.texts_to(AMY)) == 1
    finally:
        await linli.close()


async def test_a_slow_reply_goes_out_through_the_customer_service_api(
    db_url: str, clock: FakeClock, wechat: WeChatStub
) -> None:
    linli = await bot_for(db_url, clock, wechat, LINLI_WECHAT__REPLY_BUDGET_SECONDS="0.000001")
    try:
        assert linli.web is not None and linli.wechat is not None
        response = await wechat.post(linli.web, wechat.text(AMY, "/help"))
        # Not ready within the budget: `success` now, so WeChat does not retry...
        assert response.text == "success"
        await linli.wechat.drain()
        # ...and the answer arrives through the customer-service API, in the window.
        assert any("您可以使用以下功能" in t for t in wechat.texts_to(AMY))
        assert wechat.tokens_issued == 1
    finally:
        await linli.close()


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("forged signature", 403),
        ("old timestamp", 403),
        ("another account", 400),
        ("malformed", 400),
        ("entity bomb", 400),
        ("oversized", 413),
        ("plain in safe mode", 400),
    ],
)
async def test_bad_callbacks_get_a_4xx_and_change_nothing(
    wechat_bot: Linli, wechat: WeChatStub, name: str, status: int
) -> None:
    assert wechat_bot.web is not None
    text = wechat.text(AMY, "/help")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        "<xml><FromUserName>&lol2;</FromUserName><MsgType>text</MsgType></xml>"
    )
    sent = {
        "forged signature": lambda: wechat.post(wechat_bot.web, text, forge=True),
        "old timestamp": lambda: wechat.post(
            wechat_bot.web, text, timestamp=int(time.time()) - 3600
        ),
        "another account": lambda: wechat.post(wechat_bot.web, text, appid="wxsomeoneelse0000"),
        "malformed": lambda: wechat.post(wechat_bot.web, "<xml><FromUserName>amy"),
        "entity bomb": lambda: wechat.post(wechat_bot.web, bomb),
        "oversized": lambda: wechat.post(wechat_bot.web, text + " " * 70_000),
        "plain in safe mode": lambda: wechat.post(wechat_bot.web, text, mode="plain"),
    }[name]
    response = await sent()
    assert response.status_code == status, response.text
    async with wechat_bot.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Identity)) == 0


async def test_cdata_ends_in_a_reply_survive(wechat_bot: Linli, wechat: WeChatStub) -> None:
    assert wechat_bot.web is not None
    reply = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "/a]]>b")))
    assert reply is not None and "/a]]>b" in reply


async def test_outside_the_48_hour_window_a_template_carries_the_notice(
    db_url: str, clock: FakeClock
) -> None:
    now = [time.time()]
    async with WeChatStub(clock=lambda: now[0]) as wechat:
        linli = await bot_for(
            db_url,
            clock,
            wechat,
            LINLI_WECHAT__TEMPLATES='{"report.accepted": "TPL_ACCEPTED"}',
        )
        try:
            assert linli.web is not None
            await wechat.post(linli.web, wechat.text(AMY, "/help"))
            async with linli.transaction() as session:
                amy = await people.by_identity(session, "wechat", AMY)
                assert amy is not None
                for kind in ("report.accepted", "report.news"):
                    message = Outgoing("Your report R-2026-000001 was accepted.", notice=kind)
                    outbox.enqueue(session, amy.id, message.to_dict(), clock())
            now[0] += 49 * 3600  # two days later: the customer-service window has closed
            await linli.dispatcher.run_once()
            assert [t["template_id"] for t in wechat.templates_sent] == ["TPL_ACCEPTED"]
            assert wechat.templates_sent[0]["data"]["content"]["value"].startswith("Your report")
            async with linli.sessions() as session:
                rows = (
                    await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
                ).all()
            # The kind with no template is recorded as undeliverable here, and not retried.
            assert [(r.status, r.attempts) for r in rows] == [("sent", 1), ("blocked", 1)]
            assert (
                rows[1].last_error is not None
                and "no template for report.news" in rows[1].last_error
            )
        finally:
            await linli.close()


async def test_a_photo_report_with_a_spoken_description(
    wechat_bot: Linli, wechat: WeChatStub
) -> None:
    """The photo is downloaded by MediaId through the API; the voice note's recognised text
    becomes the description, which the summary shows. Answered with digits and words."""
    assert wechat_bot.web is not None
    code = await invite_code(wechat_bot)
    await wechat.post(wechat_bot.web, wechat.event(AMY, "subscribe", f"qrscene_{code}"))
    await wechat.post(wechat_bot.web, wechat.text(AMY, "302"))
    await wechat.post(wechat_bot.web, wechat.text(AMY, "王阿姨"))
    wechat.media["img-1"] = photo()
    wechat.media["voice-1"] = b"#!AMR\n" + b"\x00" * 200
    got = await wechat.post(
        wechat_bot.web,
        wechat.xml(AMY, MsgType="image", MediaId="img-1", PicUrl="http://x", MsgId=501),
    )
    assert "已收到第 1 张照片" in (wechat.reply_text(got) or "")
    spoken = await wechat.post(
        wechat_bot.web,
        wechat.xml(
            AMY,
            MsgType="voice",
            MediaId="voice-1",
            Format="amr",
            Recognition="楼道灯坏了",
            MsgId=502,
        ),
    )
    assert "语音" in (wechat.reply_text(spoken) or "")
    kinds = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "完成")))
    assert kinds is not None and "1 " in kinds  # the categories, numbered
    place = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "1")))
    assert place is not None and "问题在哪里" in place and "发送位置" in place
    detail = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "1")))
    assert detail is not None
    summary = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "跳过")))
    assert summary is not None and "楼道灯坏了" in summary, summary


async def test_the_command_line_makes_invite_qr_codes_and_the_menu(
    db_url: str, wechat: WeChatStub, tmp_path: Path
) -> None:
    env = {"LINLI_DATABASE__URL": db_url, **wechat.env()}
    await run_linli(env, "init")
    out = await run_linli(
        env, "invite", "--building", "Building 2", "--wechat", "--qr", str(tmp_path / "qr.png")
    )
    code = out.split("code: ")[1].split()[0]
    assert f"wechat: http://weixin.qq.com/q/{code}" in out
    # The QR image encodes WeChat's URL for that scene.
    decoded = zxingcpp.read_barcodes(Image.open(tmp_path / "qr.png"))
    assert [d.text for d in decoded] == [f"http://weixin.qq.com/q/{code}"]
    assert list(wechat.qr_scenes.values()) == [code]
    out = await run_linli(env, "wechat", "menu")
    assert out.strip() == "wechat menu: 11 buttons"
    assert wechat.menu == [
        {"type": "click", "name": "随手拍", "key": "report"},
        {
            "name": "邻里",
            "sub_button": [
                {"type": "click", "name": "议事厅", "key": "agenda"},
                {"type": "click", "name": "楼组投票", "key": "poll"},
                {"type": "click", "name": "往月议事", "key": "agenda history"},
                {"type": "click", "name": "时间银行", "key": "timebank"},
                {"type": "click", "name": "积分兑换", "key": "rewards"},
            ],
        },
        {
            "name": "我的",
            "sub_button": [
                {"type": "click", "name": "我的上报", "key": "myreports"},
                {"type": "click", "name": "我的积分", "key": "points"},
                {"type": "click", "name": "语言", "key": "language"},
                {"type": "click", "name": "帮助", "key": "help"},
                {"type": "click", "name": "关联账号", "key": "link"},
            ],
        },
    ]


async def test_a_menu_click_runs_its_command(wechat_bot: Linli, wechat: WeChatStub) -> None:
    assert wechat_bot.web is not None
    answer = wechat.reply_text(
        await wechat.post(wechat_bot.web, wechat.event(AMY, "CLICK", "help"))
    )
    assert answer is not None and "您可以使用以下功能" in answer


async def test_a_grid_worker_on_wechat_answers_a_dispatch_card_with_digits(
    wechat_bot: Linli, wechat: WeChatStub
) -> None:
    """The resident reports in another app; the card reaches the worker on WeChat as a picture
    and a numbered list, and a digit typed there is the press of its button."""
    assert wechat_bot.web is not None
    gus = "o_gus_openid"
    await wechat.post(wechat_bot.web, wechat.text(gus, "/help"))
    async with wechat_bot.transaction() as session:
        worker = await people.by_identity(session, "wechat", gus)
        grid = await community.grid_by_name(session, "Grid 1")
        assert worker is not None and grid is not None
        await people.grant(session, worker.id, Grant(Role.GRID_WORKER, grid_id=grid.id))
    dialog = Dialog(wechat_bot, "telegram")  # the resident reports from Telegram
    await join(dialog, "amy")
    number = await report_without_photo(dialog, "amy", "楼道灯坏了")
    await wechat_bot.dispatcher.drain()
    card = wechat.texts_to(gus)[-1]
    assert number in card and "1 接单" in card and "2 转派" in card, card
    accepted = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(gus, "1")))
    assert accepted is not None and "已接单" in accepted
    assert (await the_report(wechat_bot, number)).state == "in_progress"
    await wechat_bot.dispatcher.drain()  # the reporter's notice leaves after the worker's commit
    assert "was accepted" in dialog.notices("amy")[-1]


async def test_a_follower_who_leaves_is_not_written_to_until_they_come_back(
    wechat_bot: Linli, wechat: WeChatStub, clock: FakeClock
) -> None:
    assert wechat_bot.web is not None
    await wechat.post(wechat_bot.web, wechat.text(AMY, "/help"))
    assert (await wechat.post(wechat_bot.web, wechat.event(AMY, "unsubscribe"))).text == "success"
    async with wechat_bot.transaction() as session:
        amy = await people.by_identity(session, "wechat", AMY)
        assert amy is not None
        outbox.enqueue(session, amy.id, Outgoing("News.").to_dict(), clock())
    await wechat_bot.dispatcher.run_once()
    async with wechat_bot.sessions() as session:
        row = await session.scalar(select(OutboxMessage))
    assert row is not None and row.status == "unreachable"
    assert not [c for c in wechat.calls if c[0] == "custom_send"]  # no call bound to fail

    welcome = await wechat.post(wechat_bot.web, wechat.event(AMY, "subscribe"))
    assert "欢迎" in (wechat.reply_text(welcome) or "")
    async with wechat_bot.transaction() as session:
        outbox.enqueue(session, amy.id, Outgoing("More news.").to_dict(), clock())
    await wechat_bot.dispatcher.run_once()
    assert wechat.texts_to(AMY) == ["More news."]


async def test_two_menu_taps_in_one_second_are_two_and_a_retry_is_none(
    wechat_bot: Linli, wechat: WeChatStub
) -> None:
    assert wechat_bot.web is not None
    second = int(time.time())

    def tap(key: str) -> str:
        return wechat.xml(AMY, MsgType="event", Event="CLICK", EventKey=key, CreateTime=second)

    helped = wechat.reply_text(await wechat.post(wechat_bot.web, tap("help")))
    asked = wechat.reply_text(await wechat.post(wechat_bot.web, tap("language")))
    assert helped is not None and "您可以使用以下功能" in helped
    assert asked is not None and "English" in asked
    retried = await wechat.post(wechat_bot.web, tap("language"))
    assert wechat.reply_text(retried) in (None, asked)
    # The retry did not ask again: the question's numbering is the one first shown.
    chosen = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "2")))
    assert chosen is not None and "English" in chosen
