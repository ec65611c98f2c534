"""Creating a poll in chat (`/poll` → "Create a poll"), for building heads (their buildings)
and staff (any scope): question, options, how many may be chosen, named or anonymous, per
resident or per household, the deadline, the scope, then a summary to confirm. The poll is
made by the same use case as `linli poll create` (services/voting/polls.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from handlers.flow import Context, Step
from handlers.messages import Kind
from models import Role
from services import scopes
from services.voting import notices, polls

DONE, CANCEL = "done", "cancel"
CREATORS = frozenset({Role.BUILDING_HEAD, Role.STAFF, Role.ADMIN})
DEADLINE_DAYS = (1, 3, 7)


class DraftSteps:
    """Mixed into PollFlow: the steps of a new poll, kept in the conversation's data."""

    name: ClassVar[str]
    timezone: str
    draft_steps: ClassVar[dict[str, Step]] = {
        "question": Step(ask="_ask_question", text=True),
        "option": Step(ask="_ask_option", text=True),
        "choices": Step(ask="_ask_choices"),
        "secrecy": Step(ask="_ask_secrecy"),
        "unit": Step(ask="_ask_unit"),
        "deadline": Step(ask="_ask_deadline", text=True),
        "scope": Step(ask="_ask_scope"),
        "confirm": Step(ask="_ask_confirm"),
    }

    @staticmethod
    async def may_create(ctx: Context) -> bool:
        return (await ctx.roles()).any_of(CREATORS)

    def _ask_question(self, ctx: Context) -> None:
        ctx.ask(
            self.name,
            "question",
            ctx._("What is the question? (at most {limit} characters)").format(
                limit=polls.MAX_QUESTION
            ),
            options=[(ctx._("Cancel"), CANCEL)],
        )

    async def step_question(self, ctx: Context) -> None:
        if ctx.choice == CANCEL:
            ctx.finish()
            ctx.say(ctx._("Cancelled. Nothing was saved."))
            return
        question = " ".join(ctx.typed.split())
        if not question or len(question) > polls.MAX_QUESTION:
            ctx.say(
                ctx._("Please type the question, at most {limit} characters.").format(
                    limit=polls.MAX_QUESTION
                )
            )
            self._ask_question(ctx)
            return
        ctx.data["question"] = question
        ctx.data["options"] = []
        self._ask_option(ctx)

    def _ask_option(self, ctx: Context) -> None:
        chosen = list(ctx.data.get("options", []))  # type: ignore[call-overload]
        listed = "\n".join(f"{n}. {o}" for n, o in enumerate(chosen, 1))
        lines = [listed] if listed else []
        lines.append(
            ctx._("Type option {n}, one per message.").format(n=len(chosen) + 1)
            if len(chosen) < polls.MIN_OPTIONS
            else ctx._("Type another option, or choose “Done”.")
        )
        buttons = [(ctx._("Done"), DONE)] if len(chosen) >= polls.MIN_OPTIONS else []
        ctx.ask(self.name, "option", "\n".join(lines), options=buttons)

    async def step_option(self, ctx: Context) -> None:
        chosen = list(ctx.data.get("options", []))  # type: ignore[call-overload]
        if ctx.choice == DONE and len(chosen) >= polls.MIN_OPTIONS:
            self._ask_choices(ctx)
            return
        option = " ".join(ctx.typed.split())
        if not option or len(option) > polls.MAX_OPTION or option in chosen:
            ctx.say(
                ctx._("Each option is different and at most {limit} characters.").format(
                    limit=polls.MAX_OPTION
                )
            )
        else:
            chosen.append(option)
            ctx.data["options"] = chosen
        if len(chosen) >= polls.MAX_OPTIONS:
            self._ask_choices(ctx)
            return
        self._ask_option(ctx)

    def _ask_choices(self, ctx: Context) -> None:
        count = len(ctx.data.get("options", []))  # type: ignore[arg-type]
        options = [(ctx._("One option"), "1")] + [
            (ctx._("Up to {n} options").format(n=n), str(n)) for n in range(2, count + 1)
        ]
        ctx.ask(
            self.name, "choices", ctx._("How many options may each voter choose?"), options=options
        )

    async def step_choices(self, ctx: Context) -> None:
        ctx.data["max_choices"] = int(ctx.choice or 1)
        self._ask_secrecy(ctx)

    def _ask_secrecy(self, ctx: Context) -> None:
        ctx.ask(
            self.name,
            "secrecy",
            ctx._("Named or anonymous? In a named poll you and staff see who chose what."),
            options=[(ctx._("Named"), "named"), (ctx._("Anonymous"), "anonymous")],
        )

    async def step_secrecy(self, ctx: Context) -> None:
        ctx.data["anonymous"] = ctx.choice == "anonymous"
        self._ask_unit(ctx)

    def _ask_unit(self, ctx: Context) -> None:
        ctx.ask(
            self.name,
            "unit",
            ctx._("Who votes?"),
            options=[
                (ctx._("Each resident"), "resident"),
                (ctx._("One vote per household"), "household"),
            ],
        )

    async def step_unit(self, ctx: Context) -> None:
        ctx.data["per_household"] = ctx.choice == "household"
        self._ask_deadline(ctx)

    def _ask_deadline(self, ctx: Context) -> None:
        ctx.ask(
            self.name,
            "deadline",
            ctx._("When does it close? Choose, or type a time like 2026-12-31 20:00."),
            options=[
                (ctx.t.ngettext("In {n} day", "In {n} days", n).format(n=n), str(n))
                for n in DEADLINE_DAYS
            ],
        )

    async def step_deadline(self, ctx: Context) -> None:
        zone = ZoneInfo(self.timezone)
        deadline: datetime | None = None
        if ctx.choice is not None and ctx.choice.isdigit():
            deadline = ctx.now + timedelta(days=int(ctx.choice))
        elif ctx.incoming.kind is Kind.TEXT:
            try:
                typed = datetime.fromisoformat(ctx.incoming.text.strip())
            except ValueError:
                typed = None
            if typed is not None:
                deadline = (typed if typed.tzinfo else typed.replace(tzinfo=zone)).astimezone(
                    ZoneInfo("UTC")
                )
        if deadline is None or deadline <= ctx.now:
            ctx.say(ctx._("Please choose, or type a time in the future like 2026-12-31 20:00."))
            self._ask_deadline(ctx)
            return
        ctx.data["deadline"] = deadline.isoformat()
        await self._ask_scope(ctx)

    async def _ask_scope(self, ctx: Context) -> None:
        offered = await scopes.choosable(ctx.session, await ctx.roles())
        if len(offered) == 1:
            ctx.data["scope"] = offered[0].key
            self._ask_confirm(ctx)
            return
        from handlers.groups import scope_label

        ctx.ask(
            self.name,
            "scope",
            ctx._("Who is it for?"),
            options=[(scope_label(ctx, s), s.key) for s in offered],
        )

    async def step_scope(self, ctx: Context) -> None:
        ctx.data["scope"] = ctx.choice
        self._ask_confirm(ctx)

    def _ask_confirm(self, ctx: Context) -> None:
        data = ctx.data
        when = datetime.fromisoformat(str(data["deadline"])).astimezone(ZoneInfo(self.timezone))
        lines = [
            ctx._("Please check the poll:"),
            str(data["question"]),
            *(f"{n}. {o}" for n, o in enumerate(data["options"], 1)),  # type: ignore[arg-type]
            ctx._("Deadline: {when}").format(when=when.strftime("%Y-%m-%d %H:%M")),
        ]
        ctx.ask(
            self.name,
            "confirm",
            "\n".join(lines),
            options=[(ctx._("Open the poll"), "open"), (ctx._("Cancel"), CANCEL)],
        )

    async def step_confirm(self, ctx: Context) -> None:
        data = ctx.finish()
        if ctx.choice != "open":
            ctx.say(ctx._("Cancelled. Nothing was saved."))
            return
        scope = await scopes.by_key(ctx.session, str(data["scope"]))
        allowed = {s.key for s in await scopes.choosable(ctx.session, await ctx.roles())}
        if scope is None or scope.key not in allowed:
            ctx.say(ctx._("You can no longer open polls for that part of the community."))
            return
        try:
            poll = await polls.create(
                ctx.session,
                scope,
                str(data["question"]),
                [str(o) for o in data["options"]],  # type: ignore[attr-defined]
                deadline=datetime.fromisoformat(str(data["deadline"])),
                now=ctx.now,
                max_choices=int(data["max_choices"]),  # type: ignore[call-overload]
                anonymous=bool(data["anonymous"]),
                per_household=bool(data["per_household"]),
                created_by=ctx.person.id,
            )
        except polls.PollProblem:
            ctx.say(ctx._("The poll could not be opened. Please start again with /poll."))
            return
        await ctx.deliver(await notices.opened(ctx.session, poll))
        ctx.say(ctx._("The poll is open (number {id}). Residents get it now.").format(id=poll.id))
