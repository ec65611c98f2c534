"""Building polls in chat (issue 11): each eligible resident's card, a vote by its button with
a receipt, a changed vote with /poll, refusals, the reminder to non-voters only, the results
at the deadline by the scheduler tick, and /verify. English and Chinese, SQLite and
PostgreSQL, through the engine and the outbox (Dialog)."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, text

from bot.app import Linli
from handlers.flow import Notifier
from handlers.messages import Outgoing
from models import Ballot, Poll, Role
from services import community, people
from services.people import Grant
from services.scopes import Scope
from services.voting import notices, polls, proxies
from services.voting.audit import audit_poll
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.processes import run_linli
from tests.report_cast import join


async def open_poll(
    linli: Linli, clock: FakeClock, question: str = "Paint the bike shed green?", **kw: object
) -> int:
    """As `linli poll create` does: the poll, and each eligible resident's card."""
    async with linli.transaction() as session:
        building = await session.scalar(text("SELECT id FROM building WHERE name = 'Building 2'"))
        poll = await polls.create(
            session,
            Scope("building", int(building), "Building 2"),
            question,
            ["Yes", "No"],
            deadline=clock() + timedelta(days=3),
            now=clock(),
            **kw,  # type: ignore[arg-type]
        )
        notifier = Notifier(session, linli.catalogs, "zh_CN", clock(), linli.registry.notices)
        await notifier.tell(await notices.opened(session, poll))
        poll_id = poll.id
    await linli.dispatcher.drain()
    await linli.dispatcher.run_once()
    return poll_id


def receipt_in(said: str) -> str:
    found = re.search(r"\b([0-9a-f]{64})\b", said)
    assert found, said
    return found.group(1)


async def test_residents_vote_change_are_reminded_and_get_the_results(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await join(dialog, "bob", room="303")
    await dialog.say("bob", "/language")
    await dialog.press("bob", "中文")
    await join(dialog, "ann", room="304")
    await join(dialog, "cy", building="Building 1", room="101")
    poll_id = await open_poll(linli, clock, quorum_percent=50)

    card = dialog.channel.outbox["amy"][-1]
    assert card.text.startswith("New poll: Paint the bike shed green?")
    assert "Nobody sees any results before the close." in card.text
    assert [o.label for o in card.options] == ["Yes", "No"]
    assert "新投票" in dialog.channel.outbox["bob"][-1].text
    assert not any("New poll" in m.text for m in dialog.channel.outbox["cy"])  # Building 1

    voted = texts(await dialog.press("amy", "Yes", source=[card]))
    assert voted.startswith("Your vote is in.")
    first_receipt = receipt_in(voted)
    # The card's buttons are spent; a stale press changes nothing.
    stale = texts(await dialog.press("amy", "No", source=[card]))
    assert "expired" in stale
    bob_card = dialog.channel.outbox["bob"][-1]
    assert "您的投票已收到" in texts(await dialog.press("bob", "No", source=[bob_card]))

    # Changing one's vote with /poll.
    await dialog.say("amy", "/poll")
    await dialog.press("amy", "Paint the bike shed")
    changed = texts(await dialog.press("amy", "No"))
    assert changed.startswith("Your vote is changed.")
    assert "There are no open polls for you" in texts(await dialog.say("cy", "/poll"))

    # A day before the deadline: only Ann, who has not voted, is reminded.
    clock.advance(days=2, hours=1)
    await linli.ticker.tick()
    assert "your vote is not in yet" in dialog.notices("ann")[-1]
    assert not any("not in yet" in n for n in dialog.notices("amy") + dialog.notices("bob"))

    # At the deadline the tick closes it and everyone it went to gets the results.
    clock.advance(days=1)
    await linli.ticker.tick()
    results = dialog.notices("amy")[-1]
    assert results.startswith("Results of the poll “Paint the bike shed green?”:")
    assert "1. Yes: 0" in results and "2. No: 2" in results
    assert "Turnout: 2 of 3 (67 %)." in results and "Quorum of 50 %: met." in results
    assert "投票“Paint the bike shed green?”的结果" in dialog.notices("bob")[-1]
    assert "Results of the poll" in dialog.notices("ann")[-1]
    late = texts(await dialog.say("ann", "/poll"))
    assert "There are no open polls for you" in late

    # Any receipt, the replaced one too, is in the published log.
    verified = texts(await dialog.say("amy", f"/verify {first_receipt}"))
    assert f"Your ballot is in the log of poll {poll_id}: entry 2 of 4" in verified
    assert "not in any poll's log" in texts(await dialog.say("amy", "/verify " + "0" * 64))


async def test_a_multiple_choice_ballot_is_toggled_then_confirmed(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await open_poll(linli, clock, max_choices=2)
    card = dialog.channel.outbox["amy"][-1]
    assert "Choose up to 2 options." in card.text
    assert [o.label for o in card.options] == ["Choose"]
    await dialog.press("amy", "Choose", source=[card])
    # Confirming with nothing ticked is asked again, not refused as a bad choice.
    empty = await dialog.press("amy", "Confirm my choice")
    assert "Tick at least one option, then confirm." in texts(empty)
    assert "not one of the poll's options" not in texts(empty)
    assert [o.label for o in dialog.seen("amy")[-1].options] == [
        "☐ Yes",
        "☐ No",
        "Confirm my choice",
    ]
    await dialog.press("amy", "☐ Yes")
    toggled = dialog.seen("amy")[-1]
    assert [o.label for o in toggled.options] == ["☑ Yes", "☐ No", "Confirm my choice"]
    await dialog.press("amy", "☐ No")
    done = texts(await dialog.press("amy", "Confirm my choice"))
    assert done.startswith("Your vote is in.")


async def test_a_building_head_opens_a_poll_in_chat(linli: Linli, clock: FakeClock) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await join(dialog, "wang", room="501")
    async with linli.transaction() as session:
        wang = await people.by_identity(session, "console", "wang")
        building = await community.building_by_name(session, "Building 2")
        assert wang is not None and building is not None
        await people.grant(session, wang.id, Grant(Role.BUILDING_HEAD, building_id=building.id))

    await dialog.say("wang", "/poll")
    await dialog.press("wang", "Create a poll")
    assert "at most 300 characters" in texts(await dialog.say("wang", "x" * 301))
    await dialog.say("wang", "Install a bike rack by the east gate?")
    await dialog.say("wang", "Yes")
    assert "“Done”" in texts(await dialog.say("wang", "No"))
    assert "different" in texts(await dialog.say("wang", "No"))  # the same option twice
    await dialog.press("wang", "Done")
    await dialog.press("wang", "One option")
    await dialog.press("wang", "Anonymous")
    await dialog.press("wang", "One vote per household")
    assert "in the future" in texts(await dialog.say("wang", "2020-01-01 20:00"))
    # A building head has one scope: it is not asked.
    summary = texts(await dialog.say("wang", "2026-11-30 20:00"))
    assert "Install a bike rack" in summary and "Deadline: 2026-11-30 20:00" in summary
    opened = texts(await dialog.press("wang", "Open the poll"))
    assert "The poll is open (number 1)" in opened

    card = dialog.channel.outbox["amy"][-1]
    assert card.text.startswith("New poll: Install a bike rack by the east gate?")
    assert "Anonymous" in card.text and "One vote per household" in card.text
    assert "Deadline: 2026-11-30 20:00" in card.text
    async with linli.sessions() as session:
        poll = await session.get(Poll, 1)
    assert poll is not None and (poll.anonymous, poll.per_household, poll.created_by) == (
        True,
        True,
        wang.id,
    )


async def test_residents_cannot_open_polls(linli: Linli) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    said = texts(await dialog.say("amy", "/poll"))
    assert "Create a poll" not in said and "no open polls" in said


async def test_a_building_head_votes_for_a_resident_by_proxy(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "lao", room="303")
    await join(dialog, "wang", room="501")
    poll_id = await open_poll(linli, clock)
    async with linli.transaction() as session:
        lao = await people.by_identity(session, "console", "lao")
        wang = await people.by_identity(session, "console", "wang")
        assert lao is not None and wang is not None
        await proxies.grant(session, lao.id, wang.id, clock(), poll_id=poll_id)

    await dialog.say("wang", "/poll")
    await dialog.press("wang", "For Lao: Paint the bike shed")
    done = texts(await dialog.press("wang", "No"))
    assert "The vote for Lao is in, marked as cast by you." in done
    async with linli.sessions() as session:
        rows = (await session.execute(select(Ballot.voter, Ballot.choices, Ballot.proxy))).all()
        assert await audit_poll(session, poll_id) == []
    assert rows == [(f"person:{lao.id}", 0b10, True)]

    # Wang opens the question for Lao again; the grant is revoked before he answers.
    await dialog.say("wang", "/poll")
    question = (await dialog.press("wang", "For Lao: Paint the bike shed")).messages
    async with linli.transaction() as session:
        assert await proxies.revoke(session, lao.id, wang.id, clock()) == 1
    refused = texts(await dialog.press("wang", "Yes", source=question))
    assert "You may no longer vote for this resident" in refused
    await dialog.say("wang", "/poll")
    labels = [o.label for o in dialog.seen("wang")[-1].options]
    assert not any(label.startswith("For Lao") for label in labels)


async def test_the_command_line_grants_and_revokes_proxies(db_url: str) -> None:
    env = {"LINLI_DATABASE__URL": db_url}
    await run_linli(env, "init")
    await run_linli(env, "admin", "grant", "--role", "resident", "--console", "lao")
    await run_linli(env, "admin", "grant", "--role", "staff", "--console", "wang")
    granted = await run_linli(
        env, "proxy", "grant", "--console", "lao", "--proxy-console", "wang", "--month", "2026-12"
    )
    assert granted.strip().startswith("proxy: person 2 may vote for person 1 in month 2026-12")
    revoked = await run_linli(env, "proxy", "revoke", "--console", "lao", "--proxy-console", "wang")
    assert revoked.strip() == "proxy: 1 grant(s) from person 1 to 2 revoked"


async def test_who_took_part_is_shown_after_the_close_to_those_who_may_see_it(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await join(dialog, "bob", room="303")
    await join(dialog, "wang", room="501")
    await join(dialog, "ann", room="101", building="Building 1")
    async with linli.transaction() as session:
        wang = await people.by_identity(session, "console", "wang")
        ann = await people.by_identity(session, "console", "ann")
        assert wang is not None and ann is not None
        await people.grant(session, ann.id, Grant(Role.STAFF))
    await open_poll(linli, clock, created_by=wang.id, question="New bike racks?")
    await open_poll(linli, clock, created_by=wang.id, question="Bins?", anonymous=True)

    def card(who: str, question: str) -> Outgoing:
        return next(
            m for m in dialog.channel.outbox[who] if m.text.startswith(f"New poll: {question}")
        )

    await dialog.press("amy", "Yes", source=[card("amy", "New bike racks?")])
    await dialog.press("bob", "No", source=[card("bob", "New bike racks?")])
    await dialog.press("amy", "No", source=[card("amy", "Bins?")])

    # Nothing before the close, to anyone.
    await dialog.say("wang", "/poll")
    assert not any(o.label.startswith("Who voted") for o in dialog.seen("wang")[-1].options)
    clock.advance(days=4)
    await linli.ticker.tick()

    await dialog.say("wang", "/poll")
    labels = [o.label for o in dialog.seen("wang")[-1].options]
    assert "Who voted: New bike racks?" in labels and "Who voted: Bins?" in labels
    shown = texts(await dialog.press("wang", "Who voted: New bike racks?"))
    assert "Who took part in “New bike racks?” (2):" in shown
    assert "Amy: Yes" in shown and "Bob: No" in shown
    await dialog.say("wang", "/poll")
    anonymous = texts(await dialog.press("wang", "Who voted: Bins?"))
    assert "Who took part in “Bins?” (1):\nAmy\nAn anonymous poll" in anonymous

    # Staff see the named poll only; a resident sees neither.
    await dialog.say("ann", "/poll")
    staff = [o.label for o in dialog.seen("ann")[-1].options if o.label.startswith("Who voted")]
    assert staff == ["Who voted: New bike racks?"]
    said = texts(await dialog.say("amy", "/poll"))
    assert "Who voted" not in said and "no open polls" in said
