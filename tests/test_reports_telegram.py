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
from tests.images import camera_exif, photo, png_bomb
from tests.telegram_harness import TelegramUser, invite_code, register, running_bot
from tests.telegram_stub import BotApiStub


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


async def card_for(
    stub: BotApiStub, user: TelegramUser, contains: str, *, edits: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A report card with its photo: sent, or (`edits`) that card updated in place."""
    entry = await stub.wait_for_message(user.id, contains=contains)
    if edits is None:
        assert entry["method"] == "sendPhoto", entry["method"]
    else:
        assert entry["method"] == "editMessageCaption", entry["method"]
        assert entry["message_id"] == edits["message_id"]
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
    # The same card, updated in place: its new buttons replace the ones just pressed.
    follow_up = await card_for(stub, gus, "已接单。有进展时", edits=card)
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
    assert replies == ["Photo 1 of 4 received. Send another, or choose “Done, continue”."]


async def staffed(bot: Linli, user: TelegramUser, role: Role) -> None:
    await user.send("/help")
    async with bot.transaction() as session:
        person = await people.by_identity(session, "telegram", str(user.id))
        assert person is not None
        await people.grant(session, person.id, Grant(role))


async def report_without_photo(user: TelegramUser, description: str) -> dict[str, Any]:
    await user.send("/report", expect="Please send up to 4 photos")
    await user.press("Continue without a photo", expect="What kind of problem")
    await user.press("Something else", expect="Where is the problem")
    await user.press("My building", expect="Anything that helps")
    await user.press("Skip", expect="Describe the problem")
    return await user.send(description)


async def tick(bot: Linli, clock: FakeClock, **delta: float) -> None:
    clock.advance(**delta)
    await bot.ticker.tick()
    await bot.dispatcher.drain()


async def test_duplicates_by_text_and_by_photo_over_telegram(bot: Linli, stub: BotApiStub) -> None:
    amy, bob, cy = (
        TelegramUser(stub, 7200 + i, name) for i, name in enumerate("Amy Bob Cy".split())
    )
    gus = TelegramUser(stub, 7210, "Gus")
    code = await invite_code(bot)
    await register(amy, code, "302")
    await register(bob, code, "401")
    await register(cy, code, "502")
    await grid_worker(bot, gus)
    await report_without_photo(amy, "The bench by the door is broken")
    await amy.press("Submit", expect="R-2026-000001 is in")
    offer = await report_without_photo(bob, "Bench broken")
    assert "Someone may have reported this already" in offer["text"]
    assert "Amy" not in offer["text"]
    await bob.press("Same as R-2026-000001", expect="You now follow R-2026-000001 (+1)")

    # By photo: the same scene, recompressed by another phone, at the same place.
    mark = len(stub.sent)
    stub.push_update(stub.message_update(amy.id, None, photo=photo(), first_name="Amy"))
    await stub.wait_for_message(amy.id, contains="Photo 1 of 4", after=mark)
    await amy.press("Done", expect="What kind of problem")
    await amy.press("Garbage pile", expect="Where is the problem")
    await amy.press("east gate", expect="Anything that helps")
    await amy.press("Skip", expect="Describe")
    await amy.press("Skip", expect="Please check your report")
    await amy.press("Submit", expect="R-2026-000002 is in")
    again = io.BytesIO()
    Image.open(io.BytesIO(photo())).save(again, "JPEG", quality=45)
    mark = len(stub.sent)
    stub.push_update(stub.message_update(cy.id, None, photo=again.getvalue(), first_name="Cy"))
    await stub.wait_for_message(cy.id, contains="Photo 1 of 4", after=mark)
    await cy.press("Done", expect="What kind of problem")
    await cy.press("Something else", expect="Where is the problem")
    await cy.press("east gate", expect="Anything that helps")
    await cy.press("Skip", expect="Describe")
    offer = await cy.press("Skip", expect="Someone may have reported this already")
    assert "R-2026-000002 · Garbage pile · east gate" in offer["text"]
    await cy.press("Mine is different", expect="Please check your report")
    await cy.press("Submit", expect="R-2026-000003 is in")

    # Bob follows R-2026-000001, so he hears what Amy hears.
    card = await card_or_message(stub, gus, "R-2026-000001")
    mark = len(stub.sent)
    await gus.press("Accept", on=card, expect="Accepted")
    await stub.wait_for_message(bob.id, contains="R-2026-000001 was accepted", after=mark)


async def card_or_message(stub: BotApiStub, user: TelegramUser, contains: str) -> dict[str, Any]:
    return await stub.wait_for_message(user.id, contains=contains)


async def test_reminder_escalation_and_reopen_over_telegram(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    amy = TelegramUser(stub, 7301, "Amy")
    pat, hal, sam = (
        TelegramUser(stub, 7302, "Pat"),
        TelegramUser(stub, 7303, "Hal"),
        TelegramUser(stub, 7304, "Sam"),
    )
    await register(amy, await invite_code(bot), "302")
    await staffed(bot, pat, Role.PROPERTY)
    await staffed(bot, hal, Role.PROPERTY_HEAD)
    await staffed(bot, sam, Role.STAFF)
    mark = len(stub.sent)
    stub.push_update(stub.message_update(amy.id, None, photo=photo(), first_name="Amy"))
    await stub.wait_for_message(amy.id, contains="Photo 1 of 4", after=mark)
    await amy.press("Done", expect="What kind of problem")
    await amy.press("Water leak", expect="Where is the problem")  # property, 24 h
    await amy.press("My building", expect="Anything")
    await amy.send("Basement, by the meters", expect="Describe")
    await amy.send("Water on the floor", expect="Please check")
    await amy.press("Submit", expect="now with property management")
    await card_for(stub, pat, "New report for you to handle")

    mark = len(stub.sent)
    await tick(bot, clock, hours=18)  # 75 % of 24 h
    await stub.wait_for_message(pat.id, contains="Reminder: R-2026-000001 (Water leak)", after=mark)
    await tick(bot, clock, hours=6)  # due: one rung up
    escalated = await card_for(stub, hal, "Escalated to you")
    await stub.wait_for_message(
        amy.id, contains="overdue, so it was escalated to the head of property", after=mark
    )
    # Pat's card says where it went, and has no buttons any more; a button pressed on an old
    # copy of it does nothing. Hal takes it and resolves it.
    gone = await stub.wait_for_message(
        pat.id, contains="escalated to the head of property", after=mark
    )
    stale = next(c for c in stub.messages_to(pat.id) if c.get("method") == "sendPhoto")
    assert gone["method"] == "editMessageCaption" and gone["message_id"] == stale["message_id"]
    assert stub.buttons(gone) == []
    await pat.press("Accept", on=stale, expect="This button has expired")
    await hal.press("Accept", on=escalated, expect="Accepted")
    await hal.press("Resolved", expect="photo of the fix")
    await hal.press("No photo possible", expect="What was done")
    await hal.send("Pipe sealed", expect="is resolved")
    rating = await stub.wait_for_message(amy.id, contains="is resolved: Pipe sealed")
    await amy.press("★★", on=rating, expect="reopened and goes to someone more senior")
    await card_for(stub, sam, "Escalated to you")
    await amy.send("Still dripping", expect="your comment was passed on")
    async with bot.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None
    assert (report.state, report.rating, report.escalation_level) == ("reopened", 2, 2)
    assert report.rating_comment == "Still dripping"


async def test_unrated_report_closes_and_workers_only_buttons_over_telegram(
    bot: Linli, stub: BotApiStub, clock: FakeClock
) -> None:
    amy = TelegramUser(stub, 7401, "Amy")
    gus = TelegramUser(stub, 7402, "Gus")
    await register(amy, await invite_code(bot), "302")
    await grid_worker(bot, gus)
    await amy.send("/queue", expect="/queue is not available to you")
    await report_without_photo(amy, "Broken bench")
    await amy.press("Submit", expect="is in")
    card = await gus.send("/queue", expect="Reports — Open")
    await gus.press("R-2026-000001", on=card, expect="Report R-2026-000001")
    dispatch = gus.last_with_buttons()
    # A forged payload and a resident replaying the worker's button both do nothing.
    mark = len(stub.sent)
    stub.press(amy.id, "t-not-a-real-token.0")
    await stub.wait_for_message(amy.id, contains="This button has expired", after=mark)
    await gus.press("Accept", on=dispatch, expect="Accepted")
    await gus.press("Accept", on=dispatch, expect="This button has expired")  # double tap
    await gus.press("Resolved", expect="photo of the fix")
    await gus.press("No photo possible", expect="What was done")
    await gus.send("Bench replaced", expect="is resolved")
    await stub.wait_for_message(amy.id, contains="is resolved: Bench replaced")
    mark = len(stub.sent)
    await tick(bot, clock, days=7, minutes=1)
    await stub.wait_for_message(amy.id, contains="nobody rated the fix within 7 days", after=mark)
    async with bot.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and report.state == "closed"


@pytest.mark.parametrize(
    ("document", "answer"),
    [
        ({"content": photo()[:4000]}, "damaged or incomplete"),
        (
            {"content": png_bomb(30_000, 30_000), "file_name": "x.png", "mime_type": "image/png"},
            "too large to handle",
        ),
        ({"content": b"Dear committee,\n" * 50}, "not a photo we can read"),
        ({"content": photo(), "file_size": 21 * 1024 * 1024}, "too big (the limit is 20 MB)"),
    ],
)
async def test_bad_images_over_telegram(
    bot: Linli, stub: BotApiStub, document: dict[str, Any], answer: str
) -> None:
    amy = TelegramUser(stub, 7501, "Amy")
    await register(amy, await invite_code(bot), "302")
    mark = len(stub.sent)
    fields = {"file_name": "IMG.jpg", "mime_type": "image/jpeg", **document}
    stub.push_update(stub.message_update(amy.id, None, document=fields, first_name="Amy"))
    await stub.wait_for_message(amy.id, contains=answer, after=mark)
    # The draft is still open: the same question is asked again, with its buttons.
    again = await stub.wait_for_message(amy.id, contains="You can send another photo", after=mark)
    await amy.press("Continue without a photo", on=again, expect="What kind of problem")
    assert not [t for t in amy.texts() if "went wrong" in t]


async def test_a_revoked_worker_is_refused_over_telegram(bot: Linli, stub: BotApiStub) -> None:
    amy = TelegramUser(stub, 7301, "Amy")
    gus = TelegramUser(stub, 7302, "Gus")
    await register(amy, await invite_code(bot), "302")
    await grid_worker(bot, gus)
    await report_without_photo(amy, "The bench by the door is broken")
    await amy.press("Submit", expect="R-2026-000001 is in")
    card = await stub.wait_for_message(gus.id, contains="New report for you to handle")
    async with bot.transaction() as session:
        person = await people.by_identity(session, "telegram", str(gus.id))
        grid = await community.grid_by_name(session, "Grid 1")
        assert person is not None and grid is not None
        await people.revoke(session, person.id, Grant(Role.GRID_WORKER, grid_id=grid.id))
    await gus.press(
        "Reject as not ours",
        on=card,
        expect="You no longer handle reports like R-2026-000001, so this was not done.",
    )
    async with bot.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and report.state == "assigned"
