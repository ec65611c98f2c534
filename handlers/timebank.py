"""`/timebank` (时间银行): ask neighbours for help, help a neighbour, confirm the time help took;
for staff also marking the elderly residents whom the pool covers (services/points/timebank.py).

Who asked shows to a volunteer only once they take the request (name, building and room, to
find them); the open list shows what is asked, the estimate and the building."""

from __future__ import annotations

from typing import ClassVar

from handlers import resident_picker as picker
from handlers.flow import CancellableFlow, Context, Notifier, Step
from handlers.i18n import N_, Translator
from handlers.messages import Outgoing
from handlers.notices import NoticeKind
from handlers.reports.rules import REPORTER_ROLES
from handlers.resident_picker import PickingFlow
from models import Building, Person, Role, TimebankRequest
from services import people
from services.notices import Notice
from services.points import ledger, timebank
from services.points.ledger import MINUTES

ASK, HELP, MINE, ELDER, CONFIRM = "ask", "help", "mine", "elder", "confirm"
DONE, CANCEL_REQUEST, WITHDRAW = "done:", "drop:", "withdraw:"
TIMES = (30, 60, 90, 120, 180)
# Notices: to the requester when a volunteer takes or leaves their request; to the volunteer
# when the requester cancels or confirms; to a resident whom staff marked for the pool.
TAKEN, LEFT, CANCELLED, CONFIRMED, COVERED = (
    "timebank.taken",
    "timebank.left",
    "timebank.cancelled",
    "timebank.confirmed",
    "timebank.covered",
)


def duration(t: Translator, minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return t.gettext("{m} min").format(m=rest)
    if not rest:
        return t.gettext("{h} h").format(h=hours)
    return t.gettext("{h} h {m} min").format(h=hours, m=rest)


def typed_minutes(ctx: Context) -> int | None:
    """A time pressed (a button's minutes) or typed as minutes ("75")."""
    if ctx.choice is not None:
        return int(ctx.choice) if ctx.choice.isdigit() else None
    typed = ctx.typed
    return int(typed) if typed.isdigit() else None


async def where_they_live(ctx: Context | Notifier, t: Translator, person_id: int) -> str:
    person = await people.with_household(ctx.session, person_id)
    if person is None or person.household is None:
        return ""
    building = people.building_of(person)
    return t.gettext("{building}, room {room}").format(
        building=building.name if building else "", room=person.household.room
    )


class TimeBankFlow(CancellableFlow):
    name = "timebank"
    command = "timebank"
    description = N_("Time bank: ask neighbours for help, or help them")
    roles = REPORTER_ROLES
    private_only = True
    steps: ClassVar[dict[str, Step]] = {
        "menu": Step(ask="_menu"),
        "what": Step(ask="_ask_what", text=True),
        "estimate": Step(ask="_ask_estimate", text=True),
        "post": Step(ask="_ask_post"),
        "pick": Step(ask="_ask_pick"),
        "take": Step(),
        "mine": Step(ask="_ask_mine"),
        "real": Step(ask="_ask_real", text=True),
        "settle": Step(),
    }

    def __init__(self, policy: timebank.Policy) -> None:
        self.policy = policy
        self.elders = ElderFlow(policy)

    async def begin(self, ctx: Context, args: str) -> None:
        await self._menu(ctx)

    async def _menu(self, ctx: Context) -> None:
        means = await timebank.means(ctx.session, ctx.person.id, ctx.now, self.policy)
        waiting = await timebank.count_open(ctx.session, leave_out=ctx.person.id)
        lines = [
            ctx._(
                "Time bank: neighbours help neighbours. An hour you give is an hour you can ask "
                "for later."
            ),
            ctx._("Your minutes: {minutes}").format(minutes=means.own),
        ]
        if means.elder:
            lines.append(
                ctx._("The community covers up to {left} more of your help this month.").format(
                    left=duration(ctx.t, means.cover)
                )
            )
        options = [
            (ctx._("Ask for help"), ASK),
            (ctx._("Help a neighbour ({n} waiting)").format(n=waiting), HELP),
        ]
        if await timebank.involving(ctx.session, ctx.person.id):
            options.append((ctx._("My requests and help"), MINE))
        if (await ctx.roles()).may_use(frozenset({Role.STAFF})):
            options.append((ctx._("Elderly residents the pool covers"), ELDER))
        self._ask(ctx, "menu", "\n".join(lines), options)

    async def step_menu(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        if ctx.choice == ASK:
            await self._ask_what(ctx)
        elif ctx.choice == HELP:
            await self._ask_pick(ctx)
        elif ctx.choice == MINE:
            await self._ask_mine(ctx)
        elif ctx.choice == ELDER and (await ctx.roles()).may_use(frozenset({Role.STAFF})):
            ctx.abandon()  # answered: the staff flow does not come back to this menu
            await self.elders.begin(ctx, "")
        else:
            await self._menu(ctx)

    # --- Asking for help ------------------------------------------------------------------

    async def _ask_what(self, ctx: Context) -> None:
        means = await timebank.means(ctx.session, ctx.person.id, ctx.now, self.policy)
        if means.total < TIMES[0]:
            ctx.finish()
            ctx.say(
                ctx._(
                    "You have {minutes} minutes, and help is paid in minutes: help a neighbour "
                    "first, and the time you give is yours to ask for."
                ).format(minutes=means.own)
            )
            return
        self._ask(
            ctx,
            "what",
            ctx._(
                "What do you need help with? For example: company to the clinic on Tuesday "
                "morning, or carrying groceries upstairs."
            ),
            [],
        )

    async def step_what(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        what = " ".join(ctx.typed.split())
        if not what or len(what) > timebank.MAX_WHAT:
            ctx.say(
                ctx._("Please describe it in 1 to {most} characters.").format(
                    most=timebank.MAX_WHAT
                )
            )
            await self._ask_what(ctx)
            return
        ctx.data["what"] = what
        await self._ask_estimate(ctx)

    def _time_options(self, ctx: Context) -> list[tuple[str, str]]:
        return [(duration(ctx.t, minutes), str(minutes)) for minutes in TIMES]

    async def _ask_estimate(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "estimate",
            ctx._("About how long will it take? Choose, or type the minutes."),
            self._time_options(ctx),
        )

    async def _minutes(self, ctx: Context) -> int | None:
        """A time chosen or typed; else None, the person told and the question asked again."""
        if ctx.cancelled():
            return None
        minutes = typed_minutes(ctx)
        if minutes is not None and 0 < minutes <= timebank.MAX_MINUTES:
            return minutes
        ctx.say(
            ctx._("Please choose a time, or type the minutes (1 to {most}).").format(
                most=timebank.MAX_MINUTES
            )
        )
        await self.ask_again(ctx)
        return None

    async def step_estimate(self, ctx: Context) -> None:
        minutes = await self._minutes(ctx)
        if minutes is None:
            return
        ctx.data["estimate"] = minutes
        await self._ask_post(ctx)

    async def _ask_post(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "post",
            ctx._(
                "Ask the neighbours for: {what} (about {time})? When a volunteer takes it, you "
                "see their name and they see yours and your room."
            ).format(what=ctx.data["what"], time=duration(ctx.t, int(ctx.data["estimate"]))),  # type: ignore[call-overload]
            [(ctx._("Ask"), CONFIRM)],
        )

    async def step_post(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        data = ctx.finish()
        posted = await timebank.post(
            ctx.session,
            ctx.person.id,
            str(data["what"]),
            int(data["estimate"]),  # type: ignore[call-overload]
            ctx.now,
            self.policy,
        )
        if posted is timebank.Refusal.TOO_FEW_MINUTES:
            means = await timebank.means(ctx.session, ctx.person.id, ctx.now, self.policy)
            ctx.say(
                ctx._(
                    "That is more time than you have: {minutes} minutes. Ask for less, or help "
                    "a neighbour first."
                ).format(minutes=means.total)
            )
            return
        assert isinstance(posted, TimebankRequest)
        ctx.say(
            ctx._("Asked (request #{id}). We will tell you here when a neighbour takes it.").format(
                id=posted.id
            )
        )

    # --- Helping --------------------------------------------------------------------------

    async def _ask_pick(self, ctx: Context) -> None:
        found = await timebank.open_requests(ctx.session, leave_out=ctx.person.id)
        if not found:
            ctx.finish()
            ctx.say(ctx._("Nobody is waiting for help right now. Thank you for asking!"))
            return
        lines = [ctx._("Neighbours waiting for help:")]
        for request in found:
            lines.append(
                ctx._("#{id} {what}, about {time} ({building})").format(
                    id=request.id,
                    what=request.what,
                    time=duration(ctx.t, request.estimate_minutes),
                    building=await self._building(ctx, request.requester_id),
                )
            )
        self._ask(
            ctx,
            "pick",
            "\n".join(lines),
            [(ctx._("Help with #{id}").format(id=r.id), str(r.id)) for r in found],
        )

    @staticmethod
    async def _building(ctx: Context, person_id: int) -> str:
        person = await people.with_household(ctx.session, person_id)
        building = people.building_of(person) if person is not None else None
        return building.name if isinstance(building, Building) else ""

    async def step_pick(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        request = await ctx.session.get(TimebankRequest, int(ctx.choice or 0))
        if request is None or request.status != timebank.OPEN:
            ctx.say(ctx._("Someone else has just taken that one."))
            await self._ask_pick(ctx)
            return
        self._ask(
            ctx,
            "take",
            ctx._(
                "Help with #{id}: {what} (about {time})? You will see who asked and where they "
                "live, and they will see your name."
            ).format(
                id=request.id,
                what=request.what,
                time=duration(ctx.t, request.estimate_minutes),
            ),
            [(ctx._("I'll help"), str(request.id))],
        )

    async def step_take(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        ctx.finish()
        taken = await timebank.accept(ctx.session, int(ctx.choice or 0), ctx.person.id, ctx.now)
        if not isinstance(taken, TimebankRequest):
            ctx.say(
                ctx._("That is your own request.")
                if taken is timebank.Refusal.OWN
                else ctx._("Someone else has just taken that one. Thank you all the same!")
            )
            return
        requester = await ctx.session.get(Person, taken.requester_id)
        ctx.say(
            ctx._(
                "Thank you! {name} ({where}) asked for: {what}. Please get in touch with them; "
                "when it is done they confirm the time, and the minutes are yours."
            ).format(
                name=requester.display_name if requester else "",
                where=await where_they_live(ctx, ctx.t, taken.requester_id),
                what=taken.what,
            )
        )
        await ctx.deliver([Notice(taken.requester_id, TAKEN, subject_id=taken.id)])

    # --- Requests under way ----------------------------------------------------------------

    async def _ask_mine(self, ctx: Context) -> None:
        found = await timebank.involving(ctx.session, ctx.person.id)
        if not found:
            ctx.finish()
            ctx.say(ctx._("You have no requests or help under way."))
            return
        lines, options = [], []
        for request in found:
            time = duration(ctx.t, request.estimate_minutes)
            if request.requester_id != ctx.person.id:
                lines.append(
                    ctx._("You help with #{id}: {what} (about {time}).").format(
                        id=request.id, what=request.what, time=time
                    )
                )
                options.append(
                    (
                        ctx._("I can't help with #{id}").format(id=request.id),
                        f"{WITHDRAW}{request.id}",
                    )
                )
                continue
            if request.status == timebank.ACCEPTED:
                volunteer = await ctx.session.get(Person, request.volunteer_id or 0)
                lines.append(
                    ctx._("#{id} {what}: {name} is helping.").format(
                        id=request.id,
                        what=request.what,
                        name=volunteer.display_name if volunteer else "",
                    )
                )
                options.append(
                    (ctx._("Done: confirm #{id}").format(id=request.id), f"{DONE}{request.id}")
                )
            else:
                lines.append(
                    ctx._("#{id} {what}: waiting for a volunteer.").format(
                        id=request.id, what=request.what
                    )
                )
            options.append(
                (ctx._("Cancel #{id}").format(id=request.id), f"{CANCEL_REQUEST}{request.id}")
            )
        self._ask(ctx, "mine", "\n".join(lines), options)

    async def step_mine(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        choice = ctx.choice or ""
        for prefix in (DONE, CANCEL_REQUEST, WITHDRAW):
            if choice.startswith(prefix) and choice.removeprefix(prefix).isdigit():
                request_id = int(choice.removeprefix(prefix))
                break
        else:
            await self._ask_mine(ctx)
            return
        if prefix == DONE:
            ctx.data["request"] = request_id
            await self._ask_real(ctx)
            return
        ctx.finish()
        if prefix == WITHDRAW:
            left = await timebank.withdraw(ctx.session, request_id, ctx.person.id)
            if left is None:
                ctx.say(ctx._("That request has changed meanwhile. Nothing was changed."))
                return
            ctx.say(
                ctx._("Understood: #{id} is open again for other neighbours.").format(id=left.id)
            )
            await ctx.deliver(
                [
                    Notice(
                        left.requester_id,
                        LEFT,
                        subject_id=left.id,
                        params={"volunteer": ctx.person.id},
                    )
                ]
            )
            return
        cancelled = await timebank.cancel(ctx.session, request_id, ctx.person.id, ctx.now)
        if cancelled is None:
            ctx.say(ctx._("That request has changed meanwhile. Nothing was changed."))
            return
        request, volunteer = cancelled
        ctx.say(ctx._("Request #{id} is cancelled.").format(id=request.id))
        if volunteer is not None:
            await ctx.deliver([Notice(volunteer, CANCELLED, subject_id=request.id)])

    async def _ask_real(self, ctx: Context) -> None:
        request = await ctx.session.get(TimebankRequest, int(ctx.data["request"]))  # type: ignore[call-overload]
        assert request is not None
        self._ask(
            ctx,
            "real",
            ctx._(
                "#{id} {what}: how long did the help take? Choose, or type the minutes. That "
                "many minutes go from you to your helper."
            ).format(id=request.id, what=request.what),
            self._time_options(ctx),
        )

    async def step_real(self, ctx: Context) -> None:
        minutes = await self._minutes(ctx)
        if minutes is None:
            return
        ctx.data["minutes"] = minutes
        request = await ctx.session.get(TimebankRequest, int(ctx.data["request"]))  # type: ignore[call-overload]
        volunteer = await ctx.session.get(Person, request.volunteer_id or 0) if request else None
        self._ask(
            ctx,
            "settle",
            ctx._("Confirm {time} of help from {name}?").format(
                time=duration(ctx.t, minutes), name=volunteer.display_name if volunteer else ""
            ),
            [(ctx._("Confirm"), CONFIRM)],
        )

    async def step_settle(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        data = ctx.finish()
        request_id = int(data["request"])  # type: ignore[call-overload]
        minutes = int(data["minutes"])  # type: ignore[call-overload]
        done = await timebank.complete(
            ctx.session, request_id, ctx.person.id, minutes, ctx.now, self.policy
        )
        if done is timebank.Refusal.OVERDRAWN:
            ctx.say(ctx._("Your minutes changed meanwhile. Please confirm again in /timebank."))
            return
        if not isinstance(done, timebank.Completed):
            ctx.say(ctx._("That request has changed meanwhile. Nothing was changed."))
            return
        lines = [ctx._("Thank you! {paid} minutes went to your helper.").format(paid=done.paid)]
        if done.pool:
            lines.append(
                ctx._("The community covered {pool} of them.").format(
                    pool=duration(ctx.t, done.pool)
                )
            )
        if done.paid < minutes:
            lines.append(
                ctx._(
                    "You had {paid} of the {minutes} minutes; your helper was paid what there "
                    "was, and earned their points for all of it."
                ).format(paid=done.paid, minutes=minutes)
            )
        balance = await ledger.balance(ctx.session, ctx.person.id, MINUTES)
        lines.append(ctx._("Your minutes: {minutes}").format(minutes=balance))
        ctx.say("\n".join(lines))
        assert done.request.volunteer_id is not None
        await ctx.deliver(
            [
                Notice(
                    done.request.volunteer_id,
                    CONFIRMED,
                    subject_id=request_id,
                    params={"minutes": minutes, "paid": done.paid, "points": done.points},
                )
            ]
        )


class ElderFlow(PickingFlow):
    """Staff mark the elderly residents whose help the pool covers (from the /timebank menu)."""

    name = "timebank_elder"
    roles: ClassVar[frozenset[Role] | None] = frozenset({Role.STAFF})
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {
        "building": Step(ask="_ask_building"),
        "resident": Step(ask="_ask_resident", text=True),
        "confirm": Step(ask="_ask_confirm"),
    }

    def __init__(self, policy: timebank.Policy) -> None:
        self.policy = policy

    async def begin(self, ctx: Context, args: str) -> None:
        await self._ask_building(ctx)

    async def _ask_building(self, ctx: Context) -> None:
        await self._ask_which_building(
            ctx,
            ctx._(
                "The pool covers an elderly resident's time-bank help, up to {cap} a month. "
                "Which building do they live in?"
            ).format(cap=duration(ctx.t, self.policy.elder_monthly_minutes)),
        )

    async def _ask_resident(self, ctx: Context, room: str | None = None) -> None:
        found = await self._residents(ctx, room, ctx._("Nobody is registered in {building} yet."))
        if found is None:
            return
        _, options, cut = found
        covered = {
            str(person_id)
            for person_id in [int(value) for _, value in options]
            if await timebank.is_elder(ctx.session, person_id)
        }
        options = [
            (
                ctx._("{resident} ✓ covered").format(resident=label) if value in covered else label,
                value,
            )
            for label, value in options
        ]
        asked = ctx._("Whom? ✓ marks those covered now. You can also type a room number.")
        self._ask(ctx, "resident", picker.question(ctx, asked, room, options, cut), options)

    async def _after_resident(self, ctx: Context) -> None:
        await self._ask_confirm(ctx)

    async def _ask_confirm(self, ctx: Context) -> None:
        resident = await self._chosen(ctx)
        if resident is None:
            return
        if await timebank.is_elder(ctx.session, resident.id):
            text = ctx._("The pool covers {name}'s help now. Stop covering it?")
            option = ctx._("Stop covering")
        else:
            text = ctx._("Cover {name}'s time-bank help from the pool, up to {cap} a month?")
            option = ctx._("Cover")
        self._ask(
            ctx,
            "confirm",
            text.format(
                name=resident.display_name,
                cap=duration(ctx.t, self.policy.elder_monthly_minutes),
            ),
            [(option, CONFIRM)],
        )

    async def step_confirm(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        resident = await self._chosen(ctx)
        if resident is None:
            return
        ctx.finish()
        resident_id = resident.id
        elder = not await timebank.is_elder(ctx.session, resident_id)
        await timebank.mark_elder(ctx.session, resident_id, elder, ctx.now, actor_id=ctx.person.id)
        ctx.say(
            ctx._("Done: the pool covers their help now.")
            if elder
            else ctx._("Done: the pool no longer covers their help.")
        )
        if elder:
            await ctx.deliver(
                [Notice(resident_id, COVERED, params={"cap": self.policy.elder_monthly_minutes})]
            )


def timebank_notices() -> dict[str, NoticeKind]:
    async def request_of(notifier: Notifier, notice: Notice) -> TimebankRequest:
        found = await notifier.session.get(TimebankRequest, notice.subject_id)
        assert found is not None
        return found

    async def name_of(notifier: Notifier, person_id: int | None) -> str:
        person = await notifier.session.get(Person, person_id or 0)
        return person.display_name if person else ""

    async def taken(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        request = await request_of(notifier, notice)
        return Outgoing(
            t.gettext(
                "{name} will help you with: {what}. When it is done, send /timebank and "
                "confirm the time it took."
            ).format(name=await name_of(notifier, request.volunteer_id), what=request.what)
        )

    async def left(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        request = await request_of(notifier, notice)
        return Outgoing(
            t.gettext(
                "{name} cannot help with \u201c{what}\u201d after all. Your request is open "
                "again for other neighbours."
            ).format(name=await name_of(notifier, notice.params["volunteer"]), what=request.what)
        )

    async def cancelled(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        request = await request_of(notifier, notice)
        return Outgoing(
            t.gettext("{name} no longer needs help with: {what}. Thank you all the same.").format(
                name=await name_of(notifier, request.requester_id), what=request.what
            )
        )

    async def confirmed(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        request = await request_of(notifier, notice)
        lines = [
            t.gettext("{name} confirmed {time} of your help with: {what}.").format(
                name=await name_of(notifier, request.requester_id),
                time=duration(t, int(notice.params["minutes"])),
                what=request.what,
            ),
            t.gettext("You received {paid} minutes.").format(paid=notice.params["paid"]),
        ]
        if int(notice.params["points"]):
            lines.append(
                t.gettext("And {points} points for volunteering.").format(
                    points=notice.params["points"]
                )
            )
        balance = await ledger.balance(notifier.session, notice.person_id, MINUTES)
        lines.append(t.gettext("Your minutes: {minutes}").format(minutes=balance))
        return Outgoing("\n".join(lines))

    async def covered(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        return Outgoing(
            t.gettext(
                "The community now covers your time-bank help, up to {cap} a month. Send "
                "/timebank to ask neighbours for help."
            ).format(cap=duration(t, int(notice.params["cap"])))
        )

    return {
        TAKEN: NoticeKind(taken),
        LEFT: NoticeKind(left),
        CANCELLED: NoticeKind(cancelled),
        CONFIRMED: NoticeKind(confirmed),
        COVERED: NoticeKind(covered),
    }
