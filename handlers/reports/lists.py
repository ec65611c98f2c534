"""`/myreports` for residents, `/queue` for whoever handles reports: where everything stands."""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow, Step
from handlers.i18n import N_
from handlers.reports import cards
from handlers.reports.rules import HANDLER_ROLES, REPORTER_ROLES, ReportRules
from models import Report
from services.reports import access, notices, queries, store
from services.reports.lifecycle import State

EVENT_NAMES = {
    "submit": N_("reported"),
    "assign": N_("assigned"),
    "accept": N_("accepted"),
    "reassign": N_("passed on"),
    "reject": N_("rejected"),
    "mark_duplicate": N_("marked as a duplicate"),
    "start": N_("work started"),
    "note": N_("progress"),
    "resolve": N_("resolved"),
    "confirm": N_("rated and closed"),
    "reopen": N_("reopened"),
    "auto_close": N_("closed automatically"),
    "escalate": N_("escalated"),
}


class MyReportsFlow(Flow):
    name = "myreports"
    command = "myreports"
    description = N_("Your reports and where they stand")
    roles = REPORTER_ROLES
    private_only = True
    steps: ClassVar[dict[str, Step]] = {"details": Step()}

    def __init__(self, rules: ReportRules) -> None:
        self.rules = rules

    async def begin(self, ctx: Context, args: str) -> None:
        reports = await queries.of_person(ctx.session, ctx.person.id)
        if not reports:
            ctx.say(ctx._("You have no reports yet. Send /report or just a photo to make one."))
            return
        lines = [ctx._("Your reports (and the ones you follow):")]
        for report in reports:
            place = await cards.where(ctx.notifier, ctx.t, report)
            lines.append("• " + cards.summary_line(ctx.t, self.rules, report, place))
        ctx.ask(
            self.name,
            "details",
            "\n".join(lines),
            options=[(r.number or "", str(r.id)) for r in reports[:8]],
        )

    async def step_details(self, ctx: Context) -> None:
        report = await store.get(ctx.session, int(ctx.choice)) if ctx.choice else None
        if report is None:
            ctx.finish()
            ctx.say(ctx._("Choose one of the reports above, or send /cancel."))
            return
        place = await cards.where(ctx.notifier, ctx.t, report)
        lines = cards.details(ctx.t, self.rules, report, place)
        lines.append("")
        for event in await store.timeline(ctx.session, report.id):
            name = ctx._(EVENT_NAMES.get(event.action, event.action))
            line = f"{self.rules.local(event.at)} · {name}"
            # Handlers' notes are for the resident; who wrote them stays private.
            if event.note:
                line += f": {event.note}"
            lines.append(line)
        ctx.say("\n".join(lines))


class QueueFlow(Flow):
    name = "queue"
    command = "queue"
    description = N_("Reports waiting for you and your team")
    roles = HANDLER_ROLES
    private_only = True
    steps: ClassVar[dict[str, Step]] = {"pick": Step()}
    FILTERS = (("open", N_("Open")), ("overdue", N_("Overdue")), ("mine", N_("Mine")))

    def __init__(self, rules: ReportRules) -> None:
        self.rules = rules

    async def begin(self, ctx: Context, args: str) -> None:
        which = args.strip().lower()
        await self._show(ctx, which if which in {f for f, _ in self.FILTERS} else "open")

    async def _show(self, ctx: Context, which: str) -> None:
        scope = access.queue_scope(await ctx.roles(), ctx.person.id)
        reports = await queries.queue(ctx.session, scope, which, ctx.now)
        title = dict(self.FILTERS)[which]
        lines = [ctx._("Reports — {filter}:").format(filter=ctx._(title))]
        if not reports:
            lines.append(ctx._("Nothing here. Well done!"))
        for report in reports:
            lines.append("• " + await self._line(ctx, report))
        options = [(r.number or "", f"open:{r.id}") for r in reports[:8]]
        options += [(ctx._(label), f"filter:{key}") for key, label in self.FILTERS if key != which]
        ctx.ask(self.name, "pick", "\n".join(lines), options=options)

    async def _line(self, ctx: Context, report: Report) -> str:
        place = await cards.where(ctx.notifier, ctx.t, report)
        line = cards.summary_line(ctx.t, self.rules, report, place)
        if report.due_at is not None:
            if report.due_at <= ctx.now:
                line += " · " + ctx._("overdue since {due}").format(
                    due=self.rules.local(report.due_at)
                )
            else:
                line += " · " + ctx._("due {due}").format(due=self.rules.local(report.due_at))
        if report.assignee_id == ctx.person.id:
            line += " · " + ctx._("yours")
        return line

    async def step_pick(self, ctx: Context) -> None:
        choice = ctx.choice or ""
        if choice.startswith("filter:"):
            await self._show(ctx, choice.removeprefix("filter:"))
            return
        report = (
            await store.get(ctx.session, int(choice.removeprefix("open:")))
            if choice.startswith("open:")
            else None
        )
        if report is None:
            ctx.say(ctx._("Choose one of the options above, or send /cancel."))
            return
        ctx.finish()
        await ctx.deliver([await notices.queue_card(ctx.session, ctx.person.id, report)])
        if State(report.state) is State.RESOLVED:
            ctx.say(ctx._("Waiting for the resident's rating."))
