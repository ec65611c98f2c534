"""The WeChat Official Account channel, with correctly signed and encrypted callback XML from
tests/wechat_stub.py and the bot's outbound calls going to the stub's API over real HTTP.
SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from bot.app import Linli
from models import Identity, Invite
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.telegram_harness import invite_code
from tests.wechat_stub import WeChatStub, sign

AMY = "o_amy_openid"


@pytest.fixture
async def wechat() -> AsyncIterator[WeChatStub]:
    async with WeChatStub() as stub:
        yield stub


async def bot_for(db_url: str, clock: FakeClock, stub: WeChatStub, **env: str) -> Linli:
    return await fresh_linli(settings_for(db_url, **stub.env(), **env), clock)


@pytest.fixture
async def bot(db_url: str, clock: FakeClock, wechat: WeChatStub) -> AsyncIterator[Linli]:
    linli = await bot_for(db_url, clock, wechat)
    yield linli
    await linli.close()


async def test_the_handshake_echoes_only_a_signed_request(bot: Linli, wechat: WeChatStub) -> None:
    stamp, nonce = str(int(time.time())), "n0nce"
    good = {
        "timestamp": stamp,
        "nonce": nonce,
        "echostr": "hello",
        "signature": sign(wechat.token, stamp, nonce),
    }
    transport = httpx.ASGITransport(app=bot.web)
    async with httpx.AsyncClient(transport=transport, base_url="http://linli") as client:
        echoed = await client.get("/wechat", params=good)
        forged = await client.get("/wechat", params={**good, "signature": "f" * 40})
    assert (echoed.status_code, echoed.text) == (200, "hello")
    assert forged.status_code == 403 and "hello" not in forged.text


async def test_a_resident_joins_by_a_scanned_invite_and_answers_with_digits(
    bot: Linli, wechat: WeChatStub
) -> None:
    assert bot.web is not None
    code = await invite_code(bot)
    # Scanning the invite's QR code subscribes and starts registration at once (in Chinese,
    # the community's language: WeChat does not tell us the person's).
    asked = wechat.reply_text(
        await wechat.post(bot.web, wechat.event(AMY, "subscribe", f"qrscene_{code}"))
    )
    assert asked is not None and "请问您住几室" in asked
    named = wechat.reply_text(await wechat.post(bot.web, wechat.text(AMY, "302")))
    assert named is not None and "怎么称呼" in named
    done = wechat.reply_text(await wechat.post(bot.web, wechat.text(AMY, "王阿姨")))
    assert done is not None and "王阿姨" in done
    # Options are the engine's numbered list; the digit answers it.
    menu = wechat.reply_text(await wechat.post(bot.web, wechat.text(AMY, "/language")))
    assert menu is not None and "1 中文" in menu and "2 English" in menu
    english = wechat.reply_text(await wechat.post(bot.web, wechat.text(AMY, "2")))
    assert english == "Done. I will speak English with you from now on."
    async with bot.sessions() as session:
        identity = await session.scalar(select(Identity).where(Identity.channel == "wechat"))
    assert identity is not None and identity.external_id == AMY


async def test_a_retried_message_is_handled_once(bot: Linli, wechat: WeChatStub) -> None:
    assert bot.web is not None
    code = await invite_code(bot)
    await wechat.post(bot.web, wechat.event(AMY, "subscribe", f"qrscene_{code}"))
    await wechat.post(bot.web, wechat.text(AMY, "302", msg_id=41))
    first = await wechat.post(bot.web, wechat.text(AMY, "王阿姨", msg_id=42))
    again = await wechat.post(bot.web, wechat.text(AMY, "王阿姨", msg_id=42))
    assert "王阿姨" in (wechat.reply_text(first) or "")
    # The retry changes nothing (the reply, if it may not have gone out, comes again).
    assert wechat.reply_text(again) in (None, wechat.reply_text(first))
    async with bot.sessions() as session:
        uses = await session.scalar(select(Invite.uses).where(Invite.code == code))
    assert uses == 1


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
    bot: Linli, wechat: WeChatStub, name: str, status: int
) -> None:
    assert bot.web is not None
    text = wechat.text(AMY, "/help")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        "<xml><FromUserName>&lol2;</FromUserName><MsgType>text</MsgType></xml>"
    )
    sent = {
        "forged signature": lambda: wechat.post(bot.web, text, forge=True),
        "old timestamp": lambda: wechat.post(bot.web, text, timestamp=int(time.time()) - 3600),
        "another account": lambda: wechat.post(bot.web, text, appid="wxsomeoneelse0000"),
        "malformed": lambda: wechat.post(bot.web, "<xml><FromUserName>amy"),
        "entity bomb": lambda: wechat.post(bot.web, bomb),
        "oversized": lambda: wechat.post(bot.web, text + " " * 70_000),
        "plain in safe mode": lambda: wechat.post(bot.web, text, mode="plain"),
    }[name]
    response = await sent()
    assert response.status_code == status, response.text
    async with bot.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Identity)) == 0


async def test_cdata_ends_in_a_reply_survive(bot: Linli, wechat: WeChatStub) -> None:
    assert bot.web is not None
    reply = wechat.reply_text(await wechat.post(bot.web, wechat.text(AMY, "/a]]>b")))
    assert reply is not None and "/a]]>b" in reply
