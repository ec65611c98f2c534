"""`/points`: a resident's balance in each unit and the last entries, with what earned or took
them, in their own language (services/points/)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from handlers.flow import Context, Flow
from handlers.i18n import N_
from handlers.reports.rules import REPORTER_ROLES
from services.points import ledger
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

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    async def begin(self, ctx: Context, args: str) -> None:
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
        ctx.say("\n".join(lines))
