"""The points ledger (issue 12): transfers whose entries sum to zero, once per idempotency key;
no person's balance below zero, under concurrency too; entries that are never changed; and
`linli audit points`, which catches a tampered row. SQLite and PostgreSQL; the invariants as
hypothesis property tests over random sequences of awards, transfers, reversals and replays.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from bot.app import Linli
from models import PendingAward, PointsAccount
from services import people
from services.points import awards, ledger
from services.points.audit import audit_points
from services.points.ledger import ISSUING, MINUTES, POINTS, Overdrawn, Posting, Unbalanced
from tests.conftest import FakeClock
from tests.dialog import Dialog
from tests.processes import linli_process, run_linli
from tests.races import Blocker
from tests.report_cast import join, person_id

NAMES = ("amy", "bob", "cy", "dee")


async def residents(linli: Linli) -> list[int]:
    dialog = Dialog(linli)
    ids = []
    for n, name in enumerate(NAMES):
        await join(dialog, name, room=f"30{n + 1}")
        ids.append(await person_id(linli, name))
    return ids


async def give(linli: Linli, person_id: int, amount: int, key: str) -> ledger.Transfer:
    """`amount` points from the issuing account, as an award is paid."""
    async with linli.transaction() as session:
        account = await ledger.account_of(session, person_id, POINTS, linli.dialogue.clock())
        issuing = await ledger.system(session, ISSUING, POINTS)
        return await ledger.transfer(
            session,
            key,
            "test.give",
            [Posting(account, amount), Posting(issuing, -amount)],
            linli.dialogue.clock(),
        )


async def move(
    linli: Linli, source: int, target: int, amount: int, key: str
) -> ledger.Transfer | Overdrawn:
    """`amount` points from one person to another, in a transaction of its own; Overdrawn
    when the source has too few (nothing of it is kept)."""
    now = linli.dialogue.clock()
    try:
        async with linli.transaction() as session:
            paying = await ledger.account_of(session, source, POINTS, now)
            paid = await ledger.account_of(session, target, POINTS, now)
            return await ledger.transfer(
                session, key, "test.move", [Posting(paying, -amount), Posting(paid, amount)], now
            )
    except Overdrawn as refused:
        return refused


async def balances(linli: Linli, ids: list[int]) -> list[int]:
    async with linli.sessions() as session:
        return [await ledger.balance(session, i, POINTS) for i in ids]


async def test_a_transfer_sums_to_zero_happens_once_per_key_and_is_corrected_by_reversal(
    linli: Linli,
) -> None:
    amy, bob, *_ = await residents(linli)
    first = await give(linli, amy, 30, "give:amy")
    again = await give(linli, amy, 999, "give:amy")  # the same key: the first, nothing more
    assert not first.replayed and again.replayed and again.id == first.id
    assert again.postings == first.postings and dict(again.postings)[first.postings[0][0]] == 30
    moved = await move(linli, amy, bob, 12, "move:1")
    assert isinstance(moved, ledger.Transfer)
    assert await balances(linli, [amy, bob]) == [18, 12]
    # Too much: refused whole, and the key stays free for a transfer that fits.
    refused = await move(linli, amy, bob, 19, "move:2")
    assert isinstance(refused, Overdrawn)
    assert await balances(linli, [amy, bob]) == [18, 12]
    assert isinstance(await move(linli, amy, bob, 18, "move:2"), ledger.Transfer)
    assert await balances(linli, [amy, bob]) == [0, 30]
    # A mistake is undone by its mirror image, once; the original stays.
    async with linli.transaction() as session:
        undone = await ledger.reverse(session, moved.id, linli.dialogue.clock())
    async with linli.transaction() as session:
        twice = await ledger.reverse(session, moved.id, linli.dialogue.clock())
    assert twice.replayed and twice.id == undone.id and undone.reverses_id == moved.id
    assert await balances(linli, [amy, bob]) == [12, 18]
    async with linli.sessions() as session:
        lines = await ledger.history(session, amy)
        assert [(line.amount, line.reason) for line in lines] == [
            (12, "reversal"),
            (-18, "test.move"),
            (-12, "test.move"),
            (30, "test.give"),
        ]
        assert await audit_points(session) == []


async def test_transfers_that_do_not_balance_are_refused_before_any_write(linli: Linli) -> None:
    amy, bob, *_ = await residents(linli)
    now = linli.dialogue.clock()
    async with linli.transaction() as session:
        points = await ledger.account_of(session, amy, POINTS, now)
        minutes = await ledger.account_of(session, bob, MINUTES, now)
        issuing = await ledger.system(session, ISSUING, POINTS)
        cases = [
            [Posting(points, 5)],  # one entry
            [Posting(points, 5), Posting(issuing, -4)],  # does not sum to zero
            [Posting(points, 5), Posting(minutes, -5)],  # zero overall, not per unit
            [Posting(points, 0), Posting(issuing, 0)],  # entries of nothing
        ]
        for postings in cases:
            with pytest.raises(Unbalanced):
                await ledger.transfer(session, f"bad:{len(postings)}", "test", postings, now)
    async with linli.sessions() as session:
        assert (await ledger.history(session, amy)) == []


async def test_entries_and_transfers_are_never_changed_in_place(linli: Linli) -> None:
    amy, *_ = await residents(linli)
    await give(linli, amy, 10, "give")
    for statement in (
        "UPDATE points_entry SET amount = amount + 1",
        "DELETE FROM points_entry",
        "UPDATE points_transfer SET reason = 'other'",
        "DELETE FROM points_transfer",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with linli.transaction() as session:
                await session.execute(text(statement))
    # And the database itself keeps a person's balance at zero or more.
    with pytest.raises(IntegrityError, match="never_negative"):
        async with linli.transaction() as session:
            await session.execute(
                text(f"UPDATE points_account SET balance = -1 WHERE person_id = {amy}")
            )


@dataclass
class Op:
    kind: str  # give | move | reverse | replay
    a: int
    b: int
    amount: int


ops = st.lists(
    st.one_of(
        st.builds(Op, st.just("give"), st.integers(0, 3), st.just(0), st.integers(1, 40)),
        st.builds(Op, st.just("move"), st.integers(0, 3), st.integers(0, 3), st.integers(1, 60)),
        st.builds(Op, st.just("reverse"), st.integers(0, 30), st.just(0), st.just(0)),
        st.builds(Op, st.just("replay"), st.integers(0, 30), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=ops)
async def test_random_sequences_keep_the_ledger_balanced_and_never_negative(
    linli: Linli, sequence: list[Op]
) -> None:
    """A model in Python says what each step must do (refused or not, and the balances);
    the database must agree after every step, and the audit must find nothing."""
    async with linli.sessions() as session:
        known = await people.by_identity(session, "console", NAMES[-1])
    if known is None:  # the first example: the residents join once, examples share them
        await residents(linli)
    ids = [await person_id(linli, name) for name in NAMES]
    model = dict(zip(ids, await balances(linli, ids), strict=True))
    run = uuid.uuid4().hex[:8]
    made: list[tuple[ledger.Transfer, dict[int, int]]] = []  # each with its effect on people
    reversed_ids: set[int] = set()
    for n, op in enumerate(sequence):
        key = f"{run}:{n}"
        if op.kind == "give":
            who = ids[op.a]
            made.append((await give(linli, who, op.amount, key), {who: op.amount}))
            model[who] += op.amount
        elif op.kind == "move":
            source, target = ids[op.a], ids[op.b]
            result = await move(linli, source, target, op.amount, key)
            effect = {source: -op.amount}
            effect[target] = effect.get(target, 0) + op.amount
            # The rule is on the balance after the transfer: paying oneself moves nothing.
            if source != target and model[source] < op.amount:
                assert isinstance(result, Overdrawn), (op, model)
            else:
                assert isinstance(result, ledger.Transfer), (op, model, result)
                made.append((result, effect))
                for person, change in effect.items():
                    model[person] += change
        elif made and op.kind == "reverse":
            original, effect = made[op.a % len(made)]
            try:
                async with linli.transaction() as session:
                    undone = await ledger.reverse(session, original.id, linli.dialogue.clock())
            except Overdrawn:
                assert any(model[p] + c < 0 for p, c in ((p, -c) for p, c in effect.items()))
            else:
                if original.id in reversed_ids:
                    assert undone.replayed
                else:
                    assert not undone.replayed
                    reversed_ids.add(original.id)
                    for person, change in effect.items():
                        model[person] -= change
        elif made and op.kind == "replay":
            original, effect = made[op.a % len(made)]
            who = next(iter(effect))
            again = await give(linli, who, 1, original.key)
            assert again.replayed and again.id == original.id
        assert await balances(linli, ids) == [model[i] for i in ids]
        assert all(model[i] >= 0 for i in ids)
    async with linli.sessions() as session:
        assert await audit_points(session) == []


async def test_two_payments_at_once_cannot_overdraw_an_account(db_url: str, linli: Linli) -> None:
    """Amy has 10 and two payments of 7 leave at once: both wait at her account's row, the
    first goes through, the second finds 3 left and is refused whole."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two payments cannot interleave")
    amy, bob, cy, _ = await residents(linli)
    await give(linli, amy, 10, "give")
    await move(linli, bob, cy, 1, "warm")  # accounts opened before the race (refused: 0)
    await move(linli, cy, bob, 1, "warm2")
    async with linli.sessions() as session:
        account = await session.scalar(
            select(PointsAccount.id).where(PointsAccount.person_id == amy)
        )
    assert account is not None
    async with Blocker(db_url) as blocker:
        await blocker.hold_row("points_account", account)
        first, second = await blocker.queue(
            move(linli, amy, bob, 7, "pay:bob"), move(linli, amy, cy, 7, "pay:cy")
        )
        await blocker.release()
        results = await asyncio.gather(first, second)
    assert isinstance(results[0], ledger.Transfer) and isinstance(results[1], Overdrawn)
    assert await balances(linli, [amy, bob, cy]) == [3, 7, 0]
    async with linli.sessions() as session:
        assert await audit_points(session) == []


async def test_pending_awards_are_settled_once_even_when_settling_is_interrupted(
    linli: Linli, clock: FakeClock
) -> None:
    """Awards recorded as pending (by ballots, or before the ledger existed) are paid by the
    tick with their own keys: once, whatever runs twice or fails halfway; a withdrawn one is
    never paid."""
    amy, bob, *_ = await residents(linli)
    now = clock()
    async with linli.transaction() as session:
        for person, points, key in (
            (amy, 3, "poll:1:vote:person:a"),
            (bob, 5, "report:7:accepted"),
            (amy, 10, "agenda:2:selected"),
            (bob, 4, "report:8:accepted"),
        ):
            assert await awards.pending.award_pending(
                session, person, points, reason="test", key=key, now=now
            )
        assert await awards.pending.withdraw_pending(session, "report:8:accepted")
    # A settling that fails after paying the first award: rolled back whole.
    with pytest.raises(RuntimeError, match="halfway"):
        async with linli.transaction() as session:
            settled = await awards.settle_pending(session, now, limit=1)
            assert settled.paid == 1
            raise RuntimeError("the process died halfway")
    assert await balances(linli, [amy, bob]) == [0, 0]
    for _ in range(2):
        await linli.ticker.tick()
    assert await balances(linli, [amy, bob]) == [13, 5]
    async with linli.sessions() as session:
        unsettled = await session.scalars(
            select(PendingAward.idempotency_key).where(PendingAward.settled_at.is_(None))
        )
        assert list(unsettled) == []
        lines = await ledger.history(session, amy)
        assert sorted((line.reference, line.amount) for line in lines) == [
            ("agenda:2", 10),
            ("poll:1", 3),
        ]
        assert await audit_points(session) == []
    # The award use case, called twice for one event, pays once.
    async with linli.transaction() as session:
        assert await awards.award(session, bob, "sorting_day", 2, "sorting:5:bob", now)
    async with linli.transaction() as session:
        assert await awards.award(session, bob, "sorting_day", 2, "sorting:5:bob", now) is None
    assert await balances(linli, [amy, bob]) == [13, 7]


async def test_the_audit_catches_a_tampered_entry_and_a_tampered_balance(
    db_url: str, linli: Linli
) -> None:
    amy, bob, *_ = await residents(linli)
    await give(linli, amy, 10, "give")
    await move(linli, amy, bob, 4, "move")
    env = {"LINLI_DATABASE__URL": db_url}
    clean = await run_linli(env, "audit", "points")
    assert "checks out" in clean
    async with linli.transaction() as session:
        # Around the append-only guard, as someone with the database's password could.
        if db_url.startswith("postgresql"):
            await session.execute(text("ALTER TABLE points_entry DISABLE TRIGGER USER"))
        else:
            await session.execute(text("DROP TRIGGER points_entry_append_only_update"))
        await session.execute(text("UPDATE points_entry SET amount = 14 WHERE amount = 4"))
        await session.execute(
            text(f"UPDATE points_account SET balance = 50 WHERE person_id = {amy}")
        )
        if db_url.startswith("postgresql"):
            await session.execute(text("ALTER TABLE points_entry ENABLE TRIGGER USER"))
    async with linli.sessions() as session:
        findings = await audit_points(session)
    assert any("sum to 10, not 0" in f for f in findings), findings
    assert any(f"(person {amy}, points): balance 50, its entries sum to 6" in f for f in findings)
    assert any(f"(person {bob}, points): balance 4, its entries sum to 14" in f for f in findings)
    async with linli_process("audit", "points", env=env) as process:
        _, err = await process.communicate()
    assert process.returncode == 1
    assert "MISMATCH points:" in err.decode() and "balance 50" in err.decode()
