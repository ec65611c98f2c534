"""What the scheduler tick does for reports (DESIGN.md "Time"): dispatch what nobody could take,
remind assignees at `reminder_fraction` of the SLA, escalate what is overdue, and close what
was resolved but never rated. Each job reads due rows and moves them in the tick's transaction,
so a second tick finds nothing left to do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.flow import Notifier
from handlers.i18n import Catalogs
from handlers.reports import cards
from handlers.reports.dispatch import escalate, hand_over
from handlers.reports.rules import ReportRules
from services import tickets
from services.reports import store
from services.reports.lifecycle import Action, Capacity, Refusal


@dataclass
class ReportJobs:
    rules: ReportRules
    catalogs: Catalogs
    default_locale: str

    async def __call__(self, session: AsyncSession, now: datetime) -> int:
        notifier = Notifier(session, self.catalogs, self.default_locale, now)
        done = 0
        done += await self.dispatch_waiting(notifier)
        done += await self.remind(notifier)
        done += await self.escalate(notifier)
        done += await self.auto_close(notifier)
        return done

    async def dispatch_waiting(self, n: Notifier) -> int:
        count = 0
        for report in await store.undispatched(n.session):
            choice = await hand_over(
                n, self.rules, report, action=Action.ASSIGN, capacity=Capacity.SYSTEM, level=0
            )
            if choice is None:
                continue
            count += 1
            await cards.tell_residents(
                n,
                report,
                lambda t, report=report: t.gettext(
                    "Your report {number} is now with {who}."
                ).format(number=report.number, who=cards.rung_name(t, report)),
            )
        return count

    async def remind(self, n: Notifier) -> int:
        reports = await store.due_reminders(n.session, n.now)
        for report in reports:
            report.reminded_at = n.now
            assert report.due_at is not None
            due = self.rules.local(report.due_at)
            await cards.tell(
                n,
                report.assignee_id,
                lambda t, report=report, due=due: t.gettext(
                    "Reminder: {number} ({category}) is due by {due}. Use /queue to update it."
                ).format(
                    number=report.number,
                    category=self.rules.category_name(report.category, t),
                    due=due,
                ),
            )
        return len(reports)

    async def escalate(self, n: Notifier) -> int:
        count = 0
        for report in await store.due_escalations(n.session, n.now):
            previous = report.assignee_id
            choice = await escalate(n, self.rules, report, note="overdue", stay_at_top=False)
            if choice is None:
                # Top of the ladder, or no one above: stays overdue on the staff's /queue.
                report.escalate_at = None
                continue
            count += 1
            if previous != choice.person.id:
                await cards.tell(
                    n,
                    previous,
                    lambda t, report=report: t.gettext(
                        "{number} is overdue and was escalated to {who}."
                    ).format(number=report.number, who=cards.rung_name(t, report)),
                )
            await cards.tell_residents(
                n,
                report,
                lambda t, report=report: t.gettext(
                    "Your report {number} is overdue, so it was escalated to {who}."
                ).format(number=report.number, who=cards.rung_name(t, report)),
            )
        return count

    async def auto_close(self, n: Notifier) -> int:
        count = 0
        for report in await store.unrated_since(n.session, n.now - self.rules.autoclose_after):
            moved = await store.apply(
                n.session, report, Action.AUTO_CLOSE, Capacity.SYSTEM, actor_id=None, now=n.now
            )
            if isinstance(moved, Refusal):
                continue
            count += 1
            await tickets.retire_for_subject(n.session, cards.RATING_TICKET, report.id, n.now)
            await cards.tell_residents(
                n,
                report,
                lambda t, report=report: t.gettext(
                    "Your report {number} was closed, as nobody rated the fix within {days} "
                    "days. Send /report if the problem comes back."
                ).format(number=report.number, days=self.rules.autoclose_days),
            )
        return count
