"""Rewards and their redemption (issue 12): the stock and the balance taken in one transaction,
never beyond either, also when residents press at once (PostgreSQL, the interleaving forced);
one redemption per request; a pickup code staff confirm once; an unclaimed redemption expires
and gives its points and its unit of stock back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import Linli
from models import Reward
from services.points import awards, ledger, rewards
from services.points.audit import audit_points
from services.points.ledger import POINTS
from services.points.rewards import PickupRefusal, Redeemed, Refusal
from tests.conftest import FakeClock
from tests.races import Blocker
from tests.test_points_ledger import residents


async def new_reward(linli: Linli, clock: FakeClock, *, price: int, stock: int) -> int:
    async with linli.transaction() as session:
        reward = await rewards.add(
            session,
            name_zh="环保袋",
            name_en="Tote bag",
            price=price,
            stock=stock,
            starts_at=clock() - timedelta(days=1),
            ends_at=clock() + timedelta(days=30),
            now=clock(),
        )
        return reward.id


async def give(linli: Linli, clock: FakeClock, person: int, amount: int) -> None:
    async with linli.transaction() as session:
        await awards.award_by_staff(session, person, amount, "test funds", clock())


async def redeem(
    linli: Linli, clock: FakeClock, person: int, reward_id: int, key: str
) -> Redeemed | Refusal:
    async with linli.transaction() as session:
        return await rewards.redeem(session, person, reward_id, clock(), key=key, pickup_days=7)


async def state(linli: Linli, people: list[int], reward_id: int) -> tuple[list[int], int]:
    async with linli.sessions() as session:
        balances = [await ledger.balance(session, p, POINTS) for p in people]
        stock = await session.scalar(select(Reward.stock).where(Reward.id == reward_id))
        assert await audit_points(session) == []
    return balances, int(stock or 0)


async def test_a_redemption_holds_the_points_gives_a_code_and_is_picked_up_once(
    linli: Linli, clock: FakeClock
) -> None:
    amy, bob, staff, _ = await residents(linli)
    bag = await new_reward(linli, clock, price=20, stock=2)
    await give(linli, clock, amy, 50)
    made = await redeem(linli, clock, amy, bag, "press:1")
    assert isinstance(made, Redeemed) and not made.replayed
    code = made.redemption.code
    assert len(code) == 8 and set(code) <= set(rewards.CODE_ALPHABET)
    again = await redeem(linli, clock, amy, bag, "press:1")  # the same press, delivered twice
    assert isinstance(again, Redeemed) and again.replayed and again.redemption.code == code
    assert await state(linli, [amy], bag) == ([30], 1)
    # Bob has no points: refused, and the stock is untouched.
    assert await redeem(linli, clock, bob, bag, "press:2") is Refusal.TOO_FEW_POINTS
    assert await state(linli, [amy, bob], bag) == ([30, 0], 1)
    async with linli.transaction() as session:
        done = await rewards.pick_up(session, code.lower(), staff, clock())
        assert not isinstance(done, PickupRefusal) and done.status == rewards.PICKED_UP
    async with linli.transaction() as session:
        assert await rewards.pick_up(session, code, staff, clock()) is PickupRefusal.ALREADY
        assert await rewards.pick_up(session, "ZZZZZZZZ", staff, clock()) is (PickupRefusal.UNKNOWN)
    # Picked up, it does not expire: the points stay with the store.
    clock.advance(days=8)
    async with linli.transaction() as session:
        assert await rewards.expire_due(session, clock()) == 0
    assert await state(linli, [amy], bag) == ([30], 1)


async def test_an_unclaimed_redemption_expires_and_gives_points_and_stock_back(
    linli: Linli, clock: FakeClock
) -> None:
    amy, _, staff, _ = await residents(linli)
    bag = await new_reward(linli, clock, price=20, stock=1)
    await give(linli, clock, amy, 20)
    made = await redeem(linli, clock, amy, bag, "press:1")
    assert isinstance(made, Redeemed)
    assert await redeem(linli, clock, amy, bag, "press:2") is Refusal.OUT_OF_STOCK
    clock.advance(days=7, seconds=1)
    for _ in range(2):  # the tick gives it back; a second tick finds nothing more to
        await linli.ticker.tick()
    assert await state(linli, [amy], bag) == ([20], 1)
    async with linli.transaction() as session:
        late = await rewards.pick_up(session, made.redemption.code, staff, clock())
        assert late is PickupRefusal.EXPIRED
        reasons = [line.reason for line in await ledger.history(session, amy)]
    assert reasons == ["reward.expired", "reward.redeemed", "staff.award"]
    # Outside its window or unknown: refused with what is wrong.
    clock.advance(days=30)
    assert await redeem(linli, clock, amy, bag, "press:3") is Refusal.UNAVAILABLE
    assert await redeem(linli, clock, amy, 999, "press:4") is Refusal.UNKNOWN


async def test_the_last_unit_goes_to_one_of_two_residents_pressing_at_once(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    """Both wait at the reward's row; the first takes the last unit, the second finds none
    left and is refused, with its points untouched."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two redemptions cannot interleave")
    amy, bob, *_ = await residents(linli)
    bag = await new_reward(linli, clock, price=10, stock=1)
    await give(linli, clock, amy, 10)
    await give(linli, clock, bob, 10)
    async with Blocker(db_url) as blocker:
        await blocker.hold_row("reward", bag)
        first, second = await blocker.queue(
            redeem(linli, clock, amy, bag, "amy"), redeem(linli, clock, bob, bag, "bob")
        )
        await blocker.release()
        results = await asyncio.gather(first, second)
    assert isinstance(results[0], Redeemed) and results[1] is Refusal.OUT_OF_STOCK
    assert await state(linli, [amy, bob], bag) == ([0, 10], 0)


async def test_two_redemptions_at_once_cannot_overdraw_the_resident(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    """Amy has 15 and redeems two rewards of 10 from two phones at once: both take a unit of
    stock, then wait at her account; the second finds 5 and is refused whole, its unit of
    stock given back with it."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two redemptions cannot interleave")
    amy, *_ = await residents(linli)
    bag = await new_reward(linli, clock, price=10, stock=5)
    plant = await new_reward(linli, clock, price=10, stock=5)
    await give(linli, clock, amy, 15)
    async with linli.sessions() as session:
        account = await ledger.account_of(session, amy, POINTS, clock())
    async with Blocker(db_url) as blocker:
        await blocker.hold_row("points_account", account.id)
        first, second = await blocker.queue(
            redeem(linli, clock, amy, bag, "phone:1"), redeem(linli, clock, amy, plant, "phone:2")
        )
        await blocker.release()
        results = await asyncio.gather(first, second)
    assert isinstance(results[0], Redeemed) and results[1] is Refusal.TOO_FEW_POINTS
    assert await state(linli, [amy], bag) == ([5], 4)
    assert (await state(linli, [amy], plant))[1] == 5


async def test_one_press_delivered_twice_at_once_redeems_once(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    """The same request (one key) arrives twice while neither has committed: both wait at the
    reward's row; the second finds the first's redemption and answers with it, taking neither
    stock nor points."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two redemptions cannot interleave")
    amy, *_ = await residents(linli)
    bag = await new_reward(linli, clock, price=10, stock=5)
    await give(linli, clock, amy, 30)
    async with Blocker(db_url) as blocker:
        await blocker.hold_row("reward", bag)
        first, second = await blocker.queue(
            redeem(linli, clock, amy, bag, "press:7"), redeem(linli, clock, amy, bag, "press:7")
        )
        await blocker.release()
        results = await asyncio.gather(first, second)
    assert isinstance(results[0], Redeemed) and not results[0].replayed
    assert isinstance(results[1], Redeemed) and results[1].replayed
    assert results[1].redemption.code == results[0].redemption.code
    assert await state(linli, [amy], bag) == ([20], 4)
