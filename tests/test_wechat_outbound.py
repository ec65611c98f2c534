"""What the wechat_bot sends on WeChat outside a passive reply: cards as pictures and numbered text,
updated cards only when worth a message, and the customer-service quota. SQLite and
PostgreSQL; the API is the stub's, over real HTTP."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bot.app import Linli
from bot.channels.wechat import ServiceWindow, WeChatChannel
from handlers.messages import CardRef, Option, Outgoing
from models import OutboxMessage
from services import outbox, people
from tests.conftest import FakeClock
from tests.images import photo
from tests.wechat_stub import WeChatStub

GUS = "o_gus_openid"


@pytest.fixture
def wechat_settings() -> dict[str, str]:
    return {"LINLI_WECHAT__TEMPLATES": '{"report.news": "TPL_NEWS"}'}


def channel(linli: Linli) -> WeChatChannel:
    assert linli.wechat is not None
    return linli.wechat


def card(text: str, *options: str, image_key: str | None = None) -> Outgoing:
    return Outgoing(
        text,
        options=tuple(Option(label, f"t{n}") for n, label in enumerate(options, 1)),
        image_key=image_key,
        card=CardRef("report", "7"),
    )


def sent_kinds(wechat: WeChatStub, openid: str) -> list[str]:
    return [m["msgtype"] for m in wechat.sent if m["touser"] == openid]


async def test_a_card_comes_as_a_picture_and_a_numbered_list_and_updates_only_when_it_changes(
    wechat_bot: Linli, wechat: WeChatStub
) -> None:
    assert wechat_bot.web is not None
    await wechat.post(wechat_bot.web, wechat.text(GUS, "/help"))
    key = wechat_bot.media.put("card-photo", photo())
    first = card("R-2026-000007 · 楼道灯坏了", "接单", "转派", image_key=key)
    await channel(wechat_bot).send(GUS, first)
    assert sent_kinds(wechat, GUS) == ["image", "text"]
    uploads = [c for c in wechat.calls if c[0] == "upload"]
    assert len(uploads) == 1 and wechat.media[uploads[0][1]["media_id"]] == wechat_bot.media.get(
        key
    )
    assert wechat.texts_to(GUS)[-1].endswith("1 接单\n2 转派")

    # The same card again (a retry, or an update that changed nothing visible): not sent.
    await channel(wechat_bot).send(GUS, first)
    assert sent_kinds(wechat, GUS) == ["image", "text"]
    # Changed: the new text, without sending the picture again.
    await channel(wechat_bot).send(GUS, card("R-2026-000007 · 已接单", "解决", image_key=key))
    assert sent_kinds(wechat, GUS) == ["image", "text", "text"]
    assert wechat.texts_to(GUS)[-1].endswith("1 解决")
    # Another card in the same chat has its own picture.
    other = Outgoing("R-2026-000008", image_key=key, card=CardRef("report", "8"))
    await channel(wechat_bot).send(GUS, other)
    assert sent_kinds(wechat, GUS) == ["image", "text", "text", "image", "text"]


async def test_the_quota_is_kept_and_a_template_carries_what_it_leaves(
    wechat_bot: Linli, wechat: WeChatStub, clock: FakeClock
) -> None:
    """Five customer-service messages per message from the person; the sixth notice goes as
    its template. A process that did not hear the person (a restart) learns it from 45047."""
    assert wechat_bot.web is not None
    await wechat.post(wechat_bot.web, wechat.text(GUS, "/help"))
    async with wechat_bot.transaction() as session:
        gus = await people.by_identity(session, "wechat", GUS)
        assert gus is not None
        for n in range(1, 7):
            message = Outgoing(f"News {n} about your report.", notice="report.news")
            outbox.enqueue(session, gus.id, message.to_dict(), clock())
    while await wechat_bot.dispatcher.run_once():
        pass
    custom = [c for c in wechat.calls if c[0] == "custom_send" and c[1]["touser"] == GUS]
    # The reply to /help was passive: all five went to the notices, and the sixth was never
    # tried as a customer-service message.
    assert [c[1]["text"]["content"] for c in custom] == [
        f"News {n} about your report." for n in range(1, 6)
    ]
    assert [t["data"]["content"]["value"] for t in wechat.templates_sent] == [
        "News 6 about your report."
    ]

    # A kind with no template waits for nobody: recorded with the true reason.
    async with wechat_bot.transaction() as session:
        outbox.enqueue(
            session, gus.id, Outgoing("A card.", notice="report.card").to_dict(), clock()
        )
    await wechat_bot.dispatcher.run_once()
    async with wechat_bot.sessions() as session:
        row = await session.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()))
    assert row is not None and row.status == "blocked"
    assert "quota used up until they write again, and no template for report.card" in (
        row.last_error or ""
    )

    channel(wechat_bot).window = ServiceWindow(48 * 3600, 5, time.time)  # as after a restart
    async with wechat_bot.transaction() as session:
        outbox.enqueue(
            session, gus.id, Outgoing("News 7.", notice="report.news").to_dict(), clock()
        )
    await wechat_bot.dispatcher.run_once()
    refused = [c for c in wechat.calls if c[0] == "custom_send"][-1]
    assert refused[1]["text"]["content"] == "News 7."  # tried, and WeChat said 45047...
    assert wechat.templates_sent[-1]["data"]["content"]["value"] == "News 7."  # ...so, template
