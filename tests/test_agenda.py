"""The monthly agenda cycle (issue 11, 议事厅): proposals, moderation, support, the vote with
its K-item limit and changes, the reminder to non-voters only, results hidden until the
publication, the results card with its chart, the council's decisions and follow-up, and the
history. Driven by an injected clock (the tick) and by `linli agenda advance`, in English and
Chinese, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.app import Linli
from handlers.messages import Outgoing
from models import AgendaCycle, AgendaItem, AgendaSupport, Ballot, PendingAward, Poll, Role
from services.voting.audit import audit_poll
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.dialog import Dialog, texts
from tests.processes import run_linli
from tests.report_cast import hire, join

# 09:00 on 1 December in Shanghai.
DEC_1 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
async def agenda_linli(db_url: str, clock: FakeClock) -> AsyncIterator[Linli]:
    """Two votes per voter, the top two to the council, one vote per household."""
    clock.now = DEC_1
    app = await fresh_linli(
        settings_for(db_url, LINLI_AGENDA__VOTES_PER_VOTER="2", LINLI_AGENDA__COUNCIL_ITEMS="2"),
        clock,
    )
    yield app
    await app.close()


EN = ("Propose", "No photo", "Submit")
ZH = ("提出议题", "不加照片", "提交")


async def propose(
    dialog: Dialog, who: str, title: str, description: str, labels: tuple[str, ...] = EN
) -> int:
    await dialog.say(who, "/agenda")
    await dialog.press(who, labels[0])
    await dialog.say(who, title)
    await dialog.say(who, description)
    await dialog.press(who, labels[1])
    said = texts(await dialog.press(who, labels[2]))
    found = re.search(r"#(\d+)", said)
    assert found, said
    return int(found.group(1))


def card_for(dialog: Dialog, who: str, start: str) -> Outgoing:
    return next(m for m in reversed(dialog.channel.outbox[who]) if m.text.startswith(start))


async def test_a_whole_month_by_the_clock(agenda_linli: Linli, clock: FakeClock) -> None:
    linli = agenda_linli
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await join(dialog, "bob", room="303")
    await dialog.say("bob", "/language")
    await dialog.press("bob", "中文")
    await join(dialog, "ann", room="101", building="Building 1")
    await join(dialog, "cy", room="201", building="Building 3")
    await join(dialog, "dee", room="302")  # Amy's household
    await hire(dialog, "sam", Role.STAFF)
    await hire(dialog, "tess", Role.STAFF)

    # Before the first tick there is no month to propose in.
    assert "no month is open yet" in texts(await dialog.say("amy", "/agenda"))
    await linli.ticker.tick()
    menu = texts(await dialog.say("amy", "/agenda"))
    assert "proposals are open until 2026-12-16 00:00" in menu

    # A title over 60 characters is refused politely and asked again.
    await dialog.press("amy", "Propose")
    refused = texts(await dialog.say("amy", "x" * 61))
    assert "The title must have 1 to 60 characters." in refused
    await dialog.press("amy", "Cancel")

    lights = await propose(dialog, "amy", "Lights in the bike shed", "It is dark at night.")
    card = card_for(dialog, "sam", "A new proposal")
    assert "Lights in the bike shed" in card.text and "Proposed by Amy" in card.text
    tess_card = card_for(dialog, "tess", "A new proposal")
    await dialog.press("sam", "Accept", source=[card])
    assert "is on the council's agenda list for 2026-12" in dialog.notices("amy")[-1]
    # Tess's card is settled too; its old buttons change nothing.
    assert dialog.notices("tess")[-1].endswith("Accepted by Sam.")
    late = texts(await dialog.press("tess", "Reject", source=[tess_card]))
    assert "This proposal was already moderated. Nothing was changed." in late
    assert "expired" in texts(await dialog.press("sam", "Reject", source=[card]))

    gate = await propose(dialog, "bob", "修理东门", "东门关不上。", ZH)
    await dialog.press("sam", "Reject", source=[card_for(dialog, "sam", "A new proposal")])
    await dialog.say("sam", "The property company repairs it next week.")
    assert "未被接受" in dialog.notices("bob")[-1]
    assert "The property company repairs it next week." in dialog.notices("bob")[-1]

    benches = await propose(dialog, "cy", "Benches by the pond", "Older residents need a rest.")
    await dialog.press("sam", "Accept", source=[card_for(dialog, "sam", "A new proposal")])
    dark = await propose(dialog, "ann", "The shed is too dark", "Please add a lamp.")
    await dialog.press("sam", "Merge", source=[card_for(dialog, "sam", "A new proposal")])
    await dialog.press("sam", f"#{lights} ")
    assert f"merged into #{lights}" in dialog.notices("ann")[-1]
    bins = await propose(dialog, "amy", "More recycling bins", "Bins overflow on Mondays.")
    await dialog.press("sam", "Accept", source=[card_for(dialog, "sam", "A new proposal")])

    # Bob supports the benches; support is shown, and Ann backs the lights since the merge.
    await dialog.say("bob", "/agenda")
    await dialog.press("bob", "本月议题")
    await dialog.press("bob", f"#{benches} ")
    assert "谢谢您的支持" in texts(await dialog.press("bob", "支持这个议题"))
    async with linli.transaction() as session:
        backers = (
            await session.execute(select(AgendaSupport.item_id, AgendaSupport.person_id))
        ).all()
        statuses = dict((await session.execute(select(AgendaItem.id, AgendaItem.status))).all())
    assert sorted(item for item, _ in backers) == sorted([lights, benches])
    assert statuses == {
        lights: "accepted",
        gate: "rejected",
        benches: "accepted",
        dark: "merged",
        bins: "accepted",
    }

    # 16 December: voting opens; every resident hears of it, with a button.
    clock.now = datetime(2026, 12, 15, 16, 5, tzinfo=UTC)
    await linli.ticker.tick()
    opened = card_for(dialog, "amy", "Voting on the council's agenda for 2026-12 is open")
    assert "3 items, choose up to 2" in opened.text
    assert "投票" in dialog.notices("bob")[-1]
    assert "Voting on the council" in dialog.notices("ann")[-1]
    assert not any("Voting on" in n for n in dialog.notices("sam"))  # no home here

    # Amy votes from the notice: a third item is one too many.
    await dialog.press("amy", "Vote", source=[opened])
    await dialog.press("amy", f"#{lights} ")
    await dialog.press("amy", f"#{bins} ")
    too_many = texts(await dialog.press("amy", f"#{benches} "))
    assert "You can choose at most 2 items. Remove one first." in too_many
    voted = texts(await dialog.press("amy", "Confirm"))
    assert voted.startswith("Your vote is in.")
    receipt = re.search(r"\b([0-9a-f]{64})\b", voted)
    assert receipt is not None

    # Dee lives with Amy: her household has voted, and she changes its ballot.
    await dialog.say("dee", "/agenda")
    ballot = texts(await dialog.press("dee", "Change my vote"))
    assert "(2 chosen)" in ballot
    await dialog.press("dee", f"#{bins} ")
    await dialog.press("dee", f"#{benches} ")
    assert texts(await dialog.press("dee", "Confirm")).startswith("Your vote is changed.")

    await dialog.say("bob", "/agenda")
    await dialog.press("bob", "投票")
    await dialog.press("bob", f"#{benches} ")
    await dialog.press("bob", "确认")
    await dialog.say("cy", "/agenda")
    await dialog.press("cy", "Vote")
    await dialog.press("cy", f"#{bins} ")
    await dialog.press("cy", "Confirm")

    # Nothing shows counts before the publication, to staff either: the items show their
    # supporters only.
    for who in ("sam", "amy"):
        await dialog.say(who, "/agenda")
        listed = dialog.seen(who)[-1]
        assert "voting is open until 2026-12-25 20:00" in listed.text
        shown = texts(await dialog.press(who, "This month's items"))
        shown += "\n".join(o.label for o in dialog.seen(who)[-1].options)
        assert "supporter" in shown and not re.search(r"\bvotes?\b", shown)
        await dialog.say(who, "/cancel")

    # A day before the close only Ann, whose household has not voted, is reminded.
    clock.now = datetime(2026, 12, 24, 12, 30, tzinfo=UTC)
    await linli.ticker.tick()
    assert "your household's vote is not in yet" in dialog.notices("ann")[-1]
    for who in ("amy", "dee", "bob", "cy"):
        assert not any("not in yet" in n or "尚未" in n for n in dialog.notices(who))
    await linli.ticker.tick()
    assert sum("not in yet" in n for n in dialog.notices("ann")) == 1

    # 25 December 20:00: the results, to those who voted and the proposers. The lights and
    # the bins have a vote each: the lights have a supporter (Ann, since the merge) and go on.
    clock.now = datetime(2026, 12, 25, 12, 0, tzinfo=UTC)
    await linli.ticker.tick()
    results = card_for(dialog, "amy", "Results of the council's agenda vote for 2026-12")
    assert f"1. #{benches} Benches by the pond: 2 votes ✔ to the council" in results.text
    assert f"2. #{lights} Lights in the bike shed: 1 vote ✔ to the council" in results.text
    assert f"3. #{bins} More recycling bins: 1 vote" in results.text
    assert f"#{bins} More recycling bins: 1 vote ✔" not in results.text
    assert "Turnout: 3 of 4 households (75 %)." in results.text
    assert results.image_key is not None  # the chart
    assert "议事" in dialog.notices("bob")[-1] or "结果" in dialog.notices("bob")[-1]
    assert "Results of the council" in dialog.notices("dee")[-1]
    assert not any("Results of the council" in n for n in dialog.notices("ann"))
    async with linli.transaction() as session:
        cycle = await session.scalar(select(AgendaCycle))
        assert cycle is not None and cycle.phase == "published" and cycle.poll_id is not None
        poll = await session.get(Poll, cycle.poll_id)
        assert poll is not None and poll.purpose == "agenda" and poll.anonymous
        assert poll.root is not None and poll.root in results.text
        assert await audit_poll(session, cycle.poll_id) == []
        ballots = (await session.scalars(select(Ballot.voter))).all()
        assert len(ballots) == 3 and not any("person" in v or "household" in v for v in ballots)
        awards = (
            await session.execute(select(PendingAward.idempotency_key, PendingAward.reason))
        ).all()
    selected = {key for key, reason in awards if reason == "agenda.selected"}
    assert selected == {f"agenda:{benches}:selected", f"agenda:{lights}:selected"}
    # One vote's points per household (Amy's, not again for Dee's change), Bob's and Cy's.
    assert sum(1 for key, _ in awards if key.startswith(f"poll:{cycle.poll_id}:")) == 3
    verified = texts(await dialog.say("amy", f"/verify {receipt.group(1)}"))
    assert f"Your ballot is in the log of poll {cycle.poll_id}" in verified

    # After the meeting: the decision, then progress, to the proposer and the supporters.
    await dialog.say("sam", "/agenda decide")
    await dialog.press("sam", f"#{lights} ")
    await dialog.say("sam", "Two lamps will be installed in January.")
    for who in ("amy", "ann"):
        assert "The council decided on" in dialog.notices(who)[-1]
        assert "Two lamps will be installed in January." in dialog.notices(who)[-1]
    await dialog.say("sam", "/agenda")
    await dialog.press("sam", "Post progress")
    await dialog.press("sam", f"#{lights} ")
    await dialog.press("sam", "In progress")
    await dialog.say("sam", "The electrician comes on the 5th.")
    await dialog.press("sam", "No photo")
    assert "News on" in dialog.notices("ann")[-1] and "In progress" in dialog.notices("ann")[-1]
    assert "The electrician comes on the 5th." in dialog.notices("amy")[-1]

    # The history: the month's results, decisions and follow-up.
    await dialog.say("bob", "/agenda history")
    shown = texts(await dialog.press("bob", "2026-12"))
    assert "Benches by the pond" in shown and "Two lamps will be installed" in shown
    assert "The electrician comes on the 5th." in shown


async def test_linli_agenda_advance_moves_the_month_and_prints_the_phase(
    db_url: str, clock: FakeClock
) -> None:
    env = {"LINLI_DATABASE__URL": db_url, "LINLI_VOTING__VOTER_KEY": "k" * 32}
    await run_linli(env, "init")
    assert (await run_linli(env, "agenda", "status")).strip() == "none"
    assert (await run_linli(env, "agenda", "advance")).strip() == "proposals"

    linli = await fresh_linli(settings_for(db_url, LINLI_VOTING__VOTER_KEY="k" * 32), clock)
    try:
        clock.now = datetime.now(UTC)
        dialog = Dialog(linli)
        await join(dialog, "amy", room="302")
        await join(dialog, "bo", room="303")
        await hire(dialog, "sam", Role.STAFF)
        item = await propose(dialog, "amy", "A notice board", "By the east gate.")
        await dialog.press("sam", "Accept", source=[card_for(dialog, "sam", "A new proposal")])
        assert (await run_linli(env, "agenda", "advance")).strip() == "voting"
        await linli.dispatcher.run_once()
        notice = card_for(dialog, "amy", "Voting on the council's agenda")
        await dialog.press("amy", "Vote", source=[notice])
        await dialog.press("amy", f"#{item} ")
        assert texts(await dialog.press("amy", "Confirm")).startswith("Your vote is in.")
        assert (await run_linli(env, "agenda", "advance")).strip() == "published"
        await linli.dispatcher.run_once()
        results = card_for(dialog, "amy", "Results of the council's agenda vote")
        assert f"1. #{item} A notice board: 1 vote ✔ to the council" in results.text
        # A press on the voting button after the publication changes nothing.
        unused = card_for(dialog, "bo", "Voting on the council's agenda")
        late = texts(await dialog.press("bo", "Vote", source=[unused]))
        assert "not open now" in late
        status = (await run_linli(env, "agenda", "status")).split("\t")
        assert status[1] == "published"
        # From a published month, the next month opens.
        assert (await run_linli(env, "agenda", "advance")).strip() == "proposals"
    finally:
        await linli.close()


async def test_a_bot_started_after_the_proposal_window_waits_for_the_next_month(
    db_url: str, clock: FakeClock
) -> None:
    """Started on 23 November (the vote's days), the tick holds no vote on nothing: the first
    month it opens is December, on its first day."""
    clock.now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    linli = await fresh_linli(settings_for(db_url), clock)
    try:
        for _ in range(3):
            await linli.ticker.tick()
            clock.advance(days=1)
        async with linli.sessions() as session:
            assert (await session.scalars(select(AgendaCycle))).all() == []
        clock.now = DEC_1
        await linli.ticker.tick()
        async with linli.sessions() as session:
            cycles = (await session.scalars(select(AgendaCycle))).all()
        assert [(c.month, c.phase) for c in cycles] == [("2026-12", "proposals")]
    finally:
        await linli.close()
