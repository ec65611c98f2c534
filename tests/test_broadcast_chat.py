"""`/broadcast` in chat (issue 13): staff compose (text checked as Telegram's HTML, an optional
photo, the audience, where, when, acknowledgement) and see the exact recipient count per
channel before [Send]; residents get it in their language with [Got it]; scheduled ones are
listed and cancelled; building heads only for their own building; others refused."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.app import Linli
from models import (
    AuditEntry,
    Broadcast,
    BroadcastAck,
    GroupChat,
    Household,
    Person,
    Report,
    ReportFollower,
    Role,
)
from services import community, people
from services.broadcasts import compose as compose_service
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
        "That's all", "Private chats", "Now", "Yes, it is urgent",
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
        "That's all", "Both", "At a time…",
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


async def test_unacknowledged_get_it_again_then_their_building_head_a_door_knock_list(
    linli: Linli, clock: FakeClock
) -> None:
    """Amy presses [Got it]; Bob does not: after 4 hours (bot.toml) he gets it again, marked
    as a reminder; 4 hours later the building head gets the list: Bob, and Dee, who has a home
    but has never written to the bot."""
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await join(dialog, "amy", room="302")
    await join(dialog, "bob", room="303")
    await join(dialog, "hal", room="304")
    hal = await person_id(linli, "hal")
    async with linli.transaction() as session:
        building = await community.building_by_name(session, "Building 2")
        assert building is not None
        home = Household(building_id=building.id, room="305")
        session.add(home)
        await session.flush()
        session.add(Person(display_name="Dee", status="active", household_id=home.id))
        await people.grant(session, hal, Grant(Role.BUILDING_HEAD, building_id=building.id))
    await compose(
        dialog, "sam", "Gas inspection on Friday", "A building", "Building 2",
        "That's all", "Private chats", "Now", "Yes, it is urgent",
    )  # fmt: skip
    await dialog.press("sam", "Send")
    await linli.broadcasts.run_once()
    await dialog.press("amy", "Got it")
    await dialog.press("hal", "Got it")

    clock.advance(seconds=3 * 3600)
    await linli.ticker.tick()
    await linli.broadcasts.run_once()
    assert sum("Gas inspection" in t for t in dialog.notices("bob")) == 1  # not yet
    clock.advance(seconds=3600 + 1)
    await linli.ticker.tick()
    await linli.broadcasts.run_once()
    again = [m for m in dialog.channel.outbox["bob"] if "Gas inspection" in m.text]
    assert len(again) == 2
    assert again[-1].text.startswith("Reminder: please confirm you have read this.")
    assert sum("Gas inspection" in t for t in dialog.notices("amy")) == 1  # she had pressed
    clock.advance(seconds=4 * 3600 + 1)
    await linli.ticker.tick()
    await linli.dispatcher.drain()
    knock = dialog.notices("hal")[-1]
    assert knock.startswith("Door-knock list for Building 2:")
    assert "Room 303: Bob" in knock and "Room 305: Dee (not reachable in chat)" in knock
    assert "Amy" not in knock and "Room 304" not in knock
    # Bob presses the reminder's button at last: counted once.
    await dialog.press("bob", "Got it")
    async with linli.sessions() as session:
        assert len((await session.scalars(select(BroadcastAck))).all()) == 3
    # A second tick sends no second list.
    clock.advance(seconds=3600)
    await linli.ticker.tick()
    await linli.dispatcher.drain()
    assert sum(t.startswith("Door-knock list") for t in dialog.notices("hal")) == 1


async def test_each_audience_reaches_its_people_and_groups(linli: Linli, clock: FakeClock) -> None:
    """A grid, a building, a role, the followers of a category's open reports, the whole
    community; private chats, group chats linked within the scope, or both."""
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await join(dialog, "amy", room="302")  # Building 2
    await join(dialog, "cat", building="Building 1", room="101")
    await hire(dialog, "gil", Role.GRID_WORKER)
    async with linli.transaction() as session:
        b2 = await community.building_by_name(session, "Building 2")
        b1 = await community.building_by_name(session, "Building 1")
        assert b1 is not None and b2 is not None
        for chat, building in (("-11", b1), ("-22", b2)):
            session.add(
                GroupChat(
                    channel="console", chat_id=chat, title=chat, scope="building",
                    building_id=building.id, linked_at=clock(), seen_at=clock(),
                )
            )  # fmt: skip
        grids = {b1.grid_id, b2.grid_id}
    await join(dialog, "dan", room="303")
    await join(dialog, "eve", room="304")
    amy, dan, eve = [await person_id(linli, name) for name in ("amy", "dan", "eve")]
    async with linli.transaction() as session:
        # Amy's leak is open and Dan follows it; Eve's leak was closed; nobody reported a lamp.
        leak = Report(reporter_id=amy, category="leak", state="assigned", owner="property")
        closed = Report(reporter_id=eve, category="leak", state="closed", owner="property")
        session.add_all([leak, closed])
        await session.flush()
        session.add(ReportFollower(report_id=leak.id, person_id=dan))
    reached: dict[str, set[str]] = {}
    keys = {
        "leak followers": ["category:leak"],
        "community": ["community"],
        "building 2": [f"building:{b2.id}"],
        "grid of building 1": [f"grid:{b1.grid_id}"],
        "grid workers": ["role:grid_worker"],
    }
    for name, audience_keys in keys.items():
        before = {who: len(msgs) for who, msgs in dialog.channel.outbox.items()}
        async with linli.transaction() as session:
            await compose_service.create(
                session, author_id=None, text=name, keys=audience_keys, private=True,
                groups=True, ack=False, send_at=clock(), now=clock(),
            )  # fmt: skip
        await linli.broadcasts.run_once()
        reached[name] = {
            who for who, msgs in dialog.channel.outbox.items() if len(msgs) > before.get(who, 0)
        }
    assert reached["community"] == {"amy", "cat", "dan", "eve", "-11", "-22"}
    assert reached["building 2"] == {"amy", "dan", "eve", "-22"}
    if len(grids) == 2:
        assert reached["grid of building 1"] == {"cat", "-11"}
    assert reached["grid workers"] == {"gil"}
    assert reached["leak followers"] == {"amy", "dan"}


async def test_several_audiences_in_one_announcement(linli: Linli) -> None:
    """Two buildings and the grid workers: each person once, the groups of the buildings."""
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await join(dialog, "amy", room="302")
    await join(dialog, "cat", building="Building 1", room="101")
    await join(dialog, "dee", building="Building 3", room="101")
    await hire(dialog, "gil", Role.GRID_WORKER)
    await dialog.say("sam", "/broadcast")
    await dialog.press("sam", "New announcement")
    await dialog.say("sam", "Lifts serviced on Monday")
    await dialog.press("sam", "No photo")
    await dialog.press("sam", "A building")
    await dialog.press("sam", "Building 2")
    await dialog.press("sam", "Add another")
    await dialog.press("sam", "A building")
    more = texts(await dialog.press("sam", "Building 1"))
    assert more.startswith("For: Building 2, Building 1. Anyone else?")
    await dialog.press("sam", "Add another")
    await dialog.press("sam", "A role")
    assert "Grid workers. Anyone else?" in texts(await dialog.press("sam", "Grid workers"))
    await dialog.press("sam", "That's all")
    await dialog.press("sam", "Private chats")
    await dialog.press("sam", "Now")
    preview = texts(await dialog.press("sam", "No"))
    assert "Console: 3 private chats" in preview
    await dialog.press("sam", "Send")
    await linli.broadcasts.run_once()
    got = {
        who for who, msgs in dialog.channel.outbox.items() if any("Lifts" in m.text for m in msgs)
    }
    assert got == {"amy", "cat", "gil"}
