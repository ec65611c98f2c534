"""Broadcasts to residents on WeChat (issue 13): inside the 48 h customer-service window as a
customer-service message, outside it as the configured template, and the counts say which;
acknowledgement by replying with the digit; the text as plain text (no HTML tags)."""

from __future__ import annotations

import pytest

from bot.app import Linli
from services.broadcasts import compose, deliveries
from tests.conftest import FakeClock
from tests.test_polls_wechat import join
from tests.wechat_stub import WINDOW, WeChatStub

AMY, BEN = "o_amy_openid", "o_ben_openid"


@pytest.fixture
def wechat_settings() -> dict[str, str]:
    return {"LINLI_WECHAT__TEMPLATES": '{"broadcast": "TPL_NOTICE"}'}


async def test_inside_the_window_by_customer_service_outside_by_template(
    wechat_bot: Linli, wechat: WeChatStub, clock: FakeClock
) -> None:
    amy = await join(wechat_bot, wechat, AMY, "302", "小艾")
    await join(wechat_bot, wechat, BEN, "303", "小本")
    # Ben last wrote more than 48 hours ago (as WeChat sees it).
    wechat.followers[BEN].last_message_at -= WINDOW + 60
    async with wechat_bot.transaction() as session:
        made, queued = await compose.create(
            session,
            author_id=None,
            text="<b>明天</b>上午停水 &amp; 停电",
            keys=["community"],
            private=True,
            groups=False,
            ack=True,
            send_at=clock(),
            now=clock(),
        )
    assert queued == 2
    await wechat_bot.broadcasts.run_once()
    assert wechat.texts_to(AMY)[-1] == "明天上午停水 & 停电\n1 收到"
    (template,) = wechat.templates_sent
    assert template["touser"] == BEN and template["template_id"] == "TPL_NOTICE"
    assert template["data"]["content"]["value"].startswith("明天上午停水 & 停电")
    # Amy replies with the digit: acknowledged.
    assert "谢谢，已记录。" in await amy.send("1")
    async with wechat_bot.sessions() as session:
        counts = await deliveries.counts(session, made.id)
    assert counts.by_channel == {"wechat_cs": {"delivered": 1}, "wechat_template": {"delivered": 1}}
    assert (counts.delivered, counts.acknowledged) == (2, 1)
