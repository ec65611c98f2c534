"""The tick: one leader on Postgres, housekeeping on time, and the outbox retried until sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import Linli
from bot.scheduler import TICK_LOCK_KEY
from handlers.messages import Capabilities, Outgoing
from models import OutboxMessage
from services import outbox, people
from tests.conftest import FakeClock


class FlakyPlatform:
    """Stands in for a chat platform that is down once, then recovers."""

    name = "console"
    capabilities = Capabilities()
    reach = None

    def __init__(self) -> None:
        self.failures_left = 1
        self.delivered: list[tuple[str, str]] = []

    async def send(self, chat_id: str, message: Outgoing) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("platform unavailable")
        self.delivered.append((chat_id, message.text))


async def test_outbox_is_retried_by_the_tick(linli: Linli, clock: FakeClock) -> None:
    platform = FlakyPlatform()
    linli.dispatcher.register(platform)
    async with linli.sessions() as session, session.begin():
        person = await people.identify(session, "console", "nan", private_chat_id="nan")
        outbox.enqueue(session, person.id, Outgoing("meeting at 7").to_dict(), clock())
    first = await linli.ticker.tick()
    assert first.sent == 0
    async with linli.sessions() as session:
        row = await session.scalar(select(OutboxMessage))
        assert row is not None and (row.status, row.attempts) == ("pending", 1)
    clock.advance(seconds=15)
    second = await linli.ticker.tick()
    assert second.sent == 1 and platform.delivered == [("nan", "meeting at 7")]
    assert (await linli.ticker.tick()).sent == 0  # nothing is sent twice


async def test_only_the_lock_holder_does_housekeeping(linli: Linli) -> None:
    if linli.db.dialect.name != "postgresql":
        assert (await linli.ticker.tick()).leader
        return
    async with linli.db.connect() as other:
        await other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": TICK_LOCK_KEY})
        assert not (await linli.ticker.tick()).leader
        await other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": TICK_LOCK_KEY})
    assert (await linli.ticker.tick()).leader


async def test_a_failing_job_does_not_stop_the_rest_of_the_tick(
    linli: Linli, clock: FakeClock
) -> None:
    async def broken(session: AsyncSession, now: datetime) -> int:
        await people.identify(session, "console", "ghost")  # written, then rolled back
        raise RuntimeError("a bug in one feature's job")

    platform = FlakyPlatform()
    platform.failures_left = 0
    linli.dispatcher.register(platform)
    linli.ticker.jobs.insert(0, broken)
    async with linli.sessions() as session, session.begin():
        person = await people.identify(session, "console", "nan", private_chat_id="nan")
        outbox.enqueue(session, person.id, Outgoing("still delivered").to_dict(), clock())
    report = await linli.ticker.tick()
    assert report.leader and report.sent == 1
    assert platform.delivered == [("nan", "still delivered")]
    async with linli.sessions() as session:
        assert await people.by_identity(session, "console", "ghost") is None
