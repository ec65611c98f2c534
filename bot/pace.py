"""Send rates that every process of one bot keeps together (DESIGN.md "Broadcasts"): Telegram
takes about 30 messages a second from a bot, one a second to one chat and 20 a minute to one
group, and answers more with 429.

Each limit is a key with an interval and the time its next message may go (GCRA: a message
takes the slot at `next_at`, moving it on by the interval). Interactive sends take the next
slot at once, even one in the near future, and wait for it; bulk sends (broadcasts) take a slot
only when it is free now, and otherwise wait and look again, so an answer to a resident jumps
the broadcast's queue and waits at most one interval. One process on SQLite keeps the state in
memory; processes sharing PostgreSQL keep it in the `send_pace` table, each take one
conditional UPDATE; with `[redis] url` configured, in Redis, each take one script on Redis's
own clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import DateTime, Interval, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from models import SendPace
from services.sql import insert_ignoring


class Pace(Protocol):
    async def wait(self, key: str, interval: float, *, bulk: bool) -> None:
        """Return when a message under `key` may go; `interval` seconds between two."""
        ...


class NoPace:
    """No limit: a channel that needs none (the console), or tests that measure nothing."""

    async def wait(self, key: str, interval: float, *, bulk: bool) -> None:
        return None


class _BulkQueue:
    """Bulk senders of one key wait their turn in this process, one of them watching for a
    free slot: two dozen broadcast sends in flight do not all wake at every slot."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def turn(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


class _QueuedPace:
    """What both paces share: bulk senders of one key take turns in this process."""

    def __init__(self) -> None:
        self.queue = _BulkQueue()

    async def wait(self, key: str, interval: float, *, bulk: bool) -> None:
        if interval <= 0:
            return
        if bulk:
            async with self.queue.turn(key):
                await self._take(key, interval, bulk=True)
        else:
            await self._take(key, interval, bulk=False)

    async def _take(self, key: str, interval: float, *, bulk: bool) -> None:
        raise NotImplementedError


class MemoryPace(_QueuedPace):
    """One process: the slots in memory, on the loop's clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.next_at: dict[str, float] = {}

    async def _take(self, key: str, interval: float, *, bulk: bool) -> None:
        while True:
            now = self.clock()
            planned = self.next_at.get(key, now)
            slot = max(planned, now)
            if bulk and slot > now:
                await asyncio.sleep(slot - now)
                continue  # someone interactive may have taken it meanwhile
            # A slot taken a little late (waking up costs time) does not push every later
            # one back: up to half an interval of lateness is caught up.
            self.next_at[key] = max(planned, now - interval / 2) + interval
            if slot > now:
                await asyncio.sleep(slot - now)
            return


_TABLE = SendPace.__table__
_NOW = bindparam("now", type_=DateTime(timezone=True))
_STEP = bindparam("step", type_=Interval())
_HALF_STEP = bindparam("half", type_=Interval())
_TAKE_FREE = (
    update(SendPace)
    .where(SendPace.key == bindparam("k"), SendPace.next_at <= _NOW)
    .values(next_at=func.greatest(SendPace.next_at, _NOW - _HALF_STEP) + _STEP)
    .returning(SendPace.next_at)
)
_TAKE_NEXT = (
    update(SendPace)
    .where(SendPace.key == bindparam("k"))
    .values(next_at=func.greatest(SendPace.next_at, _NOW) + _STEP)
    .returning(SendPace.next_at)
)
_NEXT = select(SendPace.next_at).where(SendPace.key == bindparam("k"))


class DatabasePace(_QueuedPace):
    """Processes sharing PostgreSQL: the slots in `send_pace`, each taken by one conditional
    UPDATE in its own short transaction (the row is locked only for that statement)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine
        self.known: set[str] = set()

    async def _take(self, key: str, interval: float, *, bulk: bool) -> None:
        step = timedelta(seconds=interval)
        if key not in self.known:
            async with self.engine.begin() as connection:
                await connection.run_sync(
                    lambda c: insert_ignoring(
                        c,
                        _TABLE,
                        {"key": key, "next_at": datetime.now(UTC)},  # type: ignore[arg-type]
                    )
                )
            self.known.add(key)
        while True:
            now = datetime.now(UTC)
            params = {"k": key, "now": now, "step": step, "half": step / 2}
            async with self.engine.begin() as connection:
                taken = (
                    await connection.execute(_TAKE_FREE if bulk else _TAKE_NEXT, params)
                ).scalar()
                if taken is None:
                    free_at = (await connection.execute(_NEXT, params)).scalar()
            if taken is not None:
                slot = taken - step
                wait = (slot - datetime.now(UTC)).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
                return
            assert free_at is not None
            await asyncio.sleep(max((free_at - now).total_seconds(), 0.001))


# One take, atomically on Redis's clock (KEYS[1]: the key; ARGV: the interval in microseconds,
# 1 for a bulk take). Returns {taken, slot or next free time, now}, in microseconds.
_REDIS_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local step = tonumber(ARGV[1])
local planned = tonumber(redis.call('GET', KEYS[1]) or now)
if ARGV[2] == '1' then
  if planned > now then return {0, planned, now} end
  redis.call('SET', KEYS[1], math.max(planned, now - step / 2) + step, 'PX', 60000)
  return {1, now, now}
end
local slot = math.max(planned, now)
redis.call('SET', KEYS[1], slot + step, 'PX', 60000)
return {1, slot, now}
"""


class RedisPace(_QueuedPace):
    """Processes (on one machine or several) sharing Redis (`[redis] url`): the slots in Redis,
    on Redis's clock, each take one script."""

    def __init__(self, url: str, *, prefix: str = "linli:pace:") -> None:
        super().__init__()
        import redis.asyncio as redis  # only when configured

        self.client = redis.from_url(url)
        self.prefix = prefix
        self.script = self.client.register_script(_REDIS_TAKE)

    async def _take(self, key: str, interval: float, *, bulk: bool) -> None:
        step = int(interval * 1_000_000)
        while True:
            taken, at, now = await self.script(keys=[self.prefix + key], args=[step, int(bulk)])
            wait = (int(at) - int(now)) / 1_000_000
            if taken:
                if wait > 0:
                    await asyncio.sleep(wait)
                return
            await asyncio.sleep(max(wait, 0.001))

    async def close(self) -> None:
        await self.client.aclose()
