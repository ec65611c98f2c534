"""The reporter's verdict on a fix (services/reports/verdict.py decides): 3–5 stars close the
report, 1–2 or "not fixed" reopen it and send it one rung up. Either way they may add a
comment, which the handler reads."""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow, Step
from handlers.messages import Kind
from handlers.reports import cards
from handlers.reports.notices import verdict
from handlers.reports.rules import ReportRules
from services.reports import moves
from services.reports.verdict import COMMENT_LIMIT, comment, rate

NAME = "report_rating"


class RatingFlow(Flow):
    name = NAME
    steps: ClassVar[dict[str, Step]] = {"comment": Step(text=True)}

    def __init__(self, rules: ReportRules) -> None:
        self.rules = rules

    async def begin(self, ctx: Context, args: str) -> None:  # pragma: no cover - no command
        raise NotImplementedError

    async def on_rating(self, ctx: Context, report_id: int, choice: str) -> None:
        stars = int(choice) if choice.isdigit() else None
        # The timeline keeps the verdict in the words of the person who gave it.
        rated = await rate(
            ctx.session,
            ctx.person.id,
            report_id,
            stars,
            ctx.now,
            self.rules.policy,
            note=verdict(ctx.t, stars),
        )
        if isinstance(rated, moves.Refused):
            report = rated.report
            if report is None:
                ctx.say(ctx._("This report no longer exists. Nothing was changed."))
            elif rated.reason == "not_your_role":
                ctx.say(ctx._("Only the person who reported it can rate this fix."))
            else:
                ctx.say(
                    ctx._("{number} is now {state}, so it can no longer be rated.").format(
                        number=report.number, state=cards.state_name(ctx.t, report)
                    )
                )
            return
        await ctx.deliver(rated.notices)
        report = rated.report
        text = (
            ctx._("Thank you for rating {number}! It is now closed.")
            if stars is not None and stars >= 3
            else ctx._(
                "Sorry it is not fixed yet. {number} is reopened and goes to someone more senior."
            )
        )
        ctx.ask(
            NAME,
            "comment",
            text.format(number=report.number)
            + "\n"
            + ctx._("Would you like to add a comment? Type it, or choose Skip."),
            options=[(ctx._("Skip"), "skip")],
            data={"report_id": report.id},
        )

    async def step_comment(self, ctx: Context) -> None:
        if ctx.choice == "skip":
            ctx.finish()
            ctx.say(ctx._("Thank you."))
            return
        if ctx.incoming.kind is not Kind.TEXT or ctx.choice is not None:
            ctx.say(ctx._("Please type your comment, or choose Skip."))
            return
        text = " ".join(ctx.incoming.text.split())
        if len(text) > COMMENT_LIMIT:
            ctx.say(
                ctx._("Please keep your comment under {limit} characters.").format(
                    limit=COMMENT_LIMIT
                )
            )
            return
        report_id = int(ctx.data["report_id"])  # type: ignore[call-overload]
        ctx.finish()
        done = await comment(ctx.session, ctx.person.id, report_id, text, ctx.now)
        if isinstance(done, moves.Refused):
            return
        await ctx.deliver(done.notices)
        ctx.say(ctx._("Thank you, your comment was passed on."))
