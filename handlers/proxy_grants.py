"""Proxy votes in chat, for staff (`/poll` → "Proxy votes"): an elderly resident without a
phone asks someone (often their building head) to vote for them.

Recording one: the building → the resident (by room and name) → the proxy (the building's
heads first, then its residents) → for which vote (an open poll the resident may vote in, or
this or next month: every poll and the agenda vote) → a summary to confirm. Ending one: the
live grants → one → confirm. Both go through services/voting/proxies.py (staff only there,
audited with the staff member as actor), and the resident and the proxy are told, each in their
language. Names and rooms show, so the flow is private only."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import resident_picker as picker
from handlers.flow import Context, Notifier, Step
from handlers.i18n import N_, Translator
from handlers.messages import Outgoing
from handlers.notices import NoticeKind
from models import Person, Poll, ProxyGrant, Role
from services import people
from services.agenda.rules import next_month
from services.notices import Notice
from services.voting import proxies

NAME = "proxy_grant"
GRANT, REVOKE, CONFIRM = "grant", "revoke", "confirm"
POLL, MONTH = "poll:", "month:"
# At most this many grants a question, as people (handlers/resident_picker.py).
LISTED = picker.LISTED

REFUSALS = {
    proxies.NOT_STAFF: N_("Sorry, only community staff can record or end proxy votes."),
    proxies.OWN_PROXY: N_("A resident can't be their own proxy. Nothing was saved."),
    proxies.NO_POLL: N_("That poll no longer exists. Nothing was saved."),
    proxies.POLL_CLOSED: N_("That poll has closed meanwhile. Nothing was saved."),
    proxies.NOT_ELIGIBLE: N_("That resident can't vote in that poll. Nothing was saved."),
    proxies.NO_PERSON: N_("That person is no longer known here. Nothing was saved."),
    proxies.ALREADY: N_("That proxy vote is already recorded. Nothing was changed."),
}
NOT_RECORDED = N_("The proxy vote could not be recorded. Please start again with /poll.")


def vote_text(t: Translator, poll: Poll | None, month: str | None) -> str:
    """What a grant is for, as it reads inside a sentence ("… may vote for Lao in {what}")."""
    if poll is not None:
        return t.gettext("the poll “{question}”").format(question=poll.question)
    return t.gettext("every poll and the council's agenda vote of {month}").format(month=month)


def _short(poll: Poll | None, month: str | None) -> str:
    return poll.question[:30] if poll is not None else (month or "")


async def _name(session: AsyncSession, person_id: int) -> str:
    person = await session.get(Person, person_id)
    return person.display_name if person is not None and person.display_name else "?"


def proxy_notices() -> dict[str, NoticeKind]:
    """How a grant and its end read, for the resident and for the proxy: names only, never
    rooms (the proxy may be any neighbour)."""

    async def parts(notifier: Notifier, notice: Notice) -> tuple[ProxyGrant, Poll | None]:
        made = await notifier.session.get(ProxyGrant, notice.subject_id)
        assert made is not None
        poll = await notifier.session.get(Poll, made.poll_id) if made.poll_id else None
        return made, poll

    async def granted(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        made, poll = await parts(notifier, notice)
        what = vote_text(t, poll, made.month)
        if notice.person_id == made.proxy_id:
            text = t.gettext(
                "{name} asked you to vote for them, and staff have recorded it: you may vote "
                "for them in {what}. Send /poll, or /agenda for the council's agenda, to vote "
                "for them."
            ).format(name=await _name(notifier.session, made.resident_id), what=what)
        else:
            text = t.gettext(
                "As you asked, staff have recorded that {proxy} may vote for you in {what}. "
                "A ballot they cast for you is marked as cast by proxy."
            ).format(proxy=await _name(notifier.session, made.proxy_id), what=what)
        return Outgoing(text)

    async def revoked(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        made, poll = await parts(notifier, notice)
        what = vote_text(t, poll, made.month)
        if notice.person_id == made.proxy_id:
            text = t.gettext(
                "Staff have ended your proxy for {name}: you may no longer vote for them in {what}."
            ).format(name=await _name(notifier.session, made.resident_id), what=what)
        else:
            text = t.gettext(
                "Staff have ended the proxy: {proxy} may no longer vote for you in {what}."
            ).format(proxy=await _name(notifier.session, made.proxy_id), what=what)
        return Outgoing(text)

    return {proxies.GRANTED: NoticeKind(granted), proxies.REVOKED: NoticeKind(revoked)}


class ProxyGrantFlow(picker.PickingFlow):
    """Reached from /poll by staff (handlers/voting.py); no command of its own."""

    name = NAME
    roles: ClassVar[frozenset[Role] | None] = frozenset({Role.STAFF})
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {
        "action": Step(ask="_ask_action"),
        "building": Step(ask="_ask_building"),
        "resident": Step(ask="_ask_resident", text=True),
        "proxy": Step(ask="_ask_proxy", text=True),
        "vote": Step(ask="_ask_vote"),
        "confirm": Step(ask="_ask_confirm"),
        "grants": Step(ask="_ask_grants"),
        "end": Step(ask="_ask_end"),
    }

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone

    async def begin(self, ctx: Context, args: str) -> None:
        if not await proxies.may_manage(ctx.session, ctx.person.id):
            ctx.finish()
            ctx.say(ctx._(REFUSALS[proxies.NOT_STAFF]))
            return
        self._ask_action(ctx)

    def _ask_action(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "action",
            ctx._(
                "Proxy votes: a resident without a phone can ask someone to vote for them. "
                "What would you like to do?"
            ),
            [(ctx._("Record a proxy vote"), GRANT), (ctx._("End a proxy vote"), REVOKE)],
        )

    async def step_action(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        if ctx.choice == REVOKE:
            await self._ask_grants(ctx)
        else:
            await self._ask_building(ctx)

    # ------------------------------------------------------------------ recording a grant

    async def _ask_building(self, ctx: Context) -> None:
        await self._ask_which_building(ctx, ctx._("Which building does the resident live in?"))

    async def _ask_resident(self, ctx: Context, room: str | None = None) -> None:
        nobody = ctx._(
            "Nobody is registered in {building} yet. A resident needs a registered home in the "
            "community (joined with an invite) before someone can vote for them."
        )
        found = await self._residents(ctx, room, nobody)
        if found is None:
            return
        building, options, cut = found
        question = ctx._(
            "Who asked for a proxy? The residents of {building}, by room. You can also "
            "type a room number."
        ).format(building=building.name)
        self._ask_someone(ctx, "resident", question, room, options, cut)

    async def _after_resident(self, ctx: Context) -> None:
        await self._ask_proxy(ctx)

    async def _ask_proxy(self, ctx: Context, room: str | None = None) -> None:
        building = await self._building(ctx)
        resident_id = int(ctx.data.get("resident", 0))  # type: ignore[call-overload]
        if building is None:
            await self._ask_building(ctx)
            return
        heads = [
            p for p in await people.building_heads(ctx.session, building.id) if p.id != resident_id
        ]
        options = (
            [
                (ctx._("{name} (building head)").format(name=p.display_name), str(p.id))
                for p in heads
            ]
            if room is None
            else []
        )
        neighbours, cut = await picker.people_options(
            ctx, building.id, room, {resident_id, *(p.id for p in heads)}
        )
        options += neighbours
        question = ctx._(
            "Who will vote for {name}? The building heads of {building} first, then its "
            "residents. You can also type a room number."
        ).format(name=await _name(ctx.session, resident_id), building=building.name)
        self._ask_someone(ctx, "proxy", question, room, options, cut)

    def _ask_someone(
        self,
        ctx: Context,
        step: str,
        asked: str,
        room: str | None,
        options: list[tuple[str, str]],
        cut: bool,
    ) -> None:
        """A person to pick: the listed ones, or whoever lives in the room typed."""
        self._ask(ctx, step, picker.question(ctx, asked, room, options, cut), options)

    async def step_proxy(self, ctx: Context) -> None:
        room = picker.typed_room(ctx)
        if room is not None:
            await self._ask_proxy(ctx, room)
            return
        if await self._unanswered(ctx):
            return
        ctx.data["proxy"] = int(ctx.choice or 0)
        await self._ask_vote(ctx)

    def _month(self, now: datetime) -> str:
        return now.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m")

    async def _ask_vote(self, ctx: Context) -> None:
        resident_id = int(ctx.data.get("resident", 0))  # type: ignore[call-overload]
        this = self._month(ctx.now)
        options = [
            (ctx._("Poll: {question}").format(question=p.question[:40]), f"{POLL}{p.id}")
            for p in await proxies.open_polls_for(ctx.session, resident_id, ctx.now)
        ]
        options += [
            (ctx._("This month ({month})").format(month=this), f"{MONTH}{this}"),
            (
                ctx._("Next month ({month})").format(month=next_month(this)),
                MONTH + next_month(this),
            ),
        ]
        self._ask(
            ctx,
            "vote",
            ctx._(
                "For which vote? One open poll, or a month: every poll and the council's "
                "agenda vote of that month."
            ),
            options,
        )

    async def step_vote(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        ctx.data["vote"] = ctx.choice
        await self._ask_confirm(ctx)

    async def _ask_confirm(self, ctx: Context) -> None:
        resident = await people.with_household(ctx.session, int(ctx.data.get("resident", 0)))  # type: ignore[call-overload]
        poll_id, month = _vote_of(ctx.data)
        poll = await ctx.session.get(Poll, poll_id) if poll_id is not None else None
        building = people.building_of(resident) if resident is not None else None
        home = resident.household if resident is not None else None
        lines = [
            ctx._("Please check the proxy vote:"),
            ctx._("Resident: {name}, {building}, room {room}").format(
                name=resident.display_name if resident is not None else "?",
                building=building.name if building is not None else "?",
                room=home.room if home is not None else "?",
            ),
            ctx._("Votes for them: {proxy}").format(
                proxy=await _name(ctx.session, int(ctx.data.get("proxy", 0)))  # type: ignore[call-overload]
            ),
            ctx._("In: {what}").format(what=vote_text(ctx.t, poll, month)),
        ]
        self._ask(ctx, "confirm", "\n".join(lines), [(ctx._("Record it"), CONFIRM)])

    async def step_confirm(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        data = ctx.finish()
        poll_id, month = _vote_of(data)
        resident_id, proxy_id = int(data.get("resident", 0)), int(data.get("proxy", 0))  # type: ignore[call-overload]
        try:
            made = await proxies.grant(
                ctx.session,
                resident_id,
                proxy_id,
                ctx.now,
                poll_id=poll_id,
                month=month,
                by=ctx.person.id,
            )
        except proxies.ProxyProblem as problem:
            ctx.say(ctx._(REFUSALS.get(problem.reason, NOT_RECORDED)))
            return
        await ctx.deliver(proxies.told(made, proxies.GRANTED))
        poll = await ctx.session.get(Poll, poll_id) if poll_id is not None else None
        ctx.say(
            ctx._("Recorded: {proxy} may vote for {name} in {what}. Both of them are told.").format(
                proxy=await _name(ctx.session, proxy_id),
                name=await _name(ctx.session, resident_id),
                what=vote_text(ctx.t, poll, month),
            )
        )

    # ------------------------------------------------------------------ ending a grant

    async def _grant_line(self, ctx: Context, made: ProxyGrant, *, short: bool) -> str:
        poll = await ctx.session.get(Poll, made.poll_id) if made.poll_id else None
        what = _short(poll, made.month) if short else vote_text(ctx.t, poll, made.month)
        return ctx._("{name} → {proxy}: {what}").format(
            name=await _name(ctx.session, made.resident_id),
            proxy=await _name(ctx.session, made.proxy_id),
            what=what,
        )

    async def _usable(self, ctx: Context, made: ProxyGrant) -> bool:
        """A grant that still has something to vote in: its poll is open, or its month is not
        over."""
        if made.poll_id is not None:
            poll = await ctx.session.get(Poll, made.poll_id)
            return poll is not None and poll.status == "open" and poll.deadline > ctx.now
        return (made.month or "") >= self._month(ctx.now)

    async def _ask_grants(self, ctx: Context) -> None:
        grants = [g for g in await proxies.live(ctx.session) if await self._usable(ctx, g)]
        if not grants:
            ctx.finish()
            ctx.say(ctx._("No proxy votes are recorded now."))
            return
        options = [(await self._grant_line(ctx, g, short=True), str(g.id)) for g in grants[:LISTED]]
        self._ask(ctx, "grants", ctx._("Which proxy vote should end?"), options)

    async def step_grants(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        ctx.data["grant"] = int(ctx.choice or 0)
        await self._ask_end(ctx)

    async def _ask_end(self, ctx: Context) -> None:
        made = await ctx.session.get(ProxyGrant, int(ctx.data.get("grant", 0)))  # type: ignore[call-overload]
        if made is None:
            ctx.finish()
            ctx.say(ctx._("That proxy vote has already ended. Nothing was changed."))
            return
        text = "\n".join(
            [ctx._("End this proxy vote?"), await self._grant_line(ctx, made, short=False)]
        )
        self._ask(ctx, "end", text, [(ctx._("End it"), CONFIRM)])

    async def step_end(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        grant_id = int(ctx.data.get("grant", 0))  # type: ignore[call-overload]
        ctx.finish()
        made = await ctx.session.get(ProxyGrant, grant_id)
        if made is None or made.revoked_at is not None:
            ctx.say(ctx._("That proxy vote has already ended. Nothing was changed."))
            return
        try:
            ended = await proxies.revoke(
                ctx.session,
                made.resident_id,
                made.proxy_id,
                ctx.now,
                by=ctx.person.id,
                grant_id=made.id,
            )
        except proxies.ProxyProblem as problem:
            ctx.say(ctx._(REFUSALS.get(problem.reason, NOT_RECORDED)))
            return
        if not ended:
            ctx.say(ctx._("That proxy vote has already ended. Nothing was changed."))
            return
        await ctx.deliver(proxies.told(made, proxies.REVOKED))
        poll = await ctx.session.get(Poll, made.poll_id) if made.poll_id else None
        ctx.say(
            ctx._(
                "Ended: {proxy} may no longer vote for {name} in {what}. Both of them are told."
            ).format(
                proxy=await _name(ctx.session, made.proxy_id),
                name=await _name(ctx.session, made.resident_id),
                what=vote_text(ctx.t, poll, made.month),
            )
        )


def _vote_of(data: dict[str, object]) -> tuple[int | None, str | None]:
    vote = str(data.get("vote") or "")
    if vote.startswith(POLL):
        return int(vote.removeprefix(POLL) or 0), None
    return None, vote.removeprefix(MONTH) or None
