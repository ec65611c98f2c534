"""What the scheduler tick does for reports (DESIGN.md "Time"): dispatch what nobody could take,
remind assignees at `reminder_fraction` of the SLA, escalate what is overdue, and close what
was resolved but never rated. Each job reads due rows, locked, and moves them with the use
cases of services/reports/ticks.py in the tick's transaction, so a second tick finds nothing
left to do; a row a person is moving right now waits for the next tick.

Each report is moved in a savepoint of its own: one that fails (or whose category was removed
from the configuration) is logged and skipped, and every other report goes on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.flow import Notifier
from handlers.i18n import Catalogs
from handlers.notices import NoticeKinds
from handlers.reports.rules import ReportRules
from models import Report
from services.notices import Notice
from services.reports import queries, ticks

log = logging.getLogger("linli.reports")

Move = Callable[[AsyncSession, Report, datetime], Awaitable[list[Notice] | None]]


@dataclass
class ReportJobs:
    rules: ReportRules
    catalogs: Catalogs
    default_locale: str
    kinds: NoticeKinds
    # Reports already logged for a category that is not configured: once per process, not
    # once per tick.
    unknown_logged: set[int] = field(default_factory=set)

    async def __call__(self, session: AsyncSession, now: datetime) -> int:
        notifier = Notifier(session, self.catalogs, self.default_locale, now, self.kinds)
        policy = self.rules.policy
        done = 0
        done += await self._each(
            notifier,
            await queries.undispatched(session),
            lambda s, r, t: ticks.dispatch_waiting(s, r, t, policy),
            job="dispatch",
        )
        # A reminder needs no rule: a report of a removed category is still someone's job.
        done += await self._each(
            notifier,
            await queries.due_reminders(session, now),
            self._remind,
            job="remind",
            needs_category=False,
        )
        done += await self._each(
            notifier,
            await queries.due_escalations(session, now),
            lambda s, r, t: ticks.escalate_overdue(s, r, t, policy),
            job="escalate",
        )
        # Closing needs no rule either: a resolved report must not wait for a rating forever.
        done += await self._each(
            notifier,
            await queries.unrated_since(session, now - policy.autoclose_after),
            lambda s, r, t: ticks.auto_close(s, r, t, policy),
            job="auto_close",
            needs_category=False,
        )
        return done

    @staticmethod
    async def _remind(_session: AsyncSession, report: Report, now: datetime) -> list[Notice]:
        return ticks.remind(report, now)

    async def _each(
        self,
        n: Notifier,
        reports: list[Report],
        move: Move,
        *,
        job: str,
        needs_category: bool = True,
    ) -> int:
        """Move each report in its own savepoint, its notices with it; how many moved."""
        count = 0
        for report in reports:
            report_id = report.id  # a rolled-back report is expired: keep its id for the log
            if needs_category and self.rules.category(report.category) is None:
                if report_id not in self.unknown_logged:
                    self.unknown_logged.add(report_id)
                    log.warning(
                        "report %s has category %r, which is not configured; the tick skips it",
                        report.number,
                        report.category,
                    )
                continue
            try:
                async with n.session.begin_nested():
                    told = await move(n.session, report, n.now)
                    if told is not None:
                        await n.tell(told)
                        count += 1
            except Exception:
                log.exception("report job %s failed for report id=%s", job, report_id)
        return count
