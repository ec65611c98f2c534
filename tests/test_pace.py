"""The send pace (bot/pace.py) that keeps every process of a bot within Telegram's limits,
the same rule wherever its state lives: in memory, in PostgreSQL, in Redis. Two "processes"
(two pace objects on one store) take slots at once and together keep the interval (a late slot
catches up at most half of one); an interactive take jumps the queue of bulk takes."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from bot import database
from bot.database import create_engine
from bot.pace import DatabasePace, MemoryPace, Pace, RedisPace

STEP = 0.02


@pytest.fixture(params=["memory", "postgres", "redis"])
async def paces(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Pace, Pace]]:
    if request.param == "memory":
        shared = MemoryPace()
        yield shared, shared  # one process: one pace
        return
    if request.param == "redis":
        prefix = f"linli:test:{uuid.uuid4().hex}:"
        first, second = (
            RedisPace("redis://127.0.0.1:6379/15", prefix=prefix),
            RedisPace("redis://127.0.0.1:6379/15", prefix=prefix),
        )
        yield first, second
        await first.close()
        await second.close()
        return
    url: str = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    await database.migrate(engine)
    async with engine.begin() as connection:
        from sqlalchemy import text

        await connection.execute(text("DELETE FROM send_pace"))
    yield DatabasePace(engine), DatabasePace(engine)
    await engine.dispose()


async def test_two_takers_keep_the_interval_together(paces: tuple[Pace, Pace]) -> None:
    first, second = paces
    key = f"telegram:{uuid.uuid4().hex[:8]}"
    times: list[float] = []

    async def take(pace: Pace) -> None:
        await pace.wait(key, STEP, bulk=True)
        times.append(time.monotonic())

    await asyncio.gather(*(take(first if n % 2 else second) for n in range(30)))
    times.sort()
    # Any 10 takes in a row span about 9 intervals: less the half interval a late one may
    # catch up, and the jitter of returning after a database round trip; with state apart,
    # two takers would squeeze 10 into 4.5 intervals.
    spans = [times[n + 9] - times[n] for n in range(len(times) - 9)]
    gaps = [round(1000 * (b - a)) for a, b in itertools.pairwise(times)]
    assert min(spans) >= 7 * STEP, (min(spans), gaps)


async def test_an_interactive_take_goes_before_waiting_bulk_ones(paces: tuple[Pace, Pace]) -> None:
    first, second = paces
    key = f"telegram:{uuid.uuid4().hex[:8]}"
    order: list[str] = []

    async def take(pace: Pace, name: str, bulk: bool) -> None:
        await pace.wait(key, STEP * 5, bulk=bulk)
        order.append(name)

    bulk = [asyncio.create_task(take(first, f"bulk{n}", True)) for n in range(4)]
    await asyncio.sleep(STEP * 6)  # two of them are through, the others wait
    await take(second, "reply", False)
    await asyncio.gather(*bulk)
    assert order.index("reply") <= 3, order
