"""`/points`: a resident's balance in each unit and the last entries, with what earned or took
them, in their own language; `/award`: staff award points by hand (services/points/)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import resident_picker as picker
from handlers.flow import Context, Flow, Notifier, Step
from handlers.i18n import N_, Catalogs, Translator
from handlers.messages import Outgoing
from handlers.notices import NoticeKind, NoticeKinds
from handlers.reports.rules import REPORTER_ROLES
from models import Building, Role
from services.notices import Notice
from services.points import awards, leaderboard, ledger, statements
from services.points.ledger import MINUTES, POINTS

LATEST = 10
# Each reason code (services/points/awards.py RULES, rewards.py, ledger.py) as residents read it.
REASONS = {
    "report.accepted": N_("Report accepted"),
    "poll.vote": N_("Vote cast"),
    "agenda.selected": N_("Proposal selected for the council"),
    "timebank.volunteer": N_("Volunteer hour"),
    "sorting.day": N_("Garbage-sorting day"),
    "registration.first": N_("First registration"),
    "staff.award": N_("Awarded by staff"),
    "award.withdrawn": N_("Award taken back"),
    "reward.redeemed": N_("Reward redeemed"),
    "reward.expired": N_("Reward not collected: points returned"),
    "reversal": N_("Correction"),
}
OTHER = N_("Other")


class PointsFlow(Flow):
    name = "points"
    command = "points"
    description = N_("Your points and what earned them")
    roles = REPORTER_ROLES
    private_only = True
    steps: ClassVar[dict[str, Step]] = {"top": Step()}

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    async def begin(self, ctx: Context, args: str) -> None:
        if args.strip().lower() == "top":
            await self._top(ctx)
            return
        points = await ledger.balance(ctx.session, ctx.person.id, POINTS)
        minutes = await ledger.balance(ctx.session, ctx.person.id, MINUTES)
        lines = [ctx._("Your points: {points}").format(points=points)]
        if minutes:
            lines.append(ctx._("Time bank: {minutes} minutes").format(minutes=minutes))
        latest = await ledger.history(ctx.session, ctx.person.id, limit=LATEST)
        if not latest:
            lines.append(
                ctx._(
                    "Nothing yet. Points come with reports that are accepted, votes and "
                    "volunteering."
                )
            )
            ctx.say("\n".join(lines))
            return
        lines.append("")
        lines.append(ctx._("Latest:"))
        for line in latest:
            when = line.at.astimezone(self.zone).strftime("%m-%d")
            what = ctx._(REASONS.get(line.reason, OTHER))
            if line.note:
                what = ctx._("{reason}: {note}").format(reason=what, note=line.note)
            amount = f"{line.amount:+d}"
            if line.unit == MINUTES:
                amount = ctx._("{amount} min").format(amount=amount)
            lines.append(f"{when}  {amount}  {what}")
        lines += ["", ctx._("Send /points top for your building's leaderboard.")]
        ctx.say("\n".join(lines))

    async def _top(self, ctx: Context) -> None:
        local = ctx.now.astimezone(self.zone)
        month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        board = await leaderboard.board(
            ctx.session, ctx.person.id, month_start, ctx.now + timedelta(seconds=1)
        )
        if board is None:
            ctx.finish()
            ctx.say(ctx._("The leaderboard is for residents with a home in the community."))
            return
        building = await ctx.session.get(Building, board.building_id)
        lines = [
            ctx._("{building}: points earned this month").format(
                building=building.name if building else ""
            )
        ]
        if not board.named:
            lines.append(ctx._("Nobody has chosen to be named yet."))
        for rank, (name, earned, _) in enumerate(board.named, 1):
            lines.append(f"{rank}. {name}  {earned}")
        if board.others:
            lines.append(
                ctx._("And {count} more who earned points and are not named.").format(
                    count=board.others
                )
            )
        if board.opted_in:
            if board.own_rank is not None:
                lines.append(ctx._("You are number {rank}.").format(rank=board.own_rank))
            option = (ctx._("Hide my name"), HIDE)
        else:
            lines.append(ctx._("Only those who choose to are named here."))
            option = (ctx._("Show my name"), SHOW)
        ctx.ask(self.name, "top", "\n".join(lines), options=[option])

    async def step_top(self, ctx: Context) -> None:
        if ctx.choice not in (SHOW, HIDE):
            await self._top(ctx)
            return
        await leaderboard.opt(ctx.session, ctx.person.id, ctx.choice == SHOW, ctx.now)
        ctx.say(
            ctx._("Your name now shows on your building's leaderboard.")
            if ctx.choice == SHOW
            else ctx._("Your name no longer shows on the leaderboard; you are only counted.")
        )
        await self._top(ctx)


SHOW, HIDE = "show", "hide"
AWARDED = "points.awarded"  # to the resident: points awarded by staff
OTHER_AMOUNT, CONFIRM = "amount", "confirm"
RULE = "rule:"
MAX_AMOUNT = 100_000
MAX_NOTE = 500


def points_notices() -> dict[str, NoticeKind]:
    async def awarded(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        amount, note = int(notice.params["amount"]), str(notice.params["note"])
        balance = await ledger.balance(notifier.session, notice.person_id, POINTS)
        return Outgoing(
            t.gettext("You were awarded {amount} points: {note}\nYour points: {balance}").format(
                amount=amount, note=note, balance=balance
            )
        )

    async def statement(notifier: Notifier, t: Translator, notice: Notice) -> Outgoing:
        balance = await ledger.balance(notifier.session, notice.person_id, POINTS)
        return Outgoing(
            t.gettext(
                "Your points in {month}: {earned} earned, {spent} spent.\nYour points now: "
                "{balance}. Send /points for the details."
            ).format(
                month=notice.params["month"],
                earned=notice.params["earned"],
                spent=notice.params["spent"],
                balance=balance,
            )
        )

    return {AWARDED: NoticeKind(awarded), statements.STATEMENT: NoticeKind(statement)}


@dataclass
class StatementJob:
    """The scheduler's tick: last month's statements, each sent once (services/points/
    statements.py), rendered in each reader's language."""

    catalogs: Catalogs
    default_locale: str
    kinds: NoticeKinds
    timezone: str
    # The month whose statements are all out: the tick runs every few seconds, and reading a
    # month of entries again each time would find nothing new (no entry lands in a past month).
    _done_month: str | None = None

    async def __call__(self, session: AsyncSession, now: datetime) -> int:
        month = statements.previous_month(now, self.timezone).name
        if month == self._done_month:
            return 0
        notifier = Notifier(session, self.catalogs, self.default_locale, now, self.kinds)
        sent = await statements.due(session, now, self.timezone)
        await notifier.tell(sent)
        if not sent:
            self._done_month = month
        return len(sent)


class AwardFlow(picker.PickingFlow):
    """`/award`, for staff: a resident (building, then room), a rule or another amount, and a
    note saying why, which the resident reads; then a summary to confirm. The award is the
    ledger's (services/points/awards.py), audited with the staff member as actor."""

    name = "award"
    command = "award"
    description = N_("Award points to a resident, with a note (staff)")
    roles: ClassVar[frozenset[Role] | None] = frozenset({Role.STAFF})
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {
        "building": Step(ask="_ask_building"),
        "resident": Step(ask="_ask_resident", text=True),
        "how": Step(ask="_ask_how"),
        "amount": Step(ask="_ask_amount", text=True),
        "note": Step(ask="_ask_note", text=True),
        "confirm": Step(ask="_ask_confirm"),
    }

    def __init__(self, rule_amounts: dict[str, int]) -> None:
        # Rules with points (`[points.rules]`), offered as buttons with their amounts.
        self.rule_amounts = {rule: n for rule, n in rule_amounts.items() if n > 0}

    async def begin(self, ctx: Context, args: str) -> None:
        await self._ask_building(ctx)

    async def _ask_building(self, ctx: Context) -> None:
        await self._ask_which_building(
            ctx, ctx._("Award points: which building does the resident live in?")
        )

    async def _ask_resident(self, ctx: Context, room: str | None = None) -> None:
        found = await self._residents(ctx, room, ctx._("Nobody is registered in {building} yet."))
        if found is None:
            return
        building, options, cut = found
        asked = ctx._(
            "Who earns the points? The residents of {building}, by room. You can also type a "
            "room number."
        ).format(building=building.name)
        self._ask(ctx, "resident", picker.question(ctx, asked, room, options, cut), options)

    async def _after_resident(self, ctx: Context) -> None:
        await self._ask_how(ctx)

    async def _ask_how(self, ctx: Context) -> None:
        options = [
            (
                ctx._("{rule} (+{amount})").format(
                    rule=ctx._(REASONS[awards.RULES[rule]]), amount=amount
                ),
                RULE + rule,
            )
            for rule, amount in self.rule_amounts.items()
        ]
        options.append((ctx._("Another amount"), OTHER_AMOUNT))
        self._ask(ctx, "how", ctx._("For what? A rule, or another amount."), options)

    async def step_how(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        choice = ctx.choice or ""
        rule = choice.removeprefix(RULE)
        if choice.startswith(RULE) and rule in self.rule_amounts:
            ctx.data["rule"], ctx.data["amount"] = rule, self.rule_amounts[rule]
            await self._ask_note(ctx)
            return
        await self._ask_amount(ctx)

    async def _ask_amount(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "amount",
            ctx._("How many points? Type a whole number from 1 to {most}.").format(most=MAX_AMOUNT),
            [],
        )

    async def step_amount(self, ctx: Context) -> None:
        amount = await self._whole_number(ctx, 1, MAX_AMOUNT)
        if amount is None:
            return
        ctx.data["rule"], ctx.data["amount"] = None, amount
        await self._ask_note(ctx)

    async def _ask_note(self, ctx: Context) -> None:
        self._ask(
            ctx,
            "note",
            ctx._("Why? Type a short note; the resident reads it with the points."),
            [],
        )

    async def step_note(self, ctx: Context) -> None:
        if ctx.cancelled():
            return
        note = " ".join(ctx.typed.split())
        if not note or len(note) > MAX_NOTE:
            ctx.say(ctx._("Please type a note of 1 to {most} characters.").format(most=MAX_NOTE))
            await self._ask_note(ctx)
            return
        ctx.data["note"] = note
        await self._ask_confirm(ctx)

    async def _ask_confirm(self, ctx: Context) -> None:
        resident = await self._chosen(ctx)
        if resident is None:
            return
        self._ask(
            ctx,
            "confirm",
            ctx._("Award {amount} points to {name} for: {note}?").format(
                amount=ctx.data["amount"], name=resident.display_name, note=ctx.data["note"]
            ),
            [(ctx._("Award"), CONFIRM)],
        )

    async def step_confirm(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        resident = await self._chosen(ctx)
        if resident is None:
            return
        resident_id = resident.id
        data = ctx.finish()
        amount, note = int(data["amount"]), str(data["note"])  # type: ignore[call-overload]
        rule = data.get("rule")
        await awards.award_by_staff(
            ctx.session,
            resident_id,
            amount,
            note,
            ctx.now,
            rule=str(rule) if rule else None,
            actor_id=ctx.person.id,
        )
        balance = await ledger.balance(ctx.session, resident_id, POINTS)
        ctx.say(ctx._("Done. Their points: {balance}.").format(balance=balance))
        await ctx.deliver(
            [
                Notice(
                    resident_id,
                    AWARDED,
                    subject_id=resident_id,
                    params={"amount": amount, "note": note},
                )
            ]
        )
