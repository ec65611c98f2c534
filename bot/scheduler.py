"""The tick: APScheduler only wakes us; what is due lives in our tables (DESIGN.md "Time").

With several workers on Postgres, a transaction-scoped advisory lock lets one of them do the
housekeeping; outbox delivery is safe everywhere because rows are claimed with SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery import OutboxDispatcher
from bot.replies import LeftReplies
from services import conversations, updates
from services.sql import Transaction, is_postgres

log = logging.getLogger("linli.scheduler")

TICK_LOCK_KEY = 0x4C494E4C  # "LINL"
KEEP_UPDATE_KEYS = timedelta(days=7)
# A feature's due work: moves what is due in the tick's transaction, returns how much it did.
Job = Callable[[AsyncSession, datetime], Awaitable[int]]


@dataclass
class TickReport:
    leader: bool
    expired_conversations: int = 0
    pruned_update_keys: int = 0
    jobs_done: int = 0
    sent: int = 0
    replies_resent: int = 0


class Ticker:
    def __init__(
        self,
        transaction: Transaction,
        dispatcher: OutboxDispatcher,
        clock: Callable[[], datetime],
        *,
        jobs: Sequence[Job] = (),
    ) -> None:
        self.transaction = transaction
        self.dispatcher = dispatcher
        self.clock = clock
        self.jobs = list(jobs)
        self.left_replies = LeftReplies(transaction, dispatcher.senders, clock)
        # Held while a tick runs, so that shutting down waits for it instead of cutting it
        # off mid-transaction (the scheduler would log the cancellation as a crash).
        self._ticking = asyncio.Lock()

    async def tick(self) -> TickReport:
        now = self.clock()
        report = TickReport(leader=False)
        async with self.transaction() as session:
            # One process at a time does the housekeeping; SQLite has a single process anyway.
            leads = not is_postgres(session) or await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": TICK_LOCK_KEY}
            )
            if leads:
                report.leader = True
                report.expired_conversations = await conversations.purge_expired(session, now)
                report.pruned_update_keys = await updates.prune(session, now - KEEP_UPDATE_KEYS)
                for job in self.jobs:
                    report.jobs_done += await self._run_job(session, job, now)
        if report.leader:
            report.replies_resent = await self.left_replies.run_once()
        report.sent = await self.dispatcher.run_once()
        return report

    @staticmethod
    async def _run_job(session: AsyncSession, job: Job, now: datetime) -> int:
        """A failing job rolls back alone: housekeeping and outbox delivery still happen."""
        try:
            async with session.begin_nested():
                return await job(session, now)
        except Exception:
            log.exception("tick job %r failed", job)
            return 0

    async def safe_tick(self) -> None:
        try:
            async with self._ticking:
                report = await self.tick()
        except Exception:
            log.exception("tick failed")
            return
        if report.expired_conversations or report.jobs_done or report.sent or report.replies_resent:
            log.info("tick %s", report)

    async def finish(self, patience: float = 10.0) -> None:
        """Wait for a running tick to end (at shutdown), at most `patience` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience), self._ticking:
                pass


def start_scheduler(ticker: Ticker, every_seconds: float) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        ticker.safe_tick,
        "interval",
        seconds=every_seconds,
        id="tick",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
