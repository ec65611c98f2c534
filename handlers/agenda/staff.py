"""Staff in `/agenda` and on its cards: moderating proposals (accept, merge into an accepted
item, reject with a reason), the council's decisions (`/agenda decide`) and progress updates
(planned / in progress / done, a note and a photo). Every answer is checked again by the use
case, so a card pressed twice or by two people moderates once."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import func, select

from handlers.agenda import texts
from handlers.flow import Context, Step
from handlers.i18n import N_
from handlers.messages import Kind, Outgoing
from handlers.photo_step import PhotoStep
from models import AgendaCycle, AgendaItem
from services.agenda import followup, proposals
from services.agenda.proposals import Moderation, Problem
from services.agenda.rules import PROPOSALS

if TYPE_CHECKING:
    from handlers.reports.rules import ReportRules
    from services.agenda.rules import AgendaRules

NAME = "agenda"
MODERATE, DECIDE, PROGRESS = "moderate", "decide", "progress"
CANCEL, SKIP = "cancel", "skip"
PROGRESS_PHOTO = PhotoStep(NAME, "progress_photo", cancel=False)

FOLLOWUP_PROBLEMS = {
    followup.Problem.NOT_STAFF: N_("Only community staff can record the council's decisions."),
    followup.Problem.UNKNOWN: N_("That is not an item the council took up. Nothing was changed."),
    followup.Problem.EMPTY: N_("Please type it in at most {limit} characters."),
    followup.Problem.NOT_DECIDED: N_("Record the council's decision on this item first."),
    followup.Problem.BAD_STATE: N_("Please choose one of the options."),
}
MODERATION_LABELS = {
    "accept": N_("Accept the item"),
    "merge": N_("Merge into another item"),
    "reject": N_("Reject with a reason"),
}


class StaffSteps:
    """Mixed into AgendaFlow."""

    rules: AgendaRules
    media: ReportRules
    staff_steps: ClassVar[dict[str, Step]] = {
        "pending": Step(),
        "moderate": Step(),
        "merge_into": Step(),
        "reason": Step(text=True),
        "decide_item": Step(),
        "decision": Step(text=True),
        "progress_item": Step(),
        "progress_state": Step(),
        "progress_note": Step(text=True),
        "progress_photo": Step(media=True),
    }

    async def staff_options(self, ctx: Context, cycle: AgendaCycle | None) -> list[tuple[str, str]]:
        options = []
        if cycle is not None and cycle.phase == PROPOSALS:
            waiting = await ctx.session.scalar(
                select(func.count())
                .select_from(AgendaItem)
                .where(AgendaItem.cycle_id == cycle.id, AgendaItem.status == "pending")
            )
            if waiting:
                options.append(
                    (ctx._("Proposals to moderate ({n})").format(n=int(waiting)), MODERATE)
                )
        if await followup.council_items(ctx.session, decided=False):
            options.append((ctx._("Record a council decision"), DECIDE))
        if await followup.council_items(ctx.session, decided=True):
            options.append((ctx._("Post progress on an item"), PROGRESS))
        return options

    async def staff_menu(self, ctx: Context, choice: str | None) -> None:
        if not (await ctx.roles()).is_staff:
            ctx.finish()
            texts.refuse(ctx, self.rules, Problem.NOT_STAFF)
        elif choice == MODERATE:
            await self._ask_pending(ctx)
        elif choice == DECIDE:
            await self.begin_decide(ctx)
        elif choice == PROGRESS:
            await self._ask_progress_item(ctx)
        else:
            ctx.finish()

    # ------------------------------------------------------------------ moderation

    async def _ask_pending(self, ctx: Context) -> None:
        waiting = (
            await ctx.session.scalars(
                select(AgendaItem)
                .join(AgendaCycle, AgendaCycle.id == AgendaItem.cycle_id)
                .where(AgendaItem.status == "pending", AgendaCycle.phase == PROPOSALS)
                .order_by(AgendaItem.id)
            )
        ).all()
        texts.ask_or_say(
            ctx,
            "pending",
            ctx._("Proposals waiting for moderation:"),
            [(texts.item_line(ctx.t, item), str(item.id)) for item in waiting],
            ctx._("No proposals are waiting."),
        )

    async def step_pending(self, ctx: Context) -> None:
        item = await ctx.session.get(AgendaItem, int(ctx.choice or 0))
        if item is None:
            ctx.finish()
            texts.refuse(ctx, self.rules, Problem.UNKNOWN)
            return
        if item.photo_key:
            ctx.replies.append(Outgoing(f"#{item.id} {item.title}", image_key=item.photo_key))
        ctx.ask(
            NAME,
            "moderate",
            "\n".join([texts.item_line(ctx.t, item), item.description]),
            options=[(ctx._(label), action) for action, label in MODERATION_LABELS.items()],
            data={"item": item.id},
        )

    async def step_moderate(self, ctx: Context) -> None:
        await self.on_moderation(ctx, int(ctx.data.get("item", 0)), ctx.choice or "")  # type: ignore[call-overload]

    async def on_moderation(self, ctx: Context, item_id: int, choice: str) -> None:
        """A press on a moderation card, or the same choice in /agenda."""
        checked = await proposals.check_moderation(ctx.session, await ctx.roles(), item_id)
        if isinstance(checked, Problem):
            ctx.finish()
            texts.refuse(ctx, self.rules, checked)
            return
        item, _ = checked
        if choice == Moderation.ACCEPT:
            await self._moderate(ctx, item.id, Moderation.ACCEPT)
        elif choice == Moderation.MERGE:
            targets = await proposals.merge_targets(ctx.session, item)
            if not targets:
                ctx.finish()
                ctx.say(ctx._("There is no accepted item to merge it into yet."))
                return
            ctx.ask(
                NAME,
                "merge_into",
                ctx._("Merge #{id} “{title}” into which item?").format(
                    id=item.id, title=item.title
                ),
                options=[(texts.item_line(ctx.t, t), str(t.id)) for t in targets]
                + [(ctx._("Cancel"), CANCEL)],
                data={"item": item.id},
            )
        elif choice == Moderation.REJECT:
            ctx.ask(
                NAME,
                "reason",
                ctx._("Why is #{id} “{title}” not accepted? The resident will read it.").format(
                    id=item.id, title=item.title
                ),
                options=[(ctx._("Cancel"), CANCEL)],
                data={"item": item.id},
            )
        else:
            ctx.finish()
            texts.refuse(ctx, self.rules, Problem.UNKNOWN)

    async def step_merge_into(self, ctx: Context) -> None:
        if ctx.choice == CANCEL:
            ctx.finish()
            ctx.say(ctx._("Cancelled. Nothing was changed."))
            return
        item_id = int(ctx.data.get("item", 0))  # type: ignore[call-overload]
        await self._moderate(ctx, item_id, Moderation.MERGE, into=int(ctx.choice or 0))

    async def step_reason(self, ctx: Context) -> None:
        if ctx.choice == CANCEL:
            ctx.finish()
            ctx.say(ctx._("Cancelled. Nothing was changed."))
            return
        reason = ctx.typed
        if not reason or len(reason) > ctx.rules.max_text_length:
            texts.refuse(ctx, self.rules, Problem.NO_REASON)
            return
        item_id = int(ctx.data.get("item", 0))  # type: ignore[call-overload]
        await self._moderate(ctx, item_id, Moderation.REJECT, reason=reason)

    async def _moderate(
        self,
        ctx: Context,
        item_id: int,
        action: Moderation,
        *,
        reason: str = "",
        into: int | None = None,
    ) -> None:
        ctx.finish()
        done = await proposals.moderate(
            ctx.session,
            ctx.person.id,
            await ctx.roles(),
            item_id,
            action,
            ctx.now,
            reason=reason,
            into=into,
        )
        if isinstance(done, Problem):
            texts.refuse(ctx, self.rules, done)
            return
        await ctx.deliver(done.notices)

    # ------------------------------------------------------------------ decisions

    async def begin_decide(self, ctx: Context) -> None:
        if not (await ctx.roles()).is_staff:
            ctx.finish()
            ctx.say(ctx._(FOLLOWUP_PROBLEMS[followup.Problem.NOT_STAFF]))
            return
        waiting = await followup.council_items(ctx.session)
        texts.ask_or_say(
            ctx,
            "decide_item",
            ctx._("The council's decision on which item?"),
            [(self._council_label(ctx, item), str(item.id)) for item in waiting[:30]],
            ctx._("No items have gone to the council yet."),
        )

    def _council_label(self, ctx: Context, item: AgendaItem) -> str:
        mark = " ✔" if item.decision else ""
        return texts.item_line(ctx.t, item) + mark

    async def step_decide_item(self, ctx: Context) -> None:
        item = await ctx.session.get(AgendaItem, int(ctx.choice or 0))
        if item is None or not item.selected:
            ctx.finish()
            ctx.say(ctx._(FOLLOWUP_PROBLEMS[followup.Problem.UNKNOWN]))
            return
        lines = [texts.item_line(ctx.t, item)]
        if item.decision:
            lines.append(ctx._("Recorded so far: {decision}").format(decision=item.decision))
        lines.append(
            ctx._("Type the council's decision. The proposer and supporters will read it.")
        )
        ctx.ask(
            NAME,
            "decision",
            "\n".join(lines),
            options=[(ctx._("Cancel"), CANCEL)],
            data={"item": item.id},
        )

    async def step_decision(self, ctx: Context) -> None:
        if ctx.choice == CANCEL:
            ctx.finish()
            ctx.say(ctx._("Cancelled. Nothing was changed."))
            return
        text = ctx.incoming.text if ctx.incoming.kind is Kind.TEXT else ""
        recorded = await followup.decide(
            ctx.session,
            ctx.person.id,
            await ctx.roles(),
            int(ctx.data.get("item", 0)),  # type: ignore[call-overload]
            text,
            ctx.now,
            ctx.rules.max_text_length,
        )
        if isinstance(recorded, followup.Problem):
            ctx.say(self._followup_problem(ctx, recorded))
            if recorded is not followup.Problem.EMPTY:
                ctx.finish()
            return
        ctx.finish()
        await ctx.deliver(recorded.notices)
        ctx.say(
            ctx._(
                "The decision on #{id} is recorded and sent to its proposer and supporters."
            ).format(id=recorded.item.id)
        )

    def _followup_problem(self, ctx: Context, problem: followup.Problem) -> str:
        return ctx._(FOLLOWUP_PROBLEMS[problem]).format(limit=ctx.rules.max_text_length)

    # ------------------------------------------------------------------ progress

    async def _ask_progress_item(self, ctx: Context) -> None:
        decided = await followup.council_items(ctx.session, decided=True)
        texts.ask_or_say(
            ctx,
            "progress_item",
            ctx._("Progress on which item?"),
            [(texts.item_line(ctx.t, item), str(item.id)) for item in decided[:30]],
            ctx._(FOLLOWUP_PROBLEMS[followup.Problem.NOT_DECIDED]),
        )

    async def step_progress_item(self, ctx: Context) -> None:
        item = await ctx.session.get(AgendaItem, int(ctx.choice or 0))
        if item is None or item.decision is None:
            ctx.finish()
            ctx.say(ctx._(FOLLOWUP_PROBLEMS[followup.Problem.UNKNOWN]))
            return
        ctx.ask(
            NAME,
            "progress_state",
            ctx._("Where does #{id} “{title}” stand?").format(id=item.id, title=item.title),
            options=[(ctx._(label), state) for state, label in texts.PROGRESS_LABELS.items()]
            + [(ctx._("Cancel"), CANCEL)],
            data={"item": item.id},
        )

    async def step_progress_state(self, ctx: Context) -> None:
        if ctx.choice == CANCEL or ctx.choice not in texts.PROGRESS_LABELS:
            ctx.finish()
            ctx.say(ctx._("Cancelled. Nothing was changed."))
            return
        ctx.data["state"] = ctx.choice
        ctx.ask(
            NAME,
            "progress_note",
            ctx._("Add a note for the residents, or skip."),
            options=[(ctx._("Skip"), SKIP)],
        )

    async def step_progress_note(self, ctx: Context) -> None:
        if ctx.choice != SKIP:
            note = ctx.typed
            if not note or len(note) > ctx.rules.max_text_length:
                ctx.say(self._followup_problem(ctx, followup.Problem.EMPTY))
                return
            ctx.data["note"] = note
        PROGRESS_PHOTO.ask(ctx)

    async def step_progress_photo(self, ctx: Context) -> None:
        taken, photo = PROGRESS_PHOTO.answer(ctx, self.media)
        if not taken:
            return
        draft = ctx.finish()
        recorded = await followup.progress(
            ctx.session,
            ctx.person.id,
            await ctx.roles(),
            int(draft.get("item", 0)),  # type: ignore[call-overload]
            str(draft.get("state", "")),
            str(draft.get("note", "")),
            photo,
            ctx.now,
            ctx.rules.max_text_length,
        )
        if isinstance(recorded, followup.Problem):
            ctx.say(self._followup_problem(ctx, recorded))
            return
        await ctx.deliver(recorded.notices)
        ctx.say(
            ctx._("The update on #{id} is posted and sent to its proposer and supporters.").format(
                id=recorded.item.id
            )
        )
