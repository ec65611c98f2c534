"""`/timebank` in chat (issue 12): a resident asks for help, a neighbour takes it, the requester
confirms the real time and the minutes move; an elderly resident whom staff marked is covered
by the pool up to the monthly cap; refusals are polite and change nothing."""

from __future__ import annotations

from sqlalchemy import select

from bot.app import Linli
from models import AuditEntry, Role, TimebankRequest
from services.points import ledger
from services.points.audit import audit_points
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.report_cast import hire, join, person_id


async def minutes_of(linli: Linli, who: str) -> int:
    person = await person_id(linli, who)
    async with linli.sessions() as session:
        return await ledger.balance(session, person, ledger.MINUTES)


async def ask_for_help(dialog: Dialog, who: str, what: str, time: str) -> str:
    await dialog.say(who, "/timebank")
    await dialog.press(who, "Ask for help")
    await dialog.say(who, what)
    asked = texts(await dialog.press(who, time))
    assert f"Ask the neighbours for: {what}" in asked, asked
    return texts(await dialog.press(who, "Ask"))


async def test_help_asked_taken_and_confirmed_moves_the_minutes(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await join(dialog, "amy", room="302")  # an elderly resident
    await join(dialog, "bob", room="303")
    await join(dialog, "cat", building="Building 1", room="101")

    # Nobody has minutes yet: asking is refused, politely, until one helps or is covered.
    await dialog.say("bob", "/timebank")
    refused = texts(await dialog.press("bob", "Ask for help"))
    assert "You have 0 minutes, and help is paid in minutes" in refused

    # Staff mark Amy: the pool covers her help, 10 h a month (bot.toml).
    await dialog.say("sam", "/timebank")
    await dialog.press("sam", "Elderly residents the pool covers")
    await dialog.press("sam", "Building 2")
    confirm = texts(await dialog.press("sam", "Room 302: Amy"))
    assert confirm == "Cover Amy's time-bank help from the pool, up to 10 h a month?"
    assert texts(await dialog.press("sam", "Cover")) == "Done: the pool covers their help now."
    assert dialog.notices("amy")[-1].startswith(
        "The community now covers your time-bank help, up to 10 h a month."
    )

    posted = await ask_for_help(dialog, "amy", "Company to the clinic", "1 h 30 min")
    assert posted.startswith("Asked (request #")
    menu = texts(await dialog.say("bob", "/timebank"))
    assert "Help a neighbour (1 waiting)" in str(dialog.last["bob"].messages[0].options)
    del menu
    listed = texts(await dialog.press("bob", "Help a neighbour"))
    # The open list says what, how long and the building: not who, nor the room.
    assert "Company to the clinic, about 1 h 30 min (Building 2)" in listed
    assert "Amy" not in listed and "302" not in listed
    await dialog.press("bob", "Help with #")
    taken = texts(await dialog.press("bob", "I'll help"))
    assert taken.startswith(
        "Thank you! Amy (Building 2, room 302) asked for: Company to the clinic."
    )
    assert dialog.notices("amy")[-1].startswith("Bob will help you with: Company to the clinic.")

    # Cat comes too late: the request is taken.
    await dialog.say("cat", "/timebank")
    assert "Help a neighbour (0 waiting)" in str(dialog.last["cat"].messages[0].options)

    await dialog.say("amy", "/timebank")
    mine = texts(await dialog.press("amy", "My requests and help"))
    assert "Company to the clinic: Bob is helping." in mine
    await dialog.press("amy", "Done: confirm #")
    await dialog.say("amy", "100")
    asked = texts(dialog.last["amy"])
    assert asked == "Confirm 1 h 40 min of help from Bob?"
    done = texts(await dialog.press("amy", "Confirm"))
    assert "Thank you! 100 minutes went to your helper." in done
    assert "The community covered 1 h 40 min of them." in done
    note = dialog.notices("bob")[-1]
    assert note.startswith("Amy confirmed 1 h 40 min of your help with: Company to the clinic.")
    assert "You received 100 minutes." in note and "And 16 points for volunteering." in note
    assert await minutes_of(linli, "bob") == 100
    assert await minutes_of(linli, "amy") == 0

    # Bob now has minutes of his own to ask with; Cat takes it, then cannot after all.
    await ask_for_help(dialog, "bob", "Carry a sofa upstairs", "30 min")
    await dialog.say("cat", "/timebank")
    await dialog.press("cat", "Help a neighbour")
    await dialog.press("cat", "Help with #")
    await dialog.press("cat", "I'll help")
    await dialog.say("cat", "/timebank")
    await dialog.press("cat", "My requests and help")
    left = texts(await dialog.press("cat", "I can't help with #"))
    assert "is open again for other neighbours" in left
    assert dialog.notices("bob")[-1].startswith("Cat cannot help with")
    # And Bob cancels it.
    await dialog.say("bob", "/timebank")
    await dialog.press("bob", "My requests and help")
    assert "is cancelled" in texts(await dialog.press("bob", "Cancel #"))

    amy, bob = await person_id(linli, "amy"), await person_id(linli, "bob")
    async with linli.sessions() as session:
        statuses = [
            r.status
            for r in (await session.scalars(select(TimebankRequest).order_by(TimebankRequest.id)))
        ]
        assert statuses == ["done", "cancelled"]
        assert await ledger.balance(session, bob, ledger.POINTS) == 16
        assert await ledger.balance(session, amy, ledger.MINUTES) == 0
        assert await audit_points(session) == []
        audited = (await session.scalars(select(AuditEntry.action))).all()
        assert "timebank.elder" in audited
