"""Building heads (or staff) approve or reject registrations, from a card or from /pending.

The dialogue only: who may see and decide which registrations, and what a decision changes,
are the use cases' (services/registration/)."""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow
from handlers.i18n import N_
from models import Role
from services.registration import access, usecases


class PendingFlow(Flow):
    name = "pending"
    command = "pending"
    description = N_("Registrations waiting for your approval")
    # Who is offered the command; which buildings they see is access.listing's answer.
    roles: ClassVar[frozenset[Role] | None] = access.APPROVER_ROLES
    # Applicants' names and rooms: never in a group (DESIGN.md "Security").
    private_only: ClassVar[bool] = True

    async def begin(self, ctx: Context, args: str) -> None:
        waiting = await usecases.pending(ctx.session, ctx.person.id)
        if isinstance(waiting, usecases.Refused):
            ctx.say(
                ctx._(
                    "Sorry, /{command} is not available to you. Send /help to see your commands."
                ).format(command=self.command)
            )
            return
        if not waiting.applicants:
            ctx.say(ctx._("No registrations are waiting for approval."))
            return
        ctx.say(
            ctx.t.ngettext(
                "{count} registration is waiting:",
                "{count} registrations are waiting:",
                len(waiting.applicants),
            ).format(count=len(waiting.applicants))
        )
        # Each card is the approver's own notice, so it reads as the pushed card does.
        await ctx.deliver(waiting.notices)


async def decide_registration(ctx: Context, applicant_id: int, decision: str) -> None:
    """An approval card's button (the ticket's choice is "approve" or "reject")."""
    chosen = usecases.as_decision(decision)
    if chosen is None:
        ctx.say(ctx._("This registration no longer exists."))
        return
    decided = await usecases.decide(
        ctx.session,
        ctx.person.id,
        applicant_id,
        chosen,
        ctx.now,
        welcome_points=ctx.rules.welcome_points,
    )
    if isinstance(decided, usecases.Refused):
        ctx.say(_refusal(ctx, decided))
        return
    await ctx.deliver(decided.notices)
    applicant = decided.applicant
    done = (
        ctx._("Approved: {name}, {building}, room {room}.")
        if decided.decision == "approve"
        else ctx._("Rejected: {name}, {building}, room {room}.")
    )
    ctx.say(done.format(name=applicant.name, building=applicant.building, room=applicant.room))


def _refusal(ctx: Context, refused: usecases.Refused) -> str:
    if refused.reason == usecases.ALREADY_DECIDED:
        return ctx._("Someone has already decided on {name}'s registration.").format(
            name=refused.name
        )
    if refused.reason == access.OWN_REGISTRATION:
        return ctx._("You cannot decide on your own registration.")
    if refused.reason in (access.NOT_YOUR_ROLE, access.NOT_YOUR_BUILDING):
        return ctx._("You can no longer decide on registrations for {building}.").format(
            building=refused.building
        )
    return ctx._("This registration no longer exists.")
