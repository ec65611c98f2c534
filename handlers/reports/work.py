"""What whoever handles a report does from its dispatch card: accept, reassign, reject, mark a
duplicate, post progress, resolve with an "after" photo. Moves that need words continue as the
`report_work` conversation of the person who pressed the button."""

from __future__ import annotations

from handlers.flow import Context, Flow
from handlers.messages import Kind, Outgoing
from handlers.reports import cards
from handlers.reports.dispatch import hand_over
from handlers.reports.rules import ReportRules
from models import Person, Report
from services import points, tickets
from services.reports import access, routing, store
from services.reports.lifecycle import OPEN_STATES, Action, Capacity, Refusal, State

NAME = "report_work"
REPORT_NUMBER_HINT = "R-2026-000123"
CHOICE_ACTIONS = {
    "accept": Action.ACCEPT,
    "reassign": Action.REASSIGN,
    "reject": Action.REJECT,
    "duplicate": Action.MARK_DUPLICATE,
    "progress": Action.NOTE,
    "resolve": Action.RESOLVE,
}


def accepted_key(report: Report) -> str:
    return f"report:{report.id}:accepted"


class WorkFlow(Flow):
    name = NAME
    media_steps = frozenset({"after_photo"})

    def __init__(self, rules: ReportRules) -> None:
        self.rules = rules

    async def begin(self, ctx: Context, args: str) -> None:  # pragma: no cover - no command
        raise NotImplementedError

    # ------------------------------------------------------------------ the card's buttons

    async def on_card(self, ctx: Context, report_id: int, choice: str) -> None:
        report = await store.lock(ctx.session, report_id)
        if report is None or choice not in CHOICE_ACTIONS:
            ctx.say(ctx._("This report no longer exists. Nothing was changed."))
            return
        action = CHOICE_ACTIONS[choice]
        capacity = await self._capacity(ctx, report, action)
        if capacity is None:
            return
        if action is Action.ACCEPT:
            await self._accept(ctx, report, capacity)
            return
        data = {"report_id": report.id, "action": action.value, "capacity": capacity.value}
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

    async def _capacity(self, ctx: Context, report: Report, action: Action) -> Capacity | None:
        """Ask, on the locked report, whether this person may make the move now: the report
        may have moved on and their roles may have changed since the card was sent."""
        decided = await access.may(ctx.session, ctx.person.id, report, action)
        if isinstance(decided, Capacity):
            return decided
        await store.record_refusal(ctx.session, report, decided, None, ctx.person.id)
        self._say_refused(ctx, report, decided)
        return None

    def _say_refused(self, ctx: Context, report: Report, refused: Refusal) -> None:
        if refused.reason == "not_your_role":
            # Cards reach only whoever handles the report: it went to someone else meanwhile.
            ctx.say(
                ctx._(
                    "{number} has moved on: it is {state} now, with someone else, so this was "
                    "not done."
                ).format(number=report.number, state=cards.state_name(ctx.t, report))
            )
        elif refused.reason == access.NOT_COVERED:
            ctx.say(
                ctx._("You no longer handle reports like {number}, so this was not done.").format(
                    number=report.number
                )
            )
        elif refused.reason == access.OWN_REPORT:
            ctx.say(
                ctx._("You reported {number} yourself, so someone else must handle it.").format(
                    number=report.number
                )
            )
        else:
            ctx.say(
                ctx._("{number} is now {state}, so this can no longer be done.").format(
                    number=report.number, state=cards.state_name(ctx.t, report)
                )
            )

    async def _apply(
        self, ctx: Context, report: Report, action: Action, capacity: Capacity, note: str = ""
    ) -> bool:
        """Make the move as the person who pressed; a refusal is audited and explained."""
        moved = await store.apply(
            ctx.session, report, action, capacity, actor_id=ctx.person.id, now=ctx.now, note=note
        )
        if isinstance(moved, Refusal):
            self._say_refused(ctx, report, moved)
            return False
        return True

    async def _load(self, ctx: Context) -> tuple[Report, Action, Capacity] | None:
        """The report a step is about, locked and re-checked: someone else may have moved it, or
        the person's roles may have changed, since the question was asked."""
        report = await store.lock(ctx.session, int(ctx.data["report_id"]))  # type: ignore[call-overload]
        if report is None:
            ctx.finish()
            ctx.say(ctx._("This report no longer exists. Nothing was changed."))
            return None
        action = Action(str(ctx.data["action"]))
        capacity = await self._capacity(ctx, report, action)
        if capacity is None:
            ctx.finish()
            return None
        return report, action, capacity

    # ------------------------------------------------------------------ accept

    async def _accept(self, ctx: Context, report: Report, capacity: Capacity) -> None:
        if not await self._apply(ctx, report, Action.ACCEPT, capacity):
            return
        if capacity is Capacity.STAFF and report.assignee_id != ctx.person.id:
            report.assignee_id = ctx.person.id
        rule = self.rules.category(report.category)
        # Nobody earns points for a report they handle themselves: access refuses that move.
        if rule is not None:
            await points.award_pending(
                ctx.session,
                report.reporter_id,
                rule.category.points,
                reason="report.accepted",
                key=accepted_key(report),
                now=ctx.now,
            )
        await cards.tell_residents(
            ctx.notifier,
            report,
            lambda t: t.gettext("Your report {number} was accepted and is being handled.").format(
                number=report.number
            ),
        )
        await self._card_again(ctx, report, ctx._("Accepted. When you have news, use the buttons:"))

    async def _card_again(self, ctx: Context, report: Report, headline: str) -> None:
        await tickets.retire_for_subject(ctx.session, cards.REPORT_TICKET, report.id, ctx.now)
        roles = await ctx.roles()
        card = await cards.dispatch_card(
            ctx.notifier, self.rules, report, ctx.person, headline, for_staff=roles.is_staff
        )
        ctx.replies.append(card)

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
            ctx.say(ctx._("Please choose someone with the buttons, or send /cancel."))
            return
        level, _, person_id = ctx.choice.partition(":")
        ctx.ask(
            NAME,
            "note",
            ctx._("Why are you passing it on? They and the resident will read it."),
            data={"to_level": int(level), "to_person": int(person_id)},
        )

    # ------------------------------------------------------------------ duplicate

    async def _originals(self, ctx: Context, report: Report) -> list[Report]:
        return await store.originals(
            ctx.session,
            report,
            window=self.rules.duplicate_window,
            max_distance=self.rules.phash_distance,
        )

    async def _ask_original(self, ctx: Context, report: Report, data: dict[str, object]) -> None:
        candidates = await self._originals(ctx, report)
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
        loaded = await self._load(ctx)
        if loaded is None:
            return
        report, _, capacity = loaded
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
        # Pressed or typed, it must be one the duplicate search offers for this report now.
        if original.id not in {r.id for r in await self._originals(ctx, report)}:
            ctx.say(
                ctx._(
                    "{original} is not an open report about the same place, so it cannot be the "
                    "original of {number}. Choose one of the buttons, or type another number."
                ).format(original=original.number, number=report.number)
            )
            return
        # Kept open until this commits; if someone is moving it right now, try again later.
        held = await store.hold_if_free(ctx.session, original.id)
        if held is None or State(held.state) not in OPEN_STATES:
            ctx.say(
                ctx._(
                    "{original} is being changed right now. Please try again in a moment."
                ).format(original=original.number)
            )
            return
        ctx.finish()
        if not await self._apply(
            ctx, report, Action.MARK_DUPLICATE, capacity, note=original.number or ""
        ):
            return
        report.duplicate_of_id = original.id
        await self._closed_unfixed(ctx, report)
        # The reporter and followers now hear about the original instead.
        await store.follow(ctx.session, original.id, report.reporter_id, ctx.now)
        for follower in await store.followers(ctx.session, report.id):
            await store.follow(ctx.session, original.id, follower.id, ctx.now)
        await cards.tell_residents(
            ctx.notifier,
            report,
            lambda t: t.gettext(
                "Your report {number} is about the same problem as {original}, which is already "
                "being handled. You now follow {original} and will hear about it here."
            ).format(number=report.number, original=original.number),
        )
        ctx.say(
            ctx._("{number} is marked as a duplicate of {original}.").format(
                number=report.number, original=original.number
            )
        )

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
        ctx.say(ctx._("Please send a photo, or press “No photo possible”."))

    def _resolve_prompt(self, ctx: Context) -> str:
        return ctx._("What was done? The resident will read it and be asked to rate the fix.")

    # ------------------------------------------------------------------ the note, last

    async def step_note(self, ctx: Context) -> None:
        if ctx.incoming.kind is not Kind.TEXT or not ctx.incoming.text.strip():
            ctx.say(ctx._("Please type a short note, or send /cancel."))
            return
        note = " ".join(ctx.incoming.text.split())
        if len(note) > 500:
            ctx.say(ctx._("Please keep the note under {limit} characters.").format(limit=500))
            return
        loaded = await self._load(ctx)
        if loaded is None:
            return
        report, action, capacity = loaded
        data = dict(ctx.data)
        ctx.finish()
        if action is Action.REASSIGN:
            await self._reassign(ctx, report, capacity, note, data)
        elif action is Action.RESOLVE:
            await self._resolve(ctx, report, capacity, note, data)
        else:
            await self._move(ctx, report, action, capacity, note)

    async def _move(
        self, ctx: Context, report: Report, action: Action, capacity: Capacity, note: str
    ) -> None:
        if not await self._apply(ctx, report, action, capacity, note):
            return
        if action is Action.REJECT:
            await self._closed_unfixed(ctx, report)
            await cards.tell_residents(
                ctx.notifier,
                report,
                lambda t: t.gettext(
                    "Your report {number} was closed without a fix: {note}\n"
                    "If you think this is wrong, please contact the community office."
                ).format(number=report.number, note=note),
            )
            ctx.say(ctx._("{number} was rejected.").format(number=report.number))
            return
        await cards.tell_residents(
            ctx.notifier,
            report,
            lambda t: t.gettext("News on your report {number}: {note}").format(
                number=report.number, note=note
            ),
        )
        await self._card_again(ctx, report, ctx._("Sent to the resident. Next:"))

    async def _closed_unfixed(self, ctx: Context, report: Report) -> None:
        """Rejected or a duplicate: its cards go stale, and points are owed only for a report
        that stays accepted (accepted, passed on, then found not to be a problem: none)."""
        await points.withdraw_pending(ctx.session, accepted_key(report))
        await tickets.retire_for_subject(ctx.session, cards.REPORT_TICKET, report.id, ctx.now)

    async def _reassign(
        self, ctx: Context, report: Report, capacity: Capacity, note: str, data: dict[str, object]
    ) -> None:
        # Still someone the report may go to, as the buttons were when they were offered?
        to = next(
            (
                c
                for c in await routing.reassign_options(ctx.session, report)
                if (c.level, c.person.id) == (data["to_level"], data["to_person"])
            ),
            None,
        )
        if to is None:
            ctx.say(ctx._("That person is no longer here. Nothing was changed."))
            return
        person = to.person
        choice = await hand_over(
            ctx.notifier,
            self.rules,
            report,
            action=Action.REASSIGN,
            capacity=capacity,
            level=to.level,
            actor_id=ctx.person.id,
            note=note,
            to=person,
        )
        if choice is None:
            self._say_refused(
                ctx, report, Refusal("not_allowed_now", State(report.state), Action.REASSIGN)
            )
            return
        await cards.tell_residents(
            ctx.notifier,
            report,
            lambda t: t.gettext("Your report {number} was passed to {who}: {note}").format(
                number=report.number, who=cards.rung_name(t, report), note=note
            ),
        )
        ctx.say(
            ctx._("{number} is now with {name}.").format(
                number=report.number, name=person.display_name or f"#{person.id}"
            )
        )

    async def _resolve(
        self, ctx: Context, report: Report, capacity: Capacity, note: str, data: dict[str, object]
    ) -> None:
        if not await self._apply(ctx, report, Action.RESOLVE, capacity, note):
            return
        after = data.get("after")
        image_path = None
        if isinstance(after, dict):
            photo = store.Photo(str(after["key"]), after.get("thumb"), after.get("phash"))
            await store.add_media(ctx.session, report.id, "after", photo, ctx.now)
            image_path = str(self.rules.storage.path(photo.media_key))
        await tickets.retire_for_subject(ctx.session, cards.REPORT_TICKET, report.id, ctx.now)
        await ask_rating(ctx, self.rules, report, note, image_path)
        ctx.say(
            ctx._("{number} is resolved. The resident will be asked to rate the fix.").format(
                number=report.number
            )
        )


async def ask_rating(
    ctx: Context, rules: ReportRules, report: Report, note: str, image_path: str | None
) -> None:
    """The reporter rates the fix; followers hear the news without the buttons."""
    reporter = await ctx.session.get(Person, report.reporter_id)
    if reporter is not None:
        t = ctx.translator_for(reporter)
        options = await ctx.ticket_options(
            reporter,
            cards.RATING_TICKET,
            report.id,
            [*((("★" * n), str(n)) for n in range(1, 6)), (t.gettext("Not fixed"), "notfixed")],
        )
        ctx.notify(
            reporter,
            Outgoing(
                t.gettext(
                    "Your report {number} is resolved: {note}\nHow well was it fixed? "
                    "Rate 1 to 5 stars, or tell us it is not fixed."
                ).format(number=report.number, note=note),
                options=options,
                image_path=image_path,
            ),
        )
    await cards.tell_residents(
        ctx.notifier,
        report,
        lambda t: t.gettext("Report {number}, which you follow, is resolved: {note}").format(
            number=report.number, note=note
        ),
        skip=report.reporter_id,
    )
