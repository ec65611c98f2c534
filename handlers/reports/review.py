"""The end of `/report`: likely duplicates (follow one instead, +1), the summary to check,
edits, and submitting (services/reports/submission.py)."""

from __future__ import annotations

from handlers.flow import Context
from handlers.reports import cards, draft
from handlers.reports.rules import ReportRules
from services.reports import duplicates, moves, submission

NAME = "report"


class ReviewSteps:
    """The steps of ReportFlow after the description (new_report.py moves between them)."""

    rules: ReportRules

    async def _next(self, ctx: Context, step: str) -> None:
        raise NotImplementedError

    async def _show(self, ctx: Context, step: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ duplicates

    async def _ask_duplicates(self, ctx: Context) -> None:
        data = ctx.data
        similar = await duplicates.similar_open(
            ctx.session,
            category=str(data["category"]),
            building_id=data.get("building_id"),  # type: ignore[arg-type]
            place=data.get("place"),  # type: ignore[arg-type]
            since=ctx.now - self.rules.policy.duplicate_window,
            phashes=[str(p["phash"]) for p in draft.items(ctx, "photos") if p.get("phash")],
            max_distance=self.rules.policy.phash_distance,
            limit=3,
        )
        data["duplicates_checked"] = True
        if not similar:
            await self._next(ctx, "confirm")
            return
        lines = [ctx._("Someone may have reported this already:")]
        options: list[tuple[str, str]] = []
        for report in similar:
            place = await cards.where(ctx.notifier, ctx.t, report)
            lines.append(
                "• "
                + cards.summary_line(ctx.t, self.rules, report, place)
                + " · "
                + ctx._("reported {when}").format(when=self.rules.local(report.created_at))
            )
            options.append(
                (
                    ctx._("Same as {number}: follow it (+1)").format(number=report.number),
                    f"follow:{report.id}",
                )
            )
        options.append((ctx._("Mine is different"), "different"))
        ctx.ask(NAME, "duplicates", "\n".join(lines), options=options)

    async def step_duplicates(self, ctx: Context) -> None:
        choice = ctx.choice or ""
        if choice == "different":
            await self._next(ctx, "confirm")
            return
        if not choice.startswith("follow:"):
            await self._ask_duplicates(ctx)
            return
        ctx.finish()
        followed = await submission.follow(
            ctx.session, ctx.person.id, int(choice.removeprefix("follow:")), ctx.now
        )
        if isinstance(followed, moves.Refused):
            ctx.say(ctx._("This report no longer exists. Nothing was changed."))
            return
        ctx.say(
            ctx._(
                "Thank you! You now follow {number} (+1). You will hear about every change, "
                "just like the person who reported it."
            ).format(number=followed.report.number)
        )

    # ------------------------------------------------------------------ confirm

    def _ask_confirm(self, ctx: Context) -> None:
        data = ctx.data
        lines = [ctx._("Please check your report:")]
        lines.append(
            ctx._("Category: {category}").format(
                category=self.rules.category_name(str(data["category"]), ctx.t)
            )
        )
        lines.append(ctx._("Where: {place}").format(place=draft.place_label(ctx)))
        if data.get("detail"):
            lines.append(ctx._("Detail: {detail}").format(detail=data["detail"]))
        if data.get("description"):
            lines.append(ctx._("Description: {text}").format(text=data["description"]))
        lines.append(
            ctx._("Photos: {photos} · voice notes: {voices}").format(
                photos=len(draft.items(ctx, "photos")), voices=len(draft.items(ctx, "voices"))
            )
        )
        ctx.ask(
            NAME,
            "confirm",
            "\n".join(lines),
            options=[
                (ctx._("Submit"), "submit"),
                (ctx._("Edit"), "edit"),
                (ctx._("Cancel"), "cancel"),
            ],
        )

    async def step_confirm(self, ctx: Context) -> None:
        if ctx.choice == "submit":
            await self._submit(ctx)
        elif ctx.choice == "edit":
            ctx.ask(
                NAME,
                "edit",
                ctx._("What would you like to change?"),
                options=[
                    (ctx._("Photos"), "photos"),
                    (ctx._("Category"), "category"),
                    (ctx._("Place"), "place"),
                    (ctx._("Description"), "description"),
                ],
            )
        elif ctx.choice == "cancel":
            ctx.finish()
            ctx.say(ctx._("Cancelled. Nothing was saved."))
        else:
            self._ask_confirm(ctx)

    async def step_edit(self, ctx: Context) -> None:
        if ctx.choice not in ("photos", "category", "place", "description"):
            self._ask_confirm(ctx)
            return
        ctx.data["editing"] = True
        if ctx.choice in ("category", "place"):
            ctx.data["duplicates_checked"] = False
        if ctx.choice == "photos":
            ctx.data["photos"] = []
            ctx.data["gps"] = None
        await self._show(ctx, ctx.choice)

    async def _submit(self, ctx: Context) -> None:
        new = draft.new_report(ctx, self.rules)
        ctx.finish()
        submitted = await submission.submit(ctx.session, new, ctx.now, self.rules.policy)
        await ctx.deliver(submitted.notices)
        report = submitted.report
        assert report.due_at is not None
        text = ctx._("Thank you! Your report {number} is in.").format(number=report.number)
        if submitted.to is not None:
            text += " " + ctx._("It is now with {who}, to be fixed by {due}.").format(
                who=cards.rung_name(ctx.t, report), due=self.rules.local(report.due_at)
            )
        else:
            text += " " + ctx._("Community staff will pass it to the right person soon.")
        text += "\n" + ctx._(
            "You will hear here about every change. /myreports lists your reports."
        )
        ctx.say(text)
