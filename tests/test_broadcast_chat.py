"""`/broadcast` in chat (issue 13): staff compose (text checked as Telegram's HTML, an optional
photo, the audience, where, when, acknowledgement) and see the exact recipient count per
channel before [Send]; residents get it in their language with [Got it]; scheduled ones are
listed and cancelled; building heads only for their own building; others refused."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.app import Linli
from models import AuditEntry, Broadcast, BroadcastAck, Role
from services import community, people
from services.people import Grant
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.report_cast import hire, join, person_id


async def compose(dialog: Dialog, who: str, text: str, *choices: str) -> str:
    """/broadcast → New announcement → text → No photo → each choice pressed; the preview."""
    await dialog.say(who, "/broadcast")
    await dialog.press(who, "New announcement")
    await dialog.say(who, text)
    reply = await dialog.press(who, "No photo")
    for choice in choices:
        reply = await dialog.press(who, choice)
    return texts(reply)


async def test_staff_send_to_a_building_and_residents_acknowledge(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await join(dialog, "amy", room="302")
    await join(dialog, "bob", room="303")
    await dialog.say("bob", "/language")
    await dialog.press("bob", "中文")
    await join(dialog, "cat", building="Building 1", room="101")

    preview = await compose(
        dialog, "sam", "<b>Water</b> off tomorrow 9–12", "A building", "Building 2",
        "Private chats", "Now", "Yes, it is urgent",
    )  # fmt: skip
    assert "Water off tomorrow 9–12" in preview and "<b>" not in preview
    assert "Console: 2 private chats" in preview and "In all: 2 chats." in preview
    assert "Acknowledgement asked." in preview
    sent = texts(await dialog.press("sam", "Send"))
    assert sent.startswith("Announcement #") and "is going out to 2 chats" in sent
    await linli.broadcasts.run_once()
    await linli.dispatcher.drain()
    got = dialog.channel.outbox["amy"][-1]
    assert got.text == "<b>Water</b> off tomorrow 9–12" and got.html
    assert [o.label for o in got.options] == ["Got it"]
    assert [o.label for o in dialog.channel.outbox["bob"][-1].options] == ["收到"]
    assert "cat" not in dialog.channel.outbox or not any(
        "Water" in m.text for m in dialog.channel.outbox["cat"]
    )
    report = dialog.notices("sam")[-1]
    assert "is done." in report and "Delivered 2 · unreachable 0 · failed 0" in report
    assert "Acknowledged: 0" in report

    assert texts(await dialog.press("amy", "Got it")) == "Thank you, noted."
    await dialog.say("sam", "/broadcast status")
    status = texts(await dialog.press("sam", "#"))
    assert "1 acknowledged; 2 delivered" in status
    assert "Building 2: 1 not acknowledged\nRoom 303: Bob" in status and "Amy" not in status
    amy = await person_id(linli, "amy")
    async with linli.sessions() as session:
        assert (await session.scalars(select(BroadcastAck.person_id))).all() == [amy]


async def test_bad_html_is_caught_while_composing(linli: Linli) -> None:
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await dialog.say("sam", "/broadcast")
    await dialog.press("sam", "New announcement")
    for bad, says in {
        "Water <div>off</div>": "<div> is not a formatting Telegram knows.",
        "<b>Water off": "<b> is opened and not closed",
        "Tom & Jerry": "“&” must be written as &lt; &gt; or &amp;",
    }.items():
        reply = texts(await dialog.say("sam", bad))
        assert reply.startswith("Telegram would refuse this text: ") and says in reply, reply
    # Asked again each time: a good text goes on.
    assert "You may add a photo" in texts(await dialog.say("sam", "Tom &amp; Jerry"))


async def test_who_may_broadcast_where(linli: Linli, clock: FakeClock) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    refused = texts(await dialog.say("amy", "/broadcast"))
    assert refused == "Sorry, /broadcast is not available to you. Send /help to see your commands."
    await join(dialog, "hal", room="304")
    hal = await person_id(linli, "hal")
    async with linli.transaction() as session:
        building = await community.building_by_name(session, "Building 2")
        assert building is not None
        await people.grant(session, hal, Grant(Role.BUILDING_HEAD, building_id=building.id))
    await dialog.say("hal", "/broadcast")
    await dialog.press("hal", "New announcement")
    await dialog.say("hal", "Bike shed closed on Sunday")
    asked = await dialog.press("hal", "No photo")
    # A building head is offered their own building only.
    labels = [o.label for o in asked.messages[-1].options]
    assert labels == ["Building 2", "Cancel"]


async def test_a_scheduled_broadcast_is_listed_and_cancelled(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await join(dialog, "amy", room="302")
    preview = await compose(
        dialog, "sam", "Election day: vote at the east gate", "The whole community",
        "Both", "At a time…",
    )  # fmt: skip
    assert "Type the date and time" in preview
    assert "That is not a date" in texts(await dialog.say("sam", "tomorrow"))
    assert "That time has passed" in texts(await dialog.say("sam", "2020-01-01 08:00"))
    await dialog.say("sam", "2026-11-24 08:00")
    preview = texts(await dialog.press("sam", "No"))
    assert "It goes out at 2026-11-24 08:00." in preview
    done = texts(await dialog.press("sam", "Schedule"))
    assert "goes out at 2026-11-24 08:00" in done
    await dialog.say("sam", "/broadcast scheduled")
    listed = texts(dialog.last["sam"])
    assert "Election day" in listed
    cancelled = texts(await dialog.press("sam", "Cancel #"))
    assert cancelled.endswith("is cancelled. Nobody got it.")
    clock.now += timedelta(days=2)
    await linli.ticker.tick()
    await linli.broadcasts.run_once()
    assert not any("Election" in m.text for m in dialog.channel.outbox.get("amy", []))
    async with linli.sessions() as session:
        assert (await session.scalars(select(Broadcast.status))).all() == ["cancelled"]
        actions = (await session.scalars(select(AuditEntry.action))).all()
        assert "broadcast.create" in actions and "broadcast.cancel" in actions
