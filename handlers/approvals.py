"""Building heads (or staff) approve or reject registrations, from a card or from /pending."""

from __future__ import annotations

from handlers.flow import Context, Flow
from handlers.i18n import N_
from handlers.messages import Outgoing
from handlers.start import REGISTRATION_TICKET, activate
from models import Role
from services import audit, people, tickets


class PendingFlow(Flow):
    name = "pending"
    command = "pending"
    description = N_("Registrations waiting for your approval")
    roles = frozenset({Role.BUILDING_HEAD, Role.STAFF})
    # Applicants' names and rooms: never in a group (DESIGN.md "Security").
    private_only = True

    async def begin(self, ctx: Context, args: str) -> None:
        roles = await ctx.roles()
        scope = None if roles.is_staff else roles.headed_buildings()
        waiting = await people.pending_in(ctx.session, scope)
        if not waiting:
            ctx.say(ctx._("No registrations are waiting for approval."))
            return
        ctx.say(
            ctx.t.ngettext(
                "{count} registration is waiting:",
                "{count} registrations are waiting:",
                len(waiting),
            ).format(count=len(waiting))
        )
        for applicant in waiting:
            building = people.building_of(applicant)
            assert building is not None and applicant.household is not None
            options = await ctx.ticket_options(
                ctx.person,
                REGISTRATION_TICKET,
                applicant.id,
                [(ctx._("Approve"), "approve"), (ctx._("Reject"), "reject")],
            )
            ctx.say(
                ctx._("{name} asks to join {building}, room {room}. Do they live there?").format(
                    name=applicant.display_name,
                    building=building.name,
                    room=applicant.household.room,
                ),
                options=options,
            )


async def decide_registration(ctx: Context, applicant_id: int, decision: str) -> None:
    applicant = await people.with_household(ctx.session, applicant_id)
    building = people.building_of(applicant) if applicant else None
    if applicant is None or building is None or applicant.household is None:
        ctx.say(ctx._("This registration no longer exists."))
        return
    # Roles may have changed since the card was sent; the card alone proves nothing.
    roles = await ctx.roles()
    if not (roles.is_staff or roles.heads_building(building.id)):
        await audit.record(
            ctx.session,
            "registration.decide",
            actor_id=ctx.person.id,
            outcome="refused",
            applicant=applicant.id,
        )
        ctx.say(
            ctx._("You can no longer decide on registrations for {building}.").format(
                building=building.name
            )
        )
        return
    if applicant.status != "pending":
        ctx.say(
            ctx._("Someone has already decided on {name}'s registration.").format(
                name=applicant.display_name
            )
        )
        return
    await tickets.retire_for_subject(ctx.session, REGISTRATION_TICKET, applicant.id, ctx.now)
    room = applicant.household.room
    t = ctx.translator_for(applicant)
    if decision == "approve":
        await activate(ctx, applicant)
        to_applicant = t.gettext(
            "Good news: your registration for {building}, room {room} was approved. "
            "Send /help to see what you can do."
        )
        to_approver = ctx._("Approved: {name}, {building}, room {room}.")
    else:
        applicant.status, applicant.household_id = "rejected", None
        to_applicant = t.gettext(
            "Your building head could not confirm your registration for {building}, "
            "room {room}. If this is a mistake, please contact them or the community office."
        )
        to_approver = ctx._("Rejected: {name}, {building}, room {room}.")
    ctx.notify(applicant, Outgoing(to_applicant.format(building=building.name, room=room)))
    ctx.say(to_approver.format(name=applicant.display_name, building=building.name, room=room))
    await audit.record(
        ctx.session,
        f"registration.{decision}",
        actor_id=ctx.person.id,
        applicant=applicant.id,
        building=building.name,
        room=room,
    )
