"""The voting service (issue 11, "One voting service that anyone can verify"): one current
ballot per eligible unit, changes recorded in an append-only Merkle log, receipts that verify,
results published with the log's root, and an audit that catches a tampered row. SQLite and
PostgreSQL; the household race on PostgreSQL with its interleaving forced."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.app import Linli
from models import Ballot, BallotEvent, Poll
from services import people
from services.scopes import Scope
from services.voting import audit, ballots, log, polls
from services.voting.audit import audit_poll
from services.voting.ballots import Receipt, Refusal
from services.voting.keys import voter_key
from tests.conftest import FakeClock
from tests.dialog import Dialog
from tests.processes import linli_process, run_linli
from tests.races import Blocker
from tests.report_cast import join

KEY = b"k" * 32


async def residents(linli: Linli) -> dict[str, int]:
    """Amy and Ann share room 302 of Building 2, Bob lives in 303, Cy in Building 1."""
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await join(dialog, "ann", room="302")
    await join(dialog, "bob", room="303")
    await join(dialog, "cy", building="Building 1", room="101")
    ids = {}
    async with linli.sessions() as session:
        for who in ("amy", "ann", "bob", "cy"):
            person = await people.by_identity(session, "console", who)
            assert person is not None
            ids[who] = person.id
    return ids


async def new_poll(linli: Linli, clock: FakeClock, **kw: object) -> int:
    async with linli.transaction() as session:
        building = await session.scalar(text("SELECT id FROM building WHERE name = 'Building 2'"))
        poll = await polls.create(
            session,
            Scope("building", int(building), "Building 2"),
            "Paint the bike shed green?",
            ["Yes", "No", "Blue instead"],
            deadline=clock() + timedelta(days=3),
            now=clock(),
            **kw,  # type: ignore[arg-type]
        )
        return poll.id


async def cast(
    linli: Linli, poll_id: int, person_id: int, *chosen: int, proxy: bool = False
) -> Receipt | Refusal:
    async with linli.transaction() as session:
        return await ballots.cast(
            session, poll_id, person_id, list(chosen), linli.dialogue.clock(), KEY, proxy=proxy
        )


async def test_one_ballot_per_resident_changes_logged_and_results_published_at_the_close(
    linli: Linli, clock: FakeClock
) -> None:
    who = await residents(linli)
    poll_id = await new_poll(linli, clock)

    first = await cast(linli, poll_id, who["amy"], 0)
    assert isinstance(first, Receipt) and not first.changed
    assert isinstance(await cast(linli, poll_id, who["bob"], 1), Receipt)
    changed = await cast(linli, poll_id, who["amy"], 1)
    assert isinstance(changed, Receipt) and changed.changed
    same = await cast(linli, poll_id, who["amy"], 1)
    assert isinstance(same, Receipt) and same.unchanged and same.digest == changed.digest
    assert await cast(linli, poll_id, who["cy"], 0) is Refusal.NOT_ELIGIBLE  # Building 1
    assert await cast(linli, poll_id, who["ann"], 0, 1) is Refusal.TOO_MANY  # single choice
    assert await cast(linli, poll_id, who["ann"], 3) is Refusal.BAD_CHOICE
    assert await cast(linli, poll_id, who["ann"], 999) is Refusal.BAD_CHOICE

    async with linli.sessions() as session:
        poll = await session.get(Poll, poll_id)
        assert poll is not None
        # Nothing is published before the close, to anyone.
        assert polls.results_of(poll) is None
        stored = (await session.execute(select(Ballot.voter, Ballot.choices))).all()
        entries = (await session.scalars(select(BallotEvent.entry))).all()
    assert sorted(stored) == [(f"person:{who['amy']}", 0b10), (f"person:{who['bob']}", 0b10)]
    assert len(entries) == 4  # the seed, Amy, Bob, Amy's change

    async with linli.transaction() as session:
        closed = await polls.close(session, poll_id, clock(), KEY)
    assert closed is not None and closed.now
    results = closed.results
    assert (results.counts, results.turnout, results.eligible) == ([0, 2, 0], 2, 3)
    assert results.size == 4 and results.quorum_met is None
    assert await cast(linli, poll_id, who["ann"], 0) is Refusal.CLOSED

    # Every receipt is a leaf of the published tree, with a proof anyone can check again.
    async with linli.sessions() as session:
        for receipt in (first, changed):
            verified = await ballots.verify(session, receipt.digest)
            assert verified is not None and verified.root == results.root
            assert log.verify(
                bytes.fromhex(receipt.digest), bytes.fromhex(results.root), verified.proof
            )
        assert await ballots.verify(session, "0" * 64) is None
        assert await ballots.verify(session, "not a receipt") is None
        assert await audit_poll(session, poll_id) == []


async def test_the_audit_catches_a_tampered_ballot_and_a_tampered_leaf(
    linli: Linli, clock: FakeClock
) -> None:
    who = await residents(linli)
    poll_id = await new_poll(linli, clock)
    await cast(linli, poll_id, who["amy"], 0)
    await cast(linli, poll_id, who["bob"], 1)
    async with linli.transaction() as session:
        await polls.close(session, poll_id, clock(), KEY)
        await session.execute(
            update(Ballot).where(Ballot.voter == f"person:{who['bob']}").values(choices=0b1)
        )
    async with linli.sessions() as session:
        problems = await audit_poll(session, poll_id)
    assert problems == [
        f"ballot of person:{who['bob']}: stored options [1] (leaf 3), "
        "the log says options [2] (leaf 3)"
    ]
    async with linli.transaction() as session:
        await session.execute(
            update(Ballot).where(Ballot.voter == f"person:{who['bob']}").values(choices=0b10)
        )
        entry = await session.scalar(
            select(BallotEvent.entry).where(BallotEvent.poll_id == poll_id, BallotEvent.index == 2)
        )
        assert entry is not None and '"choices":[0]' in entry
        await session.execute(
            update(BallotEvent)
            .where(BallotEvent.poll_id == poll_id, BallotEvent.index == 2)
            .values(entry=entry.replace('"choices":[0]', '"choices":[1]'))
        )
    async with linli.sessions() as session:
        problems = await audit_poll(session, poll_id)
    assert problems is not None and "leaf 2: its hash does not match its entry" in problems
    assert any(p.startswith("published counts [1, 1, 0]") for p in problems)


@pytest.mark.parametrize("elsewhere", [False, True], ids=["root-here", "root-elsewhere"])
async def test_the_audit_catches_a_leaf_hash_changed_with_its_entry(
    linli: Linli, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, elsewhere: bool
) -> None:
    """A leaf rewritten whole (entry and hash) hashes right and replays right: the tree's root,
    published at the close, shows it (whether the audit rebuilds it itself or, as for a large
    log, in a process of its own from its own read of the log), and so does the ballot, whose
    receipt is no longer its leaf's. (Rewriting the ballot too is refused once the poll is
    closed: the trigger that appends leaves takes no more.)"""
    if elsewhere:
        monkeypatch.setattr(audit, "ROOT_ELSEWHERE", 1)
    who = await residents(linli)
    poll_id = await new_poll(linli, clock)
    await cast(linli, poll_id, who["amy"], 0)
    async with linli.transaction() as session:
        await polls.close(session, poll_id, clock(), KEY)
    async with linli.sessions() as session:
        assert await audit_poll(session, poll_id) == []
    async with linli.transaction() as session:
        entry, receipt = (await session.execute(select(Ballot.entry, Ballot.receipt))).one()
        salted = entry.replace('"salt":"', '"salt":"0')
        digest = log.leaf_hash(salted.encode()).hex()
        await session.execute(
            update(BallotEvent)
            .where(BallotEvent.poll_id == poll_id, BallotEvent.index == 2)
            .values(entry=salted, digest=digest)
        )
    async with linli.sessions() as session:
        problems = await audit_poll(session, poll_id)
    assert problems is not None and len(problems) == 2
    assert problems[0] == (
        f"ballot of person:{who['amy']}: stored options [1] (receipt {receipt} not in the log), "
        f"the log says options [1] (leaf 2)"
    )
    assert problems[1].startswith("published root ") and problems[1].endswith(" of 2")


async def test_an_anonymous_poll_keeps_no_names_and_one_vote_per_household(
    linli: Linli, clock: FakeClock
) -> None:
    who = await residents(linli)
    poll_id = await new_poll(linli, clock, anonymous=True, per_household=True, quorum_percent=50)
    await cast(linli, poll_id, who["amy"], 0)
    replaced = await cast(linli, poll_id, who["ann"], 2)  # the same household: one ballot
    assert isinstance(replaced, Receipt) and replaced.changed
    async with linli.sessions() as session:
        rows = (await session.execute(select(Ballot.voter, Ballot.person_id))).all()
        entries = "".join((await session.scalars(select(BallotEvent.entry))).all())
    assert len(rows) == 1 and rows[0].person_id is None
    assert "person:" not in rows[0].voter and "household:" not in rows[0].voter
    assert "person:" not in entries and "household:" not in entries
    async with linli.transaction() as session:
        closed = await polls.close(session, poll_id, clock(), KEY)
        assert closed is not None
        results = closed.results
        assert await audit_poll(session, poll_id) == []
    # Two households in Building 2 (302 and 303), one voted: 50 % is the quorum.
    assert results is not None and (results.counts, results.turnout, results.eligible) == (
        [0, 0, 1],
        1,
        2,
    )
    assert results.quorum_met is True


async def test_two_phones_of_one_household_voting_at_once_leave_one_ballot(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two voters cannot interleave")
    who = await residents(linli)
    poll_id = await new_poll(linli, clock, per_household=True)
    async with Blocker(db_url) as blocker:
        # Amy's ballot is written and waits to be placed in the log at its commit; Ann's
        # insert meets it and waits for that commit.
        await blocker.hold_advisory(polls.LOG_LOCK, poll_id)
        amy, ann = await blocker.queue(
            cast(linli, poll_id, who["amy"], 0), cast(linli, poll_id, who["ann"], 1)
        )
        await blocker.release()
        first, second = await asyncio.gather(amy, ann)
    assert isinstance(first, Receipt) and not first.changed
    assert isinstance(second, Receipt) and second.changed
    async with linli.sessions() as session:
        rows = (await session.execute(select(Ballot.voter, Ballot.choices))).all()
        assert await audit_poll(session, poll_id) == []
    assert rows == [(f"household:{await household_of(linli, who['amy'])}", 0b10)]


@pytest.mark.parametrize(
    ("before", "amy_picks", "ann_picks", "second"),
    [
        # Neither has a ballot when they read: Ann's insert meets Amy's, she reads it again.
        (None, 0, 0, "unchanged"),
        # Both change the household's ballot, read before Amy's commit: Ann's replaces it.
        (0, 1, 2, "changed"),
        (0, 1, 1, "unchanged"),
    ],
)
async def test_one_household_at_once_whatever_each_phone_read_before_the_lock(
    db_url: str,
    linli: Linli,
    clock: FakeClock,
    before: int | None,
    amy_picks: int,
    ann_picks: int,
    second: str,
) -> None:
    """A ballot is read, then written; what it read may be out of date by the time it writes,
    another phone of the household having written in between (held here at its commit). The
    household still has one ballot, the log no gap, and every leaf replaces the one before
    it."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two voters cannot interleave")
    who = await residents(linli)
    poll_id = await new_poll(linli, clock, per_household=True)
    if before is not None:
        await cast(linli, poll_id, who["amy"], before)
    async with Blocker(db_url) as blocker:
        await blocker.hold_advisory(polls.LOG_LOCK, poll_id)
        amy, ann = await blocker.queue(
            cast(linli, poll_id, who["amy"], amy_picks), cast(linli, poll_id, who["ann"], ann_picks)
        )
        await blocker.release()
        first, later = await asyncio.gather(amy, ann)
    assert isinstance(first, Receipt) and first.changed == (before is not None)
    assert isinstance(later, Receipt)
    assert (later.changed, later.unchanged) == (second == "changed", second == "unchanged")
    if later.unchanged:
        assert later.digest == first.digest
    leaves = (1 if before is None else 2) + 1 + (second == "changed")
    async with linli.sessions() as session:
        rows = (await session.execute(select(Ballot.choices, Ballot.receipt))).all()
        indexes = (await session.scalars(select(BallotEvent.index))).all()
        last = await session.scalar(select(BallotEvent.digest).where(BallotEvent.index == leaves))
        assert await polls.log_size(session, poll_id) == leaves
        assert await audit_poll(session, poll_id) == []
    assert sorted(indexes) == list(range(1, leaves + 1))
    assert rows == [(1 << ann_picks, last)]


async def test_a_ballot_waiting_while_its_poll_closes_is_refused(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    """Amy's ballot is written while the poll closes (her row's check waits behind the close):
    its commit, which would append its leaf, finds the poll closed and fails as a whole. The
    published counts and log are without it, the audit is clean, and casting again is
    refused as closed."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two moves cannot interleave")
    who = await residents(linli)
    poll_id = await new_poll(linli, clock)
    await cast(linli, poll_id, who["bob"], 0)

    async def close() -> polls.Closed | None:
        async with linli.transaction() as session:
            return await polls.close(session, poll_id, clock(), KEY)

    async with Blocker(db_url) as blocker:
        await blocker.hold_row("poll", poll_id)
        closing, amy = await blocker.queue(close(), cast(linli, poll_id, who["amy"], 1))
        await blocker.release()
        closed, failed = await asyncio.gather(closing, amy, return_exceptions=True)
    assert isinstance(failed, DBAPIError) and "closed" in str(failed.orig)
    assert isinstance(closed, polls.Closed)
    assert (closed.results.size, closed.results.turnout) == (2, 1)
    assert await cast(linli, poll_id, who["amy"], 1) is Refusal.CLOSED
    async with linli.sessions() as session:
        assert await polls.log_size(session, poll_id) == 2
        assert (await session.scalars(select(Ballot.voter))).all() == [f"person:{who['bob']}"]
        assert await audit_poll(session, poll_id) == []


async def test_who_may_vote_is_one_rule_for_the_poll_and_for_one_ballot(
    linli: Linli, clock: FakeClock
) -> None:
    """`polls.eligible_people` (counts, reminders, who took part) and the check a ballot makes
    with the poll's row (`polls.ELIGIBLE_HOUSEHOLD`) agree for every kind of scope."""
    dialog = Dialog(linli)
    homes = {"amy": "Building 2", "bob": "Building 2", "cy": "Building 1", "dan": "Building 3"}
    for name, building in homes.items():
        await join(dialog, name, building=building, room="303")
    async with linli.transaction() as session:
        who = {}
        for name in homes:
            person = await people.by_identity(session, "console", name)
            assert person is not None
            who[name] = person.id
        grid = await session.scalar(text("SELECT grid_id FROM building WHERE name = 'Building 2'"))
        building = await session.scalar(text("SELECT id FROM building WHERE name = 'Building 2'"))
        scopes = [
            Scope("community"),
            Scope("grid", int(grid), "Grid 1"),
            Scope("building", int(building), "Building 2"),
        ]
        made = [
            await polls.create(
                session, scope, "?", ["a", "b"], deadline=clock() + timedelta(days=1), now=clock()
            )
            for scope in scopes
        ]
    expected = {
        "community": {"amy", "bob", "cy", "dan"},
        "grid": {"amy", "bob", "cy"},  # Grid 1: Buildings 1 and 2
        "building": {"amy", "bob"},
    }
    async with linli.sessions() as session:
        for poll in made:
            listed = dict((await session.execute(polls.eligible_people(poll))).all())
            checked = await session.run_sync(households_checked, poll.id, list(who.values()))
            assert checked == listed
            assert {n for n, i in who.items() if i in checked} == expected[poll.scope]


async def test_a_ballot_in_the_transaction_that_opened_its_poll(
    linli: Linli, clock: FakeClock
) -> None:
    """Casting runs Core statements, which don't autoflush: the poll's first leaf, still only
    in the session, is written before the ballot's."""
    who = await residents(linli)
    async with linli.transaction() as session:
        building = await session.scalar(text("SELECT id FROM building WHERE name = 'Building 2'"))
        poll = await polls.create(
            session,
            Scope("building", int(building), "Building 2"),
            "Now?",
            ["Yes", "No"],
            deadline=clock() + timedelta(days=1),
            now=clock(),
        )
        cast_now = await ballots.cast(session, poll.id, who["amy"], [1], clock(), KEY)
        poll_id = poll.id
    assert isinstance(cast_now, Receipt)
    async with linli.sessions() as session:
        assert (await session.scalars(select(BallotEvent.index))).all() == [1, 2]
        assert await audit_poll(session, poll_id) == []


def households_checked(sync: Session, poll_id: int, person_ids: list[int]) -> dict[int, int]:
    """Person → household, for those a ballot's check finds eligible."""
    one = select(polls.ELIGIBLE_HOUSEHOLD).select_from(Poll).where(Poll.id == poll_id)
    found = {}
    for person_id in person_ids:
        household = sync.execute(one, {"person_id": person_id}).scalar_one()
        if household is not None:
            found[person_id] = household
    return found


async def household_of(linli: Linli, person_id: int) -> int:
    async with linli.sessions() as session:
        found = await session.scalar(
            text(f"SELECT household_id FROM person WHERE id = {person_id}")
        )
    return int(found)


async def test_the_command_line_creates_lists_closes_and_audits_polls(db_url: str) -> None:
    env = {"LINLI_DATABASE__URL": db_url, "LINLI_VOTING__VOTER_KEY": KEY.decode()}
    await run_linli(env, "init")
    created = await run_linli(
        env,
        *("poll", "create", "--scope", "building:Building 2", "--question", "New bins?"),
        *("--option", "Yes", "--option", "No", "--quorum", "30"),
        *("--deadline", "2099-01-31T20:00", "--anonymous", "--per-household"),
    )
    poll_id = int(created.strip())
    listed = (await run_linli(env, "poll", "list")).strip().splitlines()
    assert listed == [f"{poll_id}\topen\t2099-01-31T20:00+08:00\tNew bins?"]
    closed = (await run_linli(env, "poll", "close", str(poll_id))).strip()
    assert closed.startswith(f"poll {poll_id}: counts [0, 0], turnout 0 of 0 quorum not met")
    assert "agree" in await run_linli(env, "audit", "poll", str(poll_id))

    async with linli_process(
        "poll",
        "create",
        "--scope",
        "building:Nowhere",
        "--question",
        "?",
        "--option",
        "a",
        "--option",
        "b",
        "--deadline",
        "2099-01-01T00:00",
        env=env,
    ) as process:
        _, err = await process.communicate()
    assert process.returncode == 2 and err.decode().count("\n") == 1 and "Nowhere" in err.decode()


def test_the_voter_key_comes_from_the_configuration_or_a_private_file(tmp_path: Path) -> None:
    assert voter_key("configured-key", str(tmp_path / "unused")) == b"configured-key"
    assert not (tmp_path / "unused").exists()
    made = voter_key("", str(tmp_path / "keys" / "voter.key"))
    assert len(made) == 64
    assert (tmp_path / "keys" / "voter.key").stat().st_mode & 0o777 == 0o600
    assert voter_key("", str(tmp_path / "keys" / "voter.key")) == made  # never replaced


def _literal(value: object) -> str:
    if isinstance(value, bool | int):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def test_casting_finds_the_units_ballot_by_the_unique_key_in_any_plan(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    """What made the PostgreSQL bench run at half speed in some runs: the generic plan that
    PostgreSQL keeps after five casts, made while the ballot table's statistics said it was
    empty, looked the ballot up by the poll alone and read every ballot of the poll per cast.
    Forced here: a table never analyzed yet, a few ballots in it, a generic plan; the lookup must
    still match the voter in the index."""
    if not db_url.startswith("postgresql"):
        pytest.skip("the plan that PostgreSQL caches for a prepared statement")
    who = await residents(linli)
    poll_id = await new_poll(linli, clock)
    async with linli.sessions() as session:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        for name in ("amy", "bob"):
            assert isinstance(await cast(linli, poll_id, who[name], 0), Receipt)
        compiled = ballots._FACTS.compile(dialect=connection.dialect)
        given = {
            "poll_id": poll_id,
            "person_id": who["amy"],
            "unit": f"person:{who['amy']}",
            "token": "0" * 40,
        }
        values = [given.get(name, compiled.params[name]) for name in compiled.positiontup or ()]
        await driver.execute("SET plan_cache_mode = force_generic_plan")
        try:
            await driver.execute(f"PREPARE facts AS {compiled.string}")
            plan = await driver.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE facts({', '.join(map(_literal, values))})"
            )
            row = await driver.fetchrow(f"EXECUTE facts({', '.join(map(_literal, values))})")
        finally:
            await driver.execute("DEALLOCATE ALL")
            await driver.execute("RESET plan_cache_mode")

    def ballot_scans(node: dict[str, Any]) -> list[dict[str, Any]]:
        own = [node] if node.get("Relation Name") == "ballot" else []
        return own + [s for child in node.get("Plans", []) for s in ballot_scans(child)]

    # The driver decodes JSON itself (SQLAlchemy's codec) or leaves the text.
    explained = json.loads(plan) if isinstance(plan, str) else plan
    scans = ballot_scans(explained[0]["Plan"])
    assert scans
    for scan in scans:
        assert scan["Node Type"] == "Index Scan", scan
        assert "voter" in scan["Index Cond"] and "poll_id" in scan["Index Cond"], scan
        assert "Filter" not in scan, scan
    # And the plan finds Amy's ballot: option 0, not by proxy.
    assert row is not None and row["ballot_id"] is not None
    assert (row["choices"], row["proxy"]) == (0b1, False)
