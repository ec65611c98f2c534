"""Points for a vote (issue 11): a unit's first ballot in a poll records a pending award of
`[points.rules] vote_cast`, once per poll and unit, for the resident it counts for; a changed
ballot earns nothing more, nor does a refused one. The ledger settles pending awards later:
nothing here is a balance. SQLite and PostgreSQL; the household race on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text

from bot.app import Linli
from bot.config import ConfigError, load_settings
from models import Ballot, PendingAward
from services import people
from services.voting import ballots, polls, proxies
from services.voting.audit import audit_poll
from services.voting.ballots import Receipt, Refusal
from tests.conftest import ROOT, FakeClock, fresh_linli, settings_for
from tests.dialog import Dialog, texts
from tests.races import Blocker
from tests.report_cast import join
from tests.test_polls_chat import open_poll
from tests.test_voting import KEY, household_of, new_poll, residents


async def cast(
    linli: Linli, poll_id: int, person_id: int, *chosen: int, points: int = 1, proxy: bool = False
) -> Receipt | Refusal:
    async with linli.transaction() as session:
        return await ballots.cast(
            session,
            poll_id,
            person_id,
            list(chosen),
            linli.dialogue.clock(),
            KEY,
            proxy=proxy,
            points=points,
        )


async def awards(linli: Linli) -> list[tuple[int, int, str, str]]:
    """(person, points, reason, key) of every award, settled or still pending, oldest first."""
    async with linli.sessions() as session:
        rows = await session.execute(
            select(
                PendingAward.person_id,
                PendingAward.points,
                PendingAward.reason,
                PendingAward.idempotency_key,
            ).order_by(PendingAward.id)
        )
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


async def test_the_first_vote_earns_once_and_a_change_earns_nothing(
    linli: Linli, clock: FakeClock
) -> None:
    who = await residents(linli)
    poll_id = await new_poll(linli, clock)
    assert isinstance(await cast(linli, poll_id, who["amy"], 0, points=2), Receipt)
    expected = [(who["amy"], 2, "poll.vote", f"poll:{poll_id}:vote:person:{who['amy']}")]
    assert await awards(linli) == expected

    changed = await cast(linli, poll_id, who["amy"], 1, points=2)
    assert isinstance(changed, Receipt) and changed.changed
    same = await cast(linli, poll_id, who["amy"], 1, points=2)
    assert isinstance(same, Receipt) and same.unchanged
    # Refused ballots earn nothing: not eligible (Building 1), a bad choice, a closed poll.
    assert await cast(linli, poll_id, who["cy"], 0) is Refusal.NOT_ELIGIBLE
    assert await cast(linli, poll_id, who["bob"], 7) is Refusal.BAD_CHOICE
    assert await awards(linli) == expected

    # Another poll is another award.
    other = await new_poll(linli, clock)
    await cast(linli, other, who["amy"], 0, points=2)
    async with linli.transaction() as session:
        await polls.close(session, poll_id, clock(), KEY)
    assert await cast(linli, poll_id, who["bob"], 0) is Refusal.CLOSED
    assert [a[3] for a in await awards(linli)] == [
        f"poll:{poll_id}:vote:person:{who['amy']}",
        f"poll:{other}:vote:person:{who['amy']}",
    ]


async def test_a_household_earns_once_whoever_votes_and_a_proxy_earns_for_the_resident(
    linli: Linli, clock: FakeClock
) -> None:
    who = await residents(linli)
    home = await household_of(linli, who["amy"])
    poll_id = await new_poll(linli, clock, per_household=True)
    await cast(linli, poll_id, who["amy"], 0)
    replaced = await cast(linli, poll_id, who["ann"], 1)  # Amy's household: her ballot replaced
    assert isinstance(replaced, Receipt) and replaced.changed
    # Bob's ballot cast by Amy as his proxy: the points are Bob's (the use case is told whom
    # the ballot is for; the proxy is only marked).
    await cast(linli, poll_id, who["bob"], 1, proxy=True)
    bob_home = await household_of(linli, who["bob"])
    assert await awards(linli) == [
        (who["amy"], 1, "poll.vote", f"poll:{poll_id}:vote:household:{home}"),
        (who["bob"], 1, "poll.vote", f"poll:{poll_id}:vote:household:{bob_home}"),
    ]
    async with linli.sessions() as session:
        assert await audit_poll(session, poll_id) == []


async def test_an_anonymous_poll_awards_its_voters_at_the_close_not_as_they_vote(
    linli: Linli, clock: FakeClock
) -> None:
    """While it is open an anonymous poll awards nothing, and its ballots and leaves carry the
    poll's opening time, not the vote's: an award or a time beside a person would say when
    they voted, and so which leaf is theirs. The close awards each unit's first caster (Bob
    as Amy's proxy too), in the order of the people, at the close's time; once."""
    who = await residents(linli)
    poll_id = await new_poll(linli, clock, per_household=True, anonymous=True)
    async with linli.sessions() as session:
        opened = await session.scalar(text(f"SELECT created_at FROM poll WHERE id = {poll_id}"))
    clock.advance(minutes=5)
    await cast(linli, poll_id, who["bob"], 1, proxy=True)
    clock.advance(minutes=5)
    await cast(linli, poll_id, who["amy"], 0, points=2)
    await cast(linli, poll_id, who["ann"], 1)  # Amy's household: a change, no second award
    assert await awards(linli) == []
    async with linli.sessions() as session:
        times = set((await session.scalars(text("SELECT updated_at FROM ballot"))).all())
        times |= set((await session.scalars(text("SELECT at FROM ballot_event"))).all())
    assert len(times) == 1 and str(times.pop())[:16] == str(opened)[:16]

    clock.advance(hours=1)
    for _ in range(2):
        async with linli.transaction() as session:
            await polls.close(session, poll_id, clock(), KEY)
    by_person = sorted(
        [
            (who["amy"], 2, "poll.vote", f"poll:{poll_id}:vote:person:{who['amy']}"),
            (who["bob"], 1, "poll.vote", f"poll:{poll_id}:vote:person:{who['bob']}"),
        ]
    )
    assert await awards(linli) == by_person
    async with linli.sessions() as session:
        awarded_at = set((await session.scalars(select(PendingAward.created_at))).all())
        assert await audit_poll(session, poll_id) == []
    assert [moment.replace(tzinfo=None) for moment in awarded_at] == [clock().replace(tzinfo=None)]


async def test_zero_points_configured_records_no_award(linli: Linli, clock: FakeClock) -> None:
    who = await residents(linli)
    poll_id = await new_poll(linli, clock)
    assert isinstance(await cast(linli, poll_id, who["amy"], 0, points=0), Receipt)
    assert await awards(linli) == []
    # Turned on later, a changed ballot still earns nothing: only a unit's first ballot does.
    await cast(linli, poll_id, who["amy"], 1, points=1)
    assert await awards(linli) == []


async def test_two_phones_of_one_household_at_once_earn_once_for_the_first_ballot(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two voters cannot interleave")
    who = await residents(linli)
    poll_id = await new_poll(linli, clock, per_household=True)
    async with Blocker(db_url) as blocker:
        # Ann's ballot is written first and held at its commit: it counts first, so the points
        # are hers; Amy's insert waits for that commit.
        await blocker.hold_advisory(polls.LOG_LOCK, poll_id)
        ann, amy = await blocker.queue(
            cast(linli, poll_id, who["ann"], 1), cast(linli, poll_id, who["amy"], 0)
        )
        await blocker.release()
        first, second = await asyncio.gather(ann, amy)
    assert isinstance(first, Receipt) and not first.changed
    assert isinstance(second, Receipt) and second.changed
    home = await household_of(linli, who["amy"])
    assert await awards(linli) == [
        (who["ann"], 1, "poll.vote", f"poll:{poll_id}:vote:household:{home}")
    ]


async def test_a_resident_and_their_proxy_at_once_leave_one_ballot_and_one_award(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    """A resident's own ballot is read with the poll; their proxy's ballot, read the same way
    while the first is held at its commit, meets it when it writes and reads it again."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two voters cannot interleave")
    who = await residents(linli)
    poll_id = await new_poll(linli, clock, anonymous=True)
    async with Blocker(db_url) as blocker:
        await blocker.hold_advisory(polls.LOG_LOCK, poll_id)
        own, by_proxy = await blocker.queue(
            cast(linli, poll_id, who["amy"], 0), cast(linli, poll_id, who["amy"], 2, proxy=True)
        )
        await blocker.release()
        first, second = await asyncio.gather(own, by_proxy)
    assert isinstance(first, Receipt) and not first.changed
    assert isinstance(second, Receipt) and second.changed
    async with linli.transaction() as session:
        await polls.close(session, poll_id, clock(), KEY)  # an anonymous poll awards now
    async with linli.sessions() as session:
        rows = (await session.execute(select(Ballot.choices, Ballot.proxy, Ballot.receipt))).all()
        assert await audit_poll(session, poll_id) == []
    assert rows == [(0b100, True, second.digest)]
    assert await awards(linli) == [
        (who["amy"], 1, "poll.vote", f"poll:{poll_id}:vote:person:{who['amy']}")
    ]


@pytest.fixture
async def generous(db_url: str, clock: FakeClock) -> AsyncIterator[Linli]:
    """The bot as `linli run` assembles it, with `[points.rules] vote_cast = 3` from the
    environment."""
    app = await fresh_linli(settings_for(db_url, LINLI_POINTS__RULES__VOTE_CAST="3"), clock)
    yield app
    await app.close()


async def test_votes_in_chat_earn_the_configured_points(generous: Linli, clock: FakeClock) -> None:
    linli = generous
    assert linli.settings.points.rules.vote_cast == 3
    dialog = Dialog(linli)
    for name, room in (("amy", "302"), ("bob", "303"), ("wang", "501")):
        await join(dialog, name, room=room)
    poll_id = await open_poll(linli, clock)
    async with linli.transaction() as session:
        ids = {}
        for name in ("amy", "bob", "wang"):
            person = await people.by_identity(session, "console", name)
            assert person is not None
            ids[name] = person.id
        await proxies.grant(session, ids["bob"], ids["wang"], clock(), poll_id=poll_id)

    # Amy by her card's button, then a change with /poll; Wang for Bob, as his proxy.
    card = dialog.channel.outbox["amy"][-1]
    assert texts(await dialog.press("amy", "Yes", source=[card])).startswith("Your vote is in.")
    await dialog.say("amy", "/poll")
    await dialog.press("amy", "Paint the bike shed")
    assert texts(await dialog.press("amy", "No")).startswith("Your vote is changed.")
    await dialog.say("wang", "/poll")
    await dialog.press("wang", "For Bob: Paint the bike shed")
    assert "The vote for Bob is in" in texts(await dialog.press("wang", "No"))
    assert await awards(linli) == [
        (ids["amy"], 3, "poll.vote", f"poll:{poll_id}:vote:person:{ids['amy']}"),
        (ids["bob"], 3, "poll.vote", f"poll:{poll_id}:vote:person:{ids['bob']}"),
    ]


async def test_the_default_rules_are_one_point_a_vote_and_ten_for_a_selected_proposal(
    linli: Linli,
) -> None:
    rules = linli.settings.points.rules
    assert (rules.vote_cast, rules.proposal_selected) == (1, 10)
    async with linli.sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM pending_award")) == 0


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"LINLI_POINTS__RULES__VOTE_CAST": "-1"}, "points.rules.vote_cast"),
        ({"LINLI_POINTS__RULES__PROPOSAL_SELECTED": "many"}, "points.rules.proposal_selected"),
        ({"LINLI_POINTS__RULES__VOTE_CASTS": "2"}, "points.rules.vote_casts"),
        ({"LINLI_POINTS__RULEZ": "2"}, "points.rulez"),
    ],
)
def test_a_bad_points_rule_is_one_line_naming_it(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ROOT / "bot.toml", environ=env)
    assert names in str(caught.value) and "\n" not in str(caught.value)
    overridden = load_settings(ROOT / "bot.toml", environ={"LINLI_POINTS__RULES__VOTE_CAST": "0"})
    assert overridden.points.rules.vote_cast == 0
