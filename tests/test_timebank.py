"""The time bank's use cases (issue 12), on SQLite and PostgreSQL: the pool's monthly cap per
elderly resident, what a request may be posted for, minutes that move once, and the races: two
volunteers taking one request, two confirmations sharing one month's cover."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import Linli
from models import TimebankCoverage, TimebankRequest
from services.points import ledger, timebank
from services.points.audit import audit_points
from services.points.ledger import ISSUING, MINUTES, Posting
from services.points.timebank import Completed, Policy, Refusal
from tests.conftest import FakeClock
from tests.races import Blocker
from tests.test_points_ledger import residents

POLICY = Policy(elder_monthly_minutes=600, volunteer_hour_points=10, timezone="Asia/Shanghai")


async def elder(linli: Linli, clock: FakeClock, person: int) -> None:
    async with linli.transaction() as session:
        assert await timebank.mark_elder(session, person, True, clock(), actor_id=None)
        assert not await timebank.mark_elder(session, person, True, clock(), actor_id=None)


async def minutes(linli: Linli, clock: FakeClock, person: int, amount: int) -> None:
    """Minutes earned before (from the pool, as a test's starting balance)."""
    async with linli.transaction() as session:
        account = await ledger.account_of(session, person, MINUTES, clock())
        pool = await ledger.system(session, ISSUING, MINUTES)
        await ledger.transfer(
            session,
            f"seed:{person}",
            "test.give",
            [Posting(account, amount), Posting(pool, -amount)],
            clock(),
        )


async def asked_and_taken(
    linli: Linli, clock: FakeClock, requester: int, volunteer: int, estimate: int
) -> int:
    async with linli.transaction() as session:
        posted = await timebank.post(session, requester, "Groceries", estimate, clock(), POLICY)
        assert isinstance(posted, TimebankRequest), posted
        taken = await timebank.accept(session, posted.id, volunteer, clock())
        assert isinstance(taken, TimebankRequest)
        return posted.id


async def confirm(
    linli: Linli, clock: FakeClock, request: int, requester: int, real: int
) -> Completed | Refusal:
    async with linli.transaction() as session:
        return await timebank.complete(session, request, requester, real, clock(), POLICY)


async def balances(linli: Linli, people: list[int]) -> list[int]:
    async with linli.sessions() as session:
        return [await ledger.balance(session, p, MINUTES) for p in people]


async def test_the_pool_covers_an_elder_up_to_the_monthly_cap_then_pays_what_there_is(
    linli: Linli, clock: FakeClock
) -> None:
    amy, bob, cat, *_ = await residents(linli)
    async with linli.transaction() as session:
        # Not marked, no minutes: nothing to pay with.
        assert (
            await timebank.post(session, amy, "Clinic", 60, clock(), POLICY)
            is Refusal.TOO_FEW_MINUTES
        )
    await elder(linli, clock, amy)
    await minutes(linli, clock, amy, 30)
    first = await asked_and_taken(linli, clock, amy, bob, 400)
    done = await confirm(linli, clock, first, amy, 420)
    # Her own 30 first, then 390 from the pool.
    assert isinstance(done, Completed) and (done.paid, done.own, done.pool) == (420, 30, 390)
    assert done.points == 70  # 10 points an hour, for the real time
    # Confirmed twice (a second press): done once.
    assert await confirm(linli, clock, first, amy, 420) is Refusal.GONE
    # 210 of the month's cover left: a request for more is refused, one within it posted.
    async with linli.transaction() as session:
        means = await timebank.means(session, amy, clock(), POLICY)
        assert (means.own, means.cover) == (0, 210)
        assert (
            await timebank.post(session, amy, "Clinic", 240, clock(), POLICY)
            is Refusal.TOO_FEW_MINUTES
        )
    second = await asked_and_taken(linli, clock, amy, cat, 180)
    # It took longer than thought: the cover runs out and Cat is paid what there is.
    done = await confirm(linli, clock, second, amy, 300)
    assert isinstance(done, Completed) and (done.paid, done.own, done.pool) == (210, 0, 210)
    assert done.points == 50
    assert await balances(linli, [amy, bob, cat]) == [0, 420, 210]
    # Next month (community time) the cover is whole again.
    clock.now += timedelta(days=31)
    async with linli.sessions() as session:
        assert (await timebank.means(session, amy, clock(), POLICY)).cover == 600
        assert await audit_points(session) == []
        assert [r.status for r in (await session.scalars(select(TimebankRequest)))] == [
            "done",
            "done",
        ]


async def test_only_the_requester_confirms_and_only_what_was_taken(
    linli: Linli, clock: FakeClock
) -> None:
    amy, bob, cat, *_ = await residents(linli)
    await minutes(linli, clock, amy, 120)
    async with linli.transaction() as session:
        posted = await timebank.post(session, amy, "Groceries", 60, clock(), POLICY)
        assert isinstance(posted, TimebankRequest)
        assert await timebank.accept(session, posted.id, amy, clock()) is Refusal.OWN
    # Not taken yet: nothing to confirm.
    assert await confirm(linli, clock, posted.id, amy, 60) is Refusal.GONE
    async with linli.transaction() as session:
        assert isinstance(await timebank.accept(session, posted.id, bob, clock()), TimebankRequest)
        assert await timebank.accept(session, posted.id, cat, clock()) is Refusal.GONE
        assert await timebank.withdraw(session, posted.id, cat) is None  # not Cat's to leave
        assert await timebank.cancel(session, posted.id, bob, clock()) is None  # not Bob's
    assert await confirm(linli, clock, posted.id, bob, 60) is Refusal.GONE  # not Bob's
    done = await confirm(linli, clock, posted.id, amy, 45)
    assert isinstance(done, Completed) and (done.paid, done.own, done.pool) == (45, 45, 0)
    assert await balances(linli, [amy, bob]) == [75, 45]
    async with linli.transaction() as session:
        assert await timebank.cancel(session, posted.id, amy, clock()) is None  # done: stays
        with pytest.raises(ValueError):
            await timebank.post(session, amy, " ", 30, clock(), POLICY)


async def test_two_volunteers_taking_one_request_at_once_one_gets_it(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two volunteers cannot interleave")
    amy, bob, cat, *_ = await residents(linli)
    await minutes(linli, clock, amy, 60)
    async with linli.transaction() as session:
        posted = await timebank.post(session, amy, "Groceries", 60, clock(), POLICY)
        assert isinstance(posted, TimebankRequest)

    async def take(volunteer: int) -> TimebankRequest | Refusal:
        async with linli.transaction() as session:
            return await timebank.accept(session, posted.id, volunteer, clock())

    async with Blocker(db_url) as blocker:
        await blocker.hold_row("timebank_request", posted.id)
        first, second = await blocker.queue(take(bob), take(cat))
        await blocker.release()
        results = await asyncio.gather(first, second)
    assert isinstance(results[0], TimebankRequest) and results[0].volunteer_id == bob
    assert results[1] is Refusal.GONE


async def test_two_confirmations_at_once_share_the_month_cover_without_passing_it(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    """Amy (covered, no minutes of her own, 60 of the month's 600 used) confirms two helpers'
    400 minutes each from two phones at once. Both pass every check before either takes the
    cover; the month's row, read under its lock, gives the first 400 and the second the 140
    left: never 800, and never nothing to the second because the first changed the row."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two confirmations cannot interleave")
    amy, bob, cat, dee = await residents(linli)
    await elder(linli, clock, amy)
    earlier = await asked_and_taken(linli, clock, amy, dee, 60)
    assert isinstance(await confirm(linli, clock, earlier, amy, 60), Completed)
    first = await asked_and_taken(linli, clock, amy, bob, 400)
    second = await asked_and_taken(linli, clock, amy, cat, 140)
    async with Blocker(db_url) as blocker:
        await blocker.hold_writes("timebank_coverage")
        contenders = await blocker.queue(
            confirm(linli, clock, first, amy, 400), confirm(linli, clock, second, amy, 400)
        )
        await blocker.release()
        results = await asyncio.gather(*contenders)
    assert all(isinstance(r, Completed) for r in results), results
    assert sorted(r.pool for r in results if isinstance(r, Completed)) == [140, 400]
    assert sorted(await balances(linli, [bob, cat])) == [140, 400]
    async with linli.sessions() as session:
        covered = (await session.scalars(select(TimebankCoverage))).one()
        assert covered.minutes == 600
        assert await audit_points(session) == []
