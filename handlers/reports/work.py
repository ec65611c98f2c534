"""What whoever handles a report does from its card: accept, reassign, reject, mark a
duplicate, post progress, resolve with an "after" photo. The dialogue only: asking, parsing and
saying how it went; each move is a use case in services/reports/moves.py, which decides again
when the words arrive. Moves that need words continue as the `report_work` conversation of the
person who pressed the button."""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow, Step
from handlers.messages import Kind
from handlers.reports import cards
from handlers.reports.rules import ReportRules
from models import Report
from services.reports import access, moves, routing, store
from services.reports.lifecycle import Action

NAME = "report_work"
REPORT_NUMBER_HINT = "R-2026-000123"
NOTE_LIMIT = 500


class WorkFlow(Flow):
    name = NAME
    steps: ClassVar[dict[str, Step]] = {
        "reassign_to": Step(),
        "original": Step(text=True),  # a button, or a typed report number
        "after_photo": Step(media=True),
        "note": Step(text=True),
    }

    def __init__(self, rules: ReportRules) -> None:
        self.rules = rules

    async def begin(self, ctx: Context, args: str) -> None:  # pragma: no cover - no command
        raise NotImplementedError

    # ------------------------------------------------------------------ the card's buttons

    async def on_card(self, ctx: Context, report_id: int, choice: str) -> None:
        action = access.CARD_CHOICES.get(choice)
        if action is None:
            ctx.say(ctx._("This report no longer exists. Nothing was changed."))
            return
        if action is Action.ACCEPT:
            moved = await moves.accept(
                ctx.session, ctx.person.id, report_id, ctx.now, self.rules.policy
            )
            await self._done(ctx, moved)
            return
        checked = await moves.check(ctx.session, ctx.person.id, report_id, action)
        if isinstance(checked, moves.Refused):
            self._say_refused(ctx, checked)
            return
        report, _ = checked
        data = {"report_id": report.id, "action": action.value}
        if action is Action.REASSIGN:
            await self._ask_assignee(ctx, report, data)
        elif action is Action.MARK_DUPLICATE:
            await self._ask_original(ctx, report, data)
        elif action is Action.RESOLVE:
            ctx.ask(
                NAME,
                "after_photo",
                ctx._("Please send an “after” photo of the fix for {number}.").format(
                    number=report.number
                ),
                options=[(ctx._("No photo possible"), "nophoto")],
                data=data,
            )
        else:
            prompt = {
                Action.REJECT: ctx._(
                    "Why is {number} not ours to fix? The resident will read your reason."
                ),
                Action.NOTE: ctx._("What is the news on {number}? The resident will read it."),
            }[action]
            ctx.ask(NAME, "note", prompt.format(number=report.number), data=data)

    # ------------------------------------------------------------------ results

    async def _done(self, ctx: Context, moved: moves.Moved | moves.Refused) -> bool:
        """The use case's notices go out (the presser's own card is updated in this chat), or
        its refusal is explained."""
        if isinstance(moved, moves.Refused):
            self._say_refused(ctx, moved)
            return False
        await ctx.deliver(moved.notices)
        return True

    def _say_refused(self, ctx: Context, refused: moves.Refused) -> None:
        report = refused.report
        if report is None:
            ctx.say(ctx._("This report no longer exists. Nothing was changed."))
            return
        number, state = report.number, cards.state_name(ctx.t, report)
        text = {
            # Cards reach only whoever handles the report: it went to someone else meanwhile.
            "not_your_role": ctx._(
                "{number} has moved on: it is {state} now, with someone else, so this was not done."
            ),
            access.NOT_COVERED: ctx._(
                "You no longer handle reports like {number}, so this was not done."
            ),
            access.OWN_REPORT: ctx._(
                "You reported {number} yourself, so someone else must handle it."
            ),
            moves.NOBODY: ctx._("That person is no longer here. Nothing was changed."),
        }.get(refused.reason, ctx._("{number} is now {state}, so this can no longer be done."))
        ctx.say(text.format(number=number, state=state))

    async def _still_allowed(self, ctx: Context) -> Report | None:
        """Before taking more words for a move: the report may have moved on, or the person's
        roles changed, since the question was asked (the move itself decides again)."""
        report_id = int(ctx.data["report_id"])  # type: ignore[call-overload]
        checked = await moves.check(ctx.session, ctx.person.id, report_id, self._action(ctx))
        if isinstance(checked, moves.Refused):
            ctx.finish()
            self._say_refused(ctx, checked)
            return None
        return checked[0]

    @staticmethod
    def _action(ctx: Context) -> Action:
        return Action(str(ctx.data["action"]))

    # ------------------------------------------------------------------ reassign

    async def _ask_assignee(self, ctx: Context, report: Report, data: dict[str, object]) -> None:
        options = [
            (c.person.display_name or f"#{c.person.id}", f"{c.level}:{c.person.id}")
            for c in await routing.reassign_options(ctx.session, report)
        ]
        if not options:
            ctx.say(
                ctx._("There is nobody else who could take {number}.").format(number=report.number)
            )
            return
        ctx.ask(
            NAME,
            "reassign_to",
            ctx._("Who should take {number} instead?").format(number=report.number),
            options=options[:8],
            data=data,
        )

    async def step_reassign_to(self, ctx: Context) -> None:
        if ctx.choice is None:
            ctx.say(ctx._("Please choose someone from the list, or send /cancel."))
            return
        level, _, person_id = ctx.choice.partition(":")
        ctx.ask(
            NAME,
            "note",
            ctx._("Why are you passing it on? They and the resident will read it."),
            data={"to_level": int(level), "to_person": int(person_id)},
        )

    # ------------------------------------------------------------------ duplicate

    async def _ask_original(self, ctx: Context, report: Report, data: dict[str, object]) -> None:
        candidates = await moves.originals(ctx.session, report, self.rules.policy)
        if not candidates:
            ctx.say(
                ctx._(
                    "There is no open report about the same place that {number} could repeat, "
                    "so it cannot be marked as a duplicate."
                ).format(number=report.number)
            )
            return
        ctx.ask(
            NAME,
            "original",
            ctx._(
                "{number} repeats which report? Choose one, or type its number ({example})."
            ).format(number=report.number, example=REPORT_NUMBER_HINT),
            options=[(r.number or "", str(r.id)) for r in candidates[:5]],
            data=data,
        )

    async def step_original(self, ctx: Context) -> None:
        report = await self._still_allowed(ctx)
        if report is None:
            return
        if ctx.choice is not None:
            original = await store.get(ctx.session, int(ctx.choice))
        elif ctx.incoming.kind is Kind.TEXT:
            original = await store.by_number(ctx.session, ctx.incoming.text[:32])
        else:
            original = None
        if original is None or original.id == report.id:
            ctx.say(
                ctx._("I could not find that report. Please type a number like {example}.").format(
                    example=REPORT_NUMBER_HINT
                )
            )
            return
        moved = await moves.mark_duplicate(
            ctx.session, ctx.person.id, report.id, original.id, ctx.now, self.rules.policy
        )
        if isinstance(moved, moves.Refused) and moved.reason == moves.NOT_AN_ORIGINAL:
            # Pressed or typed, it must be one the duplicate search offers for this report.
            ctx.say(
                ctx._(
                    "{original} is not an open report about the same place, so it cannot be the "
                    "original of {number}. Choose one from the list, or type another number."
                ).format(original=original.number, number=report.number)
            )
            return
        if isinstance(moved, moves.Refused) and moved.reason == moves.BUSY:
            ctx.say(
                ctx._(
                    "{original} is being changed right now. Please try again in a moment."
                ).format(original=original.number)
            )
            return
        ctx.finish()
        await self._done(ctx, moved)

    # ------------------------------------------------------------------ resolve

    async def step_after_photo(self, ctx: Context) -> None:
        incoming = ctx.incoming
        if ctx.choice == "nophoto":
            ctx.ask(NAME, "note", self._resolve_prompt(ctx), data={"after": None})
            return
        if incoming.kind is Kind.PHOTO and incoming.media_problem:
            ctx.say(cards.media_problem(ctx.t, incoming.media_problem, self.rules))
            return
        if incoming.kind is Kind.PHOTO and incoming.media is not None:
            media = incoming.media
            after = {"key": media.key, "thumb": media.thumb_key, "phash": media.phash}
            ctx.ask(NAME, "note", self._resolve_prompt(ctx), data={"after": after})
            return
        ctx.say(ctx._("Please send a photo, or choose “No photo possible”."))

    def _resolve_prompt(self, ctx: Context) -> str:
        return ctx._("What was done? The resident will read it and be asked to rate the fix.")

    # ------------------------------------------------------------------ the note, last

    async def step_note(self, ctx: Context) -> None:
        if ctx.incoming.kind is not Kind.TEXT or not ctx.incoming.text.strip():
            ctx.say(ctx._("Please type a short note, or send /cancel."))
            return
        note = " ".join(ctx.incoming.text.split())
        if len(note) > NOTE_LIMIT:
            ctx.say(
                ctx._("Please keep the note under {limit} characters.").format(limit=NOTE_LIMIT)
            )
            return
        data, action = dict(ctx.data), self._action(ctx)
        report_id = int(data["report_id"])  # type: ignore[call-overload]
        ctx.finish()
        session, who, now = ctx.session, ctx.person.id, ctx.now
        if action is Action.REASSIGN:
            moved = await moves.reassign(
                session,
                who,
                report_id,
                int(data["to_person"]),  # type: ignore[call-overload]
                int(data["to_level"]),  # type: ignore[call-overload]
                note,
                now,
                self.rules.policy,
            )
        elif action is Action.RESOLVE:
            after = data.get("after")
            photo = (
                store.Photo(str(after["key"]), after.get("thumb"), after.get("phash"))
                if isinstance(after, dict)
                else None
            )
            moved = await moves.resolve(session, who, report_id, note, now, after=photo)
        elif action is Action.REJECT:
            moved = await moves.reject(session, who, report_id, note, now)
        else:
            moved = await moves.post_note(session, who, report_id, note, now)
        await self._done(ctx, moved)
