"""The reporter's verdict on a fix: 3–5 stars close the report, 1–2 or "not fixed" reopen it and
send it one rung up. Either way they may add a comment, which the handler reads."""

from __future__ import annotations

from handlers.flow import Context, Flow
from handlers.messages import Kind
from handlers.reports import cards
from handlers.reports.dispatch import escalate
from handlers.reports.rules import ReportRules
from models import Report
from services import audit
from services.reports import access, store
from services.reports.lifecycle import Action, Refusal, rating_action

NAME = "report_rating"
COMMENT_LIMIT = 500


class RatingFlow(Flow):
    name = NAME

    def __init__(self, rules: ReportRules) -> None:
        self.rules = rules

    async def begin(self, ctx: Context, args: str) -> None:  # pragma: no cover - no command
        raise NotImplementedError

    async def on_rating(self, ctx: Context, report_id: int, choice: str) -> None:
        # Locked first: the tick may be closing it, or the reporter pressing twice elsewhere.
        report = await store.lock(ctx.session, report_id)
        if report is None:
            ctx.say(ctx._("This report no longer exists. Nothing was changed."))
            return
        stars = int(choice) if choice.isdigit() else None
        action = rating_action(stars) if stars is not None else Action.REOPEN
        note = ctx._("Rated {stars} of 5").format(stars=stars) if stars else ctx._("Not fixed")
        decided = await access.may(ctx.session, ctx.person.id, report, action)
        moved = (
            decided
            if isinstance(decided, Refusal)
            else await store.apply(
                ctx.session, report, action, decided, actor_id=ctx.person.id, now=ctx.now, note=note
            )
        )
        if isinstance(moved, Refusal):
            if moved is decided:  # apply audits its own refusals
                await store.record_refusal(ctx.session, report, moved, None, ctx.person.id)
            ctx.say(
                ctx._("Only the person who reported it can rate this fix.")
                if moved.reason == "not_your_role"
                else ctx._("{number} is now {state}, so it can no longer be rated.").format(
                    number=report.number, state=cards.state_name(ctx.t, report)
                )
            )
            return
        report.rating = stars
        handler_id = report.assignee_id  # who fixed it, before the report moves on
        if action is Action.CONFIRM:
            text = ctx._("Thank you for rating {number}! It is now closed.")
        else:
            text = ctx._(
                "Sorry it is not fixed yet. {number} is reopened and goes to someone more senior."
            )
            await self._escalate(ctx, report)
        await cards.tell(
            ctx.notifier,
            handler_id,
            lambda t: t.gettext("The resident's verdict on {number}: {verdict}").format(
                number=report.number,
                verdict=t.gettext("Rated {stars} of 5").format(stars=stars)
                if stars
                else t.gettext("Not fixed"),
            ),
        )
        ctx.ask(
            NAME,
            "comment",
            text.format(number=report.number)
            + "\n"
            + ctx._("Would you like to add a comment? Type it, or press Skip."),
            options=[(ctx._("Skip"), "skip")],
            data={"report_id": report.id},
        )

    async def _escalate(self, ctx: Context, report: Report) -> None:
        choice = await escalate(
            ctx.notifier, self.rules, report, note="reopened by the resident", stay_at_top=True
        )
        if choice is not None:
            # A fix that did not hold gets a new deadline, as a new report would.
            report.due_at = ctx.now + self.rules.sla_of(report)

    async def step_comment(self, ctx: Context) -> None:
        if ctx.choice == "skip":
            ctx.finish()
            ctx.say(ctx._("Thank you."))
            return
        if ctx.incoming.kind is not Kind.TEXT or ctx.choice is not None:
            ctx.say(ctx._("Please type your comment, or press Skip."))
            return
        comment = " ".join(ctx.incoming.text.split())
        if len(comment) > COMMENT_LIMIT:
            ctx.say(
                ctx._("Please keep your comment under {limit} characters.").format(
                    limit=COMMENT_LIMIT
                )
            )
            return
        report = await store.lock(ctx.session, int(ctx.data["report_id"]))  # type: ignore[call-overload]
        ctx.finish()
        if report is None:
            return
        report.rating_comment = comment
        await audit.record(
            ctx.session, "report.comment", actor_id=ctx.person.id, report=report.number
        )
        await cards.tell(
            ctx.notifier,
            report.assignee_id,
            lambda t: t.gettext("The resident commented on {number}: {comment}").format(
                number=report.number, comment=comment
            ),
        )
        ctx.say(ctx._("Thank you, your comment was passed on."))
