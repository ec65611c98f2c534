"""`/agenda`: what the month's phase allows. Residents propose items (title, description, an
optional photo), support accepted ones, vote (up to K, changeable until the close), read the
results and past months; staff moderate, and record the council's decisions and follow-up
(handlers/agenda/staff.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar

from sqlalchemy import func, select

from handlers.agenda import texts
from handlers.agenda.results import ResultsCard
from handlers.agenda.staff import StaffSteps
from handlers.flow import CANCEL, Context, Flow, Step
from handlers.i18n import N_
from handlers.messages import Outgoing
from handlers.photo_step import PhotoStep
from handlers.reports.rules import ReportRules
from handlers.voting import vote, vote_for
from models import AgendaCycle, AgendaItem, Ballot, Person, Poll
from services.agenda import cycles, followup, items, proposals
from services.agenda.proposals import Problem
from services.agenda.rules import PROPOSALS, PUBLISHED, VOTING, AgendaRules
from services.voting import ballots, keys, polls, proxies

VoterKey = Callable[[], bytes]
NAME = "agenda"
PROPOSE, ITEMS, VOTE, RESULTS, HISTORY = "propose", "items", "vote", "results", "history"
SKIP, SUBMIT, BACK, CONFIRM = "skip", "submit", "back", "confirm"
SUPPORT, UNSUPPORT = "support", "unsupport"
# "Vote for NAME": a proxy's ballot for a resident who asked them (services/voting/proxies.py).
VOTE_FOR = "for:"
PROPOSAL_PHOTO = PhotoStep(NAME, "photo", cancel=True)


class AgendaFlow(StaffSteps, Flow):
    name = NAME
    command = "agenda"
    description = N_("The council's monthly agenda: propose items, support them and vote")
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {
        "menu": Step(),
        "title": Step(ask="_ask_title", text=True),
        "description": Step(ask="_ask_description", text=True),
        "photo": Step(ask="_ask_photo", media=True),
        "confirm": Step(ask="_ask_confirm"),
        "items": Step(),
        "item": Step(),
        "ballot": Step(),
        "history": Step(),
        **StaffSteps.staff_steps,
    }

    def __init__(
        self, rules: AgendaRules, key: VoterKey, media: ReportRules, card: ResultsCard
    ) -> None:
        self.rules = rules
        self.key = key
        self.media = media
        self.card = card

    async def begin(self, ctx: Context, args: str) -> None:
        word = args.strip().lower()
        if word == "decide":
            await self.begin_decide(ctx)
        elif word == "history":
            await self._ask_history(ctx)
        else:
            await self._menu(ctx)

    async def _menu(self, ctx: Context) -> None:
        cycle = await cycles.current(ctx.session)
        roles = await ctx.roles()
        options: list[tuple[str, str]] = []
        if cycle is not None and cycle.phase == PROPOSALS and ctx.now < cycle.proposals_close_at:
            options.append((ctx._("Propose an item"), PROPOSE))
        if cycle is not None and cycle.phase in (PROPOSALS, VOTING):
            options.append((ctx._("This month's items"), ITEMS))
        if cycle is not None and cycle.phase == VOTING and cycle.poll_id is not None:
            poll = await ctx.session.get(Poll, cycle.poll_id)
            if poll is not None and await self._eligible(ctx, poll):
                label = (
                    ctx._("Change my vote")
                    if await self._current_picks(ctx, poll) is not None
                    else ctx._("Vote")
                )
                options.append((label, VOTE))
            if poll is not None:
                options += await self._proxy_options(ctx, poll)
        if cycle is not None and cycle.phase == PUBLISHED:
            options.append((ctx._("Results"), RESULTS))
        if roles.is_staff:
            options += await self.staff_options(ctx, cycle)
        options.append((ctx._("Past months"), HISTORY))
        ctx.ask(NAME, "menu", texts.phase_text(ctx.t, self.rules, cycle, ctx.now), options=options)

    async def step_menu(self, ctx: Context) -> None:
        choice = ctx.choice
        if choice == PROPOSE:
            self._ask_title(ctx)
        elif choice == ITEMS:
            await self._ask_items(ctx)
        elif choice == VOTE:
            cycle = await cycles.current(ctx.session)
            await self.start_ballot(ctx, cycle.poll_id if cycle is not None else None)
        elif choice is not None and choice.startswith(VOTE_FOR):
            cycle = await cycles.current(ctx.session)
            await self.start_ballot(
                ctx,
                cycle.poll_id if cycle is not None else None,
                for_resident=int(choice.removeprefix(VOTE_FOR) or 0),
            )
        elif choice == RESULTS:
            ctx.finish()
            cycle = await cycles.current(ctx.session)
            if cycle is not None:
                await self._show_month(ctx, cycle)
        elif choice == HISTORY:
            await self._ask_history(ctx)
        else:
            await self.staff_menu(ctx, choice)

    # ------------------------------------------------------------------ proposing

    def _ask_title(self, ctx: Context) -> None:
        ctx.ask(
            NAME,
            "title",
            ctx._(
                "What should the council discuss? Type a short title (at most {limit} characters)."
            ).format(limit=self.rules.title_limit),
            options=[(ctx._("Cancel"), CANCEL)],
        )

    async def step_title(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        title = " ".join(ctx.typed.split())
        if not title or len(title) > self.rules.title_limit:
            texts.refuse(ctx, self.rules, Problem.TITLE)
            self._ask_title(ctx)
            return
        ctx.data["title"] = title
        self._ask_description(ctx)

    def _ask_description(self, ctx: Context) -> None:
        ctx.ask(
            NAME,
            "description",
            ctx._("Describe it: what is the problem, and what would you like decided?"),
            options=[(ctx._("Cancel"), CANCEL)],
        )

    async def step_description(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        text = ctx.typed
        if not text or len(text) > self.rules.description_limit:
            if text:
                texts.refuse(ctx, self.rules, Problem.DESCRIPTION)
            self._ask_description(ctx)
            return
        ctx.data["description"] = text
        self._ask_photo(ctx)

    def _ask_photo(self, ctx: Context) -> None:
        PROPOSAL_PHOTO.ask(ctx)

    async def step_photo(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        taken, key = PROPOSAL_PHOTO.answer(ctx, self.media)
        if taken:
            ctx.data["photo"] = key
            self._ask_confirm(ctx)

    def _ask_confirm(self, ctx: Context) -> None:
        lines = [
            ctx._("Your proposal:"),
            str(ctx.data.get("title", "")),
            str(ctx.data.get("description", "")),
        ]
        if ctx.data.get("photo"):
            lines.append(ctx._("With a photo."))
        lines.append(ctx._("Staff will check it before residents can support it."))
        ctx.ask(
            NAME,
            "confirm",
            "\n".join(lines),
            options=[(ctx._("Submit"), SUBMIT), (ctx._("Cancel"), CANCEL)],
        )

    async def step_confirm(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        draft = ctx.finish()
        photo = draft.get("photo")
        done = await proposals.propose(
            ctx.session,
            self.rules,
            ctx.person.id,
            str(draft.get("title", "")),
            str(draft.get("description", "")),
            photo if isinstance(photo, str) else None,
            ctx.now,
        )
        if isinstance(done, Problem):
            texts.refuse(ctx, self.rules, done)
            return
        await ctx.deliver(done.notices)
        ctx.say(
            ctx._(
                "Thank you! Your proposal #{id} goes to staff, and you will be told when it is "
                "accepted."
            ).format(id=done.item.id)
        )

    # ------------------------------------------------------------------ items and support

    async def _ask_items(self, ctx: Context) -> None:
        cycle = await cycles.current(ctx.session)
        listed = (
            await items.with_support(ctx.session, cycle.id, ("accepted",))
            if cycle is not None and cycle.phase in (PROPOSALS, VOTING)
            else []
        )
        texts.ask_or_say(
            ctx,
            "items",
            ctx._("This month's items, most supported first. Choose one to read it:"),
            [(texts.item_line(ctx.t, item, n), str(item.id)) for item, n in listed],
            ctx._("No items have been accepted this month yet."),
        )

    async def step_items(self, ctx: Context) -> None:
        await self._show_item(ctx, int(ctx.choice or 0))

    async def _show_item(self, ctx: Context, item_id: int) -> None:
        item = await ctx.session.get(AgendaItem, item_id)
        if item is None or item.status != "accepted":
            ctx.finish()
            texts.refuse(ctx, self.rules, Problem.UNKNOWN)
            return
        supporters = await items.support_count(ctx.session, item.id)
        backing = await proposals.supports(ctx.session, ctx.person.id, item.id)
        lines = [
            texts.item_line(ctx.t, item, supporters),
            item.description,
            ctx._("Support shows the council what matters to residents; it is not a vote."),
        ]
        if item.photo_key:
            ctx.replies.append(Outgoing(f"#{item.id} {item.title}", image_key=item.photo_key))
        options = []
        if item.proposer_id != ctx.person.id:
            options.append(
                (ctx._("Withdraw my support"), UNSUPPORT)
                if backing
                else (ctx._("Support this item"), SUPPORT)
            )
        options.append((ctx._("Back to the list"), BACK))
        ctx.ask(NAME, "item", "\n".join(lines), options=options, data={"item": item.id})

    async def step_item(self, ctx: Context) -> None:
        item_id = int(ctx.data.get("item", 0))  # type: ignore[call-overload]
        if ctx.choice == BACK:
            await self._ask_items(ctx)
            return
        changed = await proposals.support(
            ctx.session, ctx.person.id, item_id, ctx.now, on=ctx.choice == SUPPORT
        )
        if isinstance(changed, Problem):
            ctx.finish()
            texts.refuse(ctx, self.rules, changed)
            return
        ctx.say(
            ctx._("Thank you for your support.")
            if ctx.choice == SUPPORT
            else ctx._("Your support is withdrawn.")
        )
        await self._show_item(ctx, item_id)

    # ------------------------------------------------------------------ the vote

    async def _eligible(self, ctx: Context, poll: Poll, person_id: int | None = None) -> bool:
        found = await ctx.session.execute(
            polls.eligible_people(poll).where(Person.id == (person_id or ctx.person.id))
        )
        return found.first() is not None

    async def _proxy_options(self, ctx: Context, poll: Poll) -> list[tuple[str, str]]:
        """An option "Vote for NAME" for each resident who asked this person to vote for them
        (a grant for this ballot or its month), while voting is open."""
        if poll.purpose != "agenda" or poll.status != "open" or poll.deadline <= ctx.now:
            return []
        options = []
        for resident_id in await proxies.residents_for(
            ctx.session, ctx.person.id, poll, self.rules.timezone
        ):
            resident = await ctx.session.get(Person, resident_id)
            if resident is not None and await self._eligible(ctx, poll, resident_id):
                label = ctx._("Vote for {name}").format(name=resident.display_name)
                options.append((label, f"{VOTE_FOR}{resident_id}"))
        return options

    async def _current_picks(
        self, ctx: Context, poll: Poll, person_id: int | None = None
    ) -> list[int] | None:
        """This person's (or `person_id`'s) unit's ballot (found by its token: the ballot is
        anonymous)."""
        person_id = person_id or ctx.person.id
        row = (
            await ctx.session.execute(polls.eligible_people(poll).where(Person.id == person_id))
        ).first()
        if row is None:
            return None
        unit = f"household:{row[1]}" if poll.per_household else f"person:{person_id}"
        voter = keys.voter_token(self.key(), poll.id, unit) if poll.anonymous else unit
        mask = await ctx.session.scalar(
            select(Ballot.choices).where(Ballot.poll_id == poll.id, Ballot.voter == voter)
        )
        return None if mask is None else ballots.picks_of(int(mask))

    async def start_ballot(
        self, ctx: Context, poll_id: int | None, *, for_resident: int | None = None
    ) -> None:
        """The ballot as this person's unit last cast it, to change; or empty. `for_resident`:
        a proxy's ballot for them, as their unit last cast it."""
        poll = await ctx.session.get(Poll, poll_id) if poll_id is not None else None
        if (
            poll is None
            or poll.purpose != "agenda"
            or poll.status != "open"
            or poll.deadline <= ctx.now
        ):
            ctx.finish()
            ctx.say(
                ctx._("Voting on the council's agenda is not open now. Send /agenda to see why.")
            )
            return
        if for_resident is not None:
            await self._start_proxy_ballot(ctx, poll, for_resident)
            return
        if not await self._eligible(ctx, poll):
            ctx.finish()
            ctx.say(
                ctx._(
                    "Sorry, only registered residents with a home in the community can vote on "
                    "the agenda."
                )
            )
            return
        picked = await self._current_picks(ctx, poll) or []
        self._ask_ballot(ctx, poll, picked)

    async def _start_proxy_ballot(self, ctx: Context, poll: Poll, resident_id: int) -> None:
        """The same ballot, for a resident who asked this person to vote for them; the grant
        is checked again when it is cast (handlers/voting.py vote_for)."""
        allowed = await proxies.residents_for(ctx.session, ctx.person.id, poll, self.rules.timezone)
        resident = await ctx.session.get(Person, resident_id)
        if resident is None or resident_id not in allowed:
            ctx.finish()
            ctx.say(ctx._("You may no longer vote for this resident. Nothing was changed."))
            return
        picked = await self._current_picks(ctx, poll, resident_id)
        if picked is None:
            ctx.finish()
            ctx.say(
                ctx._(
                    "Sorry, {name} has no registered home in the community, so they can't vote "
                    "on the agenda."
                ).format(name=resident.display_name)
            )
            return
        self._ask_ballot(ctx, poll, picked, for_resident=(resident_id, resident.display_name))

    def _ask_ballot(
        self,
        ctx: Context,
        poll: Poll,
        picked: list[int],
        *,
        for_resident: tuple[int, str] | None = None,
    ) -> None:
        """`for_resident`: (id, name) of the resident a proxy votes for."""
        options = [
            (("☑ " if n in picked else "☐ ") + option, str(n))
            for n, option in enumerate(poll.options)
        ]
        options += [(ctx._("Confirm my choice"), CONFIRM), (ctx._("Cancel"), CANCEL)]
        text = ctx._(
            "Choose up to {k} items for the council ({chosen} chosen), then confirm. You can "
            "change your vote until the close."
        ).format(k=poll.max_choices, chosen=len(picked))
        data: dict[str, object] = {"poll": poll.id, "picked": picked, "for": None}
        if for_resident is not None:
            text = "\n".join(
                [
                    ctx._("You are voting for {name}, as they asked.").format(name=for_resident[1]),
                    text,
                ]
            )
            data.update({"for": for_resident[0], "for_name": for_resident[1]})
        ctx.ask(NAME, "ballot", text, options=options, data=data)

    async def step_ballot(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        poll = await ctx.session.get(Poll, int(ctx.data.get("poll", 0)))  # type: ignore[call-overload]
        if poll is None:
            ctx.finish()
            ctx.say(
                ctx._("Voting on the council's agenda is not open now. Send /agenda to see why.")
            )
            return
        picked = [int(n) for n in ctx.data.get("picked", [])]  # type: ignore[union-attr]
        resident = ctx.data.get("for")
        proxied = (
            (resident, str(ctx.data.get("for_name", ""))) if isinstance(resident, int) else None
        )
        if ctx.choice == CONFIRM:
            if not picked:
                ctx.say(ctx._("Choose at least one item, or cancel."))
                self._ask_ballot(ctx, poll, picked, for_resident=proxied)
                return
            ctx.finish()
            if proxied is not None:
                await vote_for(
                    ctx,
                    poll,
                    proxied[0],
                    picked,
                    self.key,
                    self.rules.timezone,
                    points=self.rules.vote_points,
                )
            else:
                await vote(ctx, poll.id, picked, self.key, points=self.rules.vote_points)
            return
        n = int(ctx.choice or 0)
        if n not in picked and len(picked) >= poll.max_choices:
            ctx.say(
                ctx._("You can choose at most {k} items. Remove one first.").format(
                    k=poll.max_choices
                )
            )
        else:
            picked = sorted(set(picked) ^ {n})
        self._ask_ballot(ctx, poll, picked, for_resident=proxied)

    async def on_vote_card(self, ctx: Context, poll_id: int, choice: str) -> None:
        await self.start_ballot(ctx, poll_id)

    # ------------------------------------------------------------------ results and history

    async def _show_month(self, ctx: Context, cycle: AgendaCycle) -> None:
        if cycle.phase != PUBLISHED:
            ctx.say(texts.phase_text(ctx.t, self.rules, cycle, ctx.now))
            return
        card = await self.card.render(ctx.session, ctx.t, cycle)
        # Asked for now, so a new message at the foot of the chat: as the publication's card it
        # would edit that message, days up the chat (Telegram), or not be sent again at all,
        # being unchanged (WeChat).
        ctx.replies.append(replace(card, card=None))
        for item in await followup.council_items_of(ctx.session, cycle.id):
            lines = texts.followup_lines(
                ctx.t, item, await followup.updates(ctx.session, item.id), self.rules
            )
            if lines:
                ctx.say("\n".join([f"#{item.id} {item.title}", *lines]))

    async def _ask_history(self, ctx: Context) -> None:
        months = await followup.history(ctx.session)
        if not months:
            ctx.finish()
            ctx.say(ctx._("No month has been published yet."))
            return
        counts = dict(
            (
                await ctx.session.execute(
                    select(AgendaItem.cycle_id, func.count())
                    .where(AgendaItem.cycle_id.in_([c.id for c in months]), AgendaItem.selected)
                    .group_by(AgendaItem.cycle_id)
                )
            ).all()
        )
        options = [
            (
                ctx.t.ngettext(
                    "{month}: {n} item to the council",
                    "{month}: {n} items to the council",
                    int(counts.get(c.id, 0)),
                ).format(month=c.month, n=int(counts.get(c.id, 0))),
                str(c.id),
            )
            for c in months
        ]
        ctx.ask(NAME, "history", ctx._("Which month?"), options=options)

    async def step_history(self, ctx: Context) -> None:
        ctx.finish()
        cycle = await ctx.session.get(AgendaCycle, int(ctx.choice or 0))
        if cycle is None:
            texts.refuse(ctx, self.rules, Problem.UNKNOWN)
            return
        await self._show_month(ctx, cycle)
