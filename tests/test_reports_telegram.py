"""随手拍 through real python-telegram-bot and the Bot API stub: photos in, cards out, buttons."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from bot.app import Linli
from models import Report, Role
from services import community, people
from services.people import Grant
from tests.conftest import FakeClock
from tests.images import camera_exif, photo
from tests.telegram_harness import TelegramUser, invite_code, register, running_bot
from tests.telegram_stub import BotApiStub


@pytest.fixture
async def stub() -> AsyncIterator[BotApiStub]:
    async with BotApiStub() as running:
        yield running


@pytest.fixture
async def bot(db_url: str, stub: BotApiStub, clock: FakeClock) -> AsyncIterator[Linli]:
    async with running_bot(db_url, stub, clock) as linli:
        yield linli


async def grid_worker(bot: Linli, user: TelegramUser) -> None:
    await user.send("/help")
    async with bot.transaction() as session:
        person = await people.by_identity(session, "telegram", str(user.id))
        grid = await community.grid_by_name(session, "Grid 1")
        assert person is not None and grid is not None
        await people.grant(session, person.id, Grant(Role.GRID_WORKER, grid_id=grid.id))


def send_file(stub: BotApiStub, user: TelegramUser, content: bytes, name: str) -> None:
    """An image sent as a file (a document): the only form that keeps the camera's EXIF."""
    document = {"file_name": name, "mime_type": "image/jpeg", "content": content}
    stub.push_update(stub.message_update(user.id, None, document=document, first_name=user.name))


async def card_for(stub: BotApiStub, user: TelegramUser, contains: str) -> dict[str, Any]:
    entry = await stub.wait_for_message(user.id, contains=contains)
    assert entry["method"] == "sendPhoto", entry["method"]
    return entry


async def test_photo_report_closed_loop_over_telegram(bot: Linli, stub: BotApiStub) -> None:
    amy = TelegramUser(stub, 7001, "Amy")
    gus = TelegramUser(stub, 7002, "Gus", language="zh-hans")
    await register(amy, await invite_code(bot), "302")
    await grid_worker(bot, gus)

    mark = len(stub.sent)
    send_file(stub, amy, photo(exif=camera_exif()), "IMG_0001.jpg")
    await stub.wait_for_message(amy.id, contains="Photo 1 of 4 received", after=mark)
    stub.push_update(stub.message_update(amy.id, None, voice=True, first_name="Amy"))
    await stub.wait_for_message(amy.id, contains="Voice note kept", after=mark)
    stub.push_update(stub.message_update(amy.id, None, video=True, first_name="Amy"))
    await stub.wait_for_message(amy.id, contains="Videos cannot be attached", after=mark)
    await amy.press("Done", expect="What kind of problem")
    await amy.press("Garbage pile", expect="Where is the problem")
    await amy.press("Where the photo was taken", expect="Anything that helps")
    await amy.send("by the bins", expect="Describe the problem")
    summary = await amy.send("Bags piled up", expect="Please check your report")
    assert "31.22" in summary["text"] and "voice notes: 1" in summary["text"]
    await amy.press("Submit", expect="R-2026-000001 is in")

    card = await card_for(stub, gus, "有一条新报告需要您处理")
    assert [label for label, _ in stub.buttons(card)] == [
        "接单",
        "转派",
        "不属于我们，退回",
        "标记为重复",
    ]
    uploaded = Image.open(io.BytesIO(card["file"]))
    assert dict(uploaded.getexif()) == {} and b"PhoneMaker" not in card["file"]
    assert "Amy" not in card["caption"]

    # Amy replays Gus's button: it is not hers, and nothing moves.
    mark = len(stub.sent)
    accept = next(data for label, data in stub.buttons(card) if label == "接单")
    stub.press(amy.id, accept, message=summary, language_code="en")
    await stub.wait_for_message(amy.id, contains="This button has expired", after=mark)

    await gus.press("接单", on=card, expect="已接单")
    await stub.wait_for_message(amy.id, contains="was accepted", after=mark)
    follow_up = await card_for(stub, gus, "已接单。有进展时")
    await gus.press("已处理", on=follow_up, expect="处理后的照片")
    mark = len(stub.sent)
    stub.push_update(stub.message_update(gus.id, None, photo=photo(800, 600), first_name="Gus"))
    await stub.wait_for_message(gus.id, contains="做了哪些处理", after=mark)
    await gus.send("垃圾已清运", expect="已处理")

    rating = await card_for(stub, amy, "is resolved: 垃圾已清运")
    assert [label for label, _ in stub.buttons(rating)][-1] == "Not fixed"
    await amy.press("★★★★★", on=rating, expect="now closed")
    await amy.press("Skip", expect="Thank you.")
    await stub.wait_for_message(gus.id, contains="居民对 R-2026-000001 的评分：评分 5/5")
    async with bot.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and (report.state, report.rating) == ("closed", 5)


async def test_bad_image_and_redelivered_photo_over_telegram(bot: Linli, stub: BotApiStub) -> None:
    amy = TelegramUser(stub, 7101, "Amy")
    await register(amy, await invite_code(bot), "302")
    mark = len(stub.sent)
    send_file(stub, amy, b"Dear committee, the lift is broken again.\n" * 20, "lift.jpg")
    await stub.wait_for_message(amy.id, contains="not a photo we can read", after=mark)
    update = stub.message_update(amy.id, None, photo=photo(), first_name="Amy")
    stub.push_update(update)
    stub.push_update(update)  # Telegram redelivers the same update_id
    await stub.wait_for_message(amy.id, contains="Photo 1 of 4 received", after=mark)
    await stub.wait_idle()
    replies = [t for t in amy.texts() if "received" in t]
    assert replies == ["Photo 1 of 4 received. Send another, or press Done."]
