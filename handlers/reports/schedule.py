"""What the scheduler tick does for reports (DESIGN.md "Time"): dispatch what nobody could take,
remind assignees at `reminder_fraction` of the SLA, escalate what is overdue, and close what
was resolved but never rated. Each job reads due rows, locked, and moves them in the tick's
transaction, so a second tick finds nothing left to do; a row a person is moving right now waits
for the next tick.

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
from handlers.reports import cards
from handlers.reports.dispatch import escalate, hand_over
from handlers.reports.rules import ReportRules
from models import Report
from services import tickets
from services.reports import store
from services.reports.lifecycle import Action, Capacity, Refusal

log = logging.getLogger("linli.reports")


@dataclass
class ReportJobs:
    rules: ReportRules
    catalogs: Catalogs
    default_locale: str
    # Reports already logged for a category that is not configured: once per process, not
    # once per tick.
    unknown_logged: set[int] = field(default_factory=set)

    async def __call__(self, session: AsyncSession, now: datetime) -> int:
        notifier = Notifier(session, self.catalogs, self.default_locale, now)
        done = 0
        done += await self.dispatch_waiting(notifier)
        done += await self.remind(notifier)
        done += await self.escalate(notifier)
        done += await self.auto_close(notifier)
        return done

    async def _each(
        self,
        n: Notifier,
        reports: list[Report],
        move: Callable[[Report], Awaitable[bool]],
        *,
        job: str,
        needs_category: bool = True,
    ) -> int:
        """Move each report in its own savepoint; how many moved."""
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
                    count += await move(report)
            except Exception:
                log.exception("report job %s failed for report id=%s", job, report_id)
        return count

    async def dispatch_waiting(self, n: Notifier) -> int:
        return await self._each(
            n, await store.undispatched(n.session), lambda r: self._dispatch(n, r), job="dispatch"
        )

    async def _dispatch(self, n: Notifier, report: Report) -> bool:
        choice = await hand_over(
            n, self.rules, report, action=Action.ASSIGN, capacity=Capacity.SYSTEM, level=0
        )
        if choice is not None:
            await cards.tell_residents(
                n,
                report,
                lambda t, report=report: t.gettext(
                    "Your report {number} is now with {who}."
                ).format(number=report.number, who=cards.rung_name(t, report)),
            )
        return choice is not None

    async def remind(self, n: Notifier) -> int:
        # A reminder needs no rule: a report of a removed category is still someone's job.
        return await self._each(
            n,
            await store.due_reminders(n.session, n.now),
            lambda r: self._remind(n, r),
            job="remind",
            needs_category=False,
        )

    async def _remind(self, n: Notifier, report: Report) -> bool:
        report.reminded_at = n.now
        assert report.due_at is not None
        due = self.rules.local(report.due_at)
        await cards.tell(
            n,
            report.assignee_id,
            lambda t: t.gettext(
                "Reminder: {number} ({category}) is due by {due}. Use /queue to update it."
            ).format(
                number=report.number,
                category=self.rules.category_name(report.category, t),
                due=due,
            ),
        )
        return True

    async def escalate(self, n: Notifier) -> int:
        return await self._each(
            n,
            await store.due_escalations(n.session, n.now),
            lambda r: self._escalate(n, r),
            job="escalate",
        )

    async def _escalate(self, n: Notifier, report: Report) -> bool:
        previous = report.assignee_id
        choice = await escalate(n, self.rules, report, note="overdue", stay_at_top=False)
        if choice is None:
            # Top of the ladder, or no one above: stays overdue on the staff's /queue.
            report.escalate_at = None
            return False
        if previous != choice.person.id:
            await cards.tell(
                n,
                previous,
                lambda t: t.gettext("{number} is overdue and was escalated to {who}.").format(
                    number=report.number, who=cards.rung_name(t, report)
                ),
            )
        await cards.tell_residents(
            n,
            report,
            lambda t: t.gettext(
                "Your report {number} is overdue, so it was escalated to {who}."
            ).format(number=report.number, who=cards.rung_name(t, report)),
        )
        return True

    async def auto_close(self, n: Notifier) -> int:
        # Closing needs no rule either: a resolved report must not wait for a rating forever.
        return await self._each(
            n,
            await store.unrated_since(n.session, n.now - self.rules.autoclose_after),
            lambda r: self._auto_close(n, r),
            job="auto_close",
            needs_category=False,
        )

    async def _auto_close(self, n: Notifier, report: Report) -> bool:
        moved = await store.apply(
            n.session, report, Action.AUTO_CLOSE, Capacity.SYSTEM, actor_id=None, now=n.now
        )
        if isinstance(moved, Refusal):
            return False
        await tickets.retire_for_subject(n.session, cards.RATING_TICKET, report.id, n.now)
        await cards.tell_residents(
            n,
            report,
            lambda t: t.gettext(
                "Your report {number} was closed, as nobody rated the fix within {days} "
                "days. Send /report if the problem comes back."
            ).format(number=report.number, days=self.rules.autoclose_days),
        )
        return True
