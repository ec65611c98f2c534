"""Joining the community: `/start CODE` → room → name → registered (or waiting for approval)."""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow, Someone
from handlers.i18n import N_
from handlers.messages import Kind, Outgoing
from models import Building, Invite, Role
from services import audit, community, invites, people
from services.people import Grant

USE_PLATFORM_NAME = "__platform_name__"
MAX_NAME_LENGTH = 50
REGISTRATION_TICKET = "registration"


class StartFlow(Flow):
    name = "start"
    command = "start"
    description = N_("Join the community or see where you stand")
    private_only: ClassVar[bool] = True

    async def begin(self, ctx: Context, args: str) -> None:
        code = args.strip()
        if code:
            await self._redeem(ctx, code)
        else:
            await self._status(ctx)

    async def _status(self, ctx: Context) -> None:
        person = await people.with_household(ctx.session, ctx.person.id)
        assert person is not None
        building = people.building_of(person)
        if person.status == "active" and building is not None and person.household is not None:
            ctx.say(
                ctx._(
                    "Welcome back, {name}! You are registered in {building}, room {room}. "
                    "Send /help to see what you can do."
                ).format(
                    name=person.display_name, building=building.name, room=person.household.room
                )
            )
        elif person.status == "pending" and building is not None and person.household is not None:
            ctx.say(
                ctx._(
                    "Your registration for {building}, room {room} is waiting for your building "
                    "head's approval. We will tell you here as soon as they decide."
                ).format(building=building.name, room=person.household.room)
            )
        else:
            ctx.say(
                ctx._(
                    "Welcome to {community}! To join, scan the QR code on your building's notice "
                    "board, or ask your building head for an invite code and send /start CODE."
                ).format(community=ctx.rules.name)
            )

    async def _redeem(self, ctx: Context, code: str) -> None:
        found = await invites.check(ctx.session, code, ctx.now)
        if isinstance(found, invites.InviteProblem):
            ctx.say(
                {
                    "unknown": ctx._(
                        "This invite code is not valid. Please check it, or ask your building "
                        "head for a new one."
                    ),
                    "expired": ctx._(
                        "This invite code has expired. Please ask your building head for a new one."
                    ),
                    "used_up": ctx._(
                        "This invite code has already been used. Please ask your building head "
                        "for a new one."
                    ),
                }[found.reason]
            )
            return
        invite, building = found.invite, found.building
        if ctx.person.status == "active":
            await self._grant_invited_role(ctx, invite, building)
            return
        ctx.ask(
            self.name,
            "room",
            ctx._(
                "Welcome to {community}! You are joining {building}. Which room do you live in? "
                "Type the number, for example 302."
            ).format(community=ctx.rules.name, building=building.name),
            data={
                "invite_id": invite.id,
                "role": invite.role,
                "building_id": building.id,
                "building": building.name,
            },
        )

    async def _grant_invited_role(self, ctx: Context, invite: Invite, building: Building) -> None:
        """A registered resident scanning a building-head or staff invite gets that role."""
        role = Role(invite.role)
        if role is Role.RESIDENT:
            await self._status(ctx)
            return
        if not await invites.use(ctx.session, invite.id, ctx.now):
            ctx.say(ctx._("This invite code has already been used. Please ask for a new one."))
            return
        await people.grant(ctx.session, ctx.person.id, _scoped(role, building))
        await audit.record(
            ctx.session,
            "role.grant",
            actor_id=ctx.person.id,
            role=role.value,
            building=building.name,
            via="invite",
        )
        ctx.say(
            ctx._(
                "You now have the role {role} for {building}. Send /help to see your commands."
            ).format(role=ctx._(ROLE_NAMES[role]), building=building.name)
        )

    async def step_room(self, ctx: Context) -> None:
        building_id = int(ctx.data["building_id"])  # type: ignore[call-overload]
        building_name = str(ctx.data["building"])
        text = ctx.incoming.text if ctx.incoming.kind is Kind.TEXT else ""
        room = community.normalise_room(text) if text else None
        if room is None:
            ctx.say(
                ctx._("Please type your room number in digits, for example 302.")
                if text
                else ctx._("Please type your room number, for example 302.")
            )
            return
        household = await community.household(ctx.session, building_id, room)
        if household is None:
            span = await community.room_range(ctx.session, building_id)
            ctx.say(
                ctx._("{building} has no room {room}. Rooms go from {first} to {last}.").format(
                    building=building_name,
                    room=room,
                    first=span[0] if span else "-",
                    last=span[1] if span else "-",
                )
            )
            return
        platform_name = ctx.incoming.sender.display_name or ctx.person.display_name
        options = (
            [
                (
                    ctx._("Use “{name}”").format(name=platform_name[:MAX_NAME_LENGTH]),
                    USE_PLATFORM_NAME,
                )
            ]
            if platform_name
            else []
        )
        ctx.ask(
            self.name,
            "name",
            ctx._(
                "Room {room}, thank you. What is your name? Staff and your building head will see "
                "it; your neighbours will not."
            ).format(room=room),
            options=options,
            data={"household_id": household.id, "room": room, "platform_name": platform_name},
        )

    async def step_name(self, ctx: Context) -> None:
        if ctx.choice == USE_PLATFORM_NAME:
            name = str(ctx.data.get("platform_name") or "")
        elif ctx.incoming.kind is Kind.TEXT and ctx.choice is None:
            name = " ".join(ctx.incoming.text.split())
        else:
            name = ""
        if not name or len(name) > MAX_NAME_LENGTH:
            ctx.say(
                ctx._("Please type your name, up to {limit} characters.").format(
                    limit=MAX_NAME_LENGTH
                )
            )
            return
        await self._complete(ctx, name[:MAX_NAME_LENGTH])

    async def _complete(self, ctx: Context, name: str) -> None:
        data = ctx.data
        invite_id = int(data["invite_id"])  # type: ignore[call-overload]
        building_id = int(data["building_id"])  # type: ignore[call-overload]
        building, room = str(data["building"]), str(data["room"])
        ctx.finish()
        if not await invites.use(ctx.session, invite_id, ctx.now):
            ctx.say(
                ctx._(
                    "Sorry, this invite code was used up or expired while we were talking. "
                    "Please ask your building head for a new one."
                )
            )
            return
        person = ctx.person
        person.display_name = name
        person.household_id = int(data["household_id"])  # type: ignore[call-overload]
        role = Role(str(data["role"]))
        # Role invites come from staff, so they vouch for the person themselves.
        if ctx.rules.approval == "auto" or role is not Role.RESIDENT:
            await activate(ctx, person)
            if role is not Role.RESIDENT:
                target = await ctx.session.get(Building, building_id)
                assert target is not None
                await people.grant(ctx.session, person.id, _scoped(role, target))
            await audit.record(
                ctx.session,
                "registration.auto",
                actor_id=person.id,
                building=building,
                room=room,
                role=role.value,
            )
            ctx.say(
                ctx._(
                    "You are registered in {building}, room {room}. Welcome, {name}! "
                    "Send /help to see what you can do."
                ).format(building=building, room=room, name=name)
            )
            return
        person.status = "pending"
        approvers = await people.building_heads(ctx.session, building_id) or (
            await people.staff_members(ctx.session)
        )
        for approver in approvers:
            await ask_approval(ctx, approver, person, building, room)
        await audit.record(
            ctx.session,
            "registration.requested",
            actor_id=person.id,
            building=building,
            room=room,
            approvers=[a.id for a in approvers],
        )
        ctx.say(
            ctx._(
                "Thank you, {name}. Your building head will confirm that you live in {building}, "
                "room {room}. We will tell you here as soon as they decide."
            ).format(name=name, building=building, room=room)
        )


ROLE_NAMES = {
    Role.RESIDENT: N_("resident"),
    Role.BUILDING_HEAD: N_("building head"),
    Role.GRID_WORKER: N_("grid worker"),
    Role.PROPERTY: N_("property management"),
    Role.PROPERTY_HEAD: N_("head of property management"),
    Role.DEPARTMENT: N_("department liaison"),
    Role.DEPARTMENT_HEAD: N_("department head"),
    Role.STAFF: N_("staff"),
    Role.ADMIN: N_("administrator"),
}


def _scoped(role: Role, building: Building) -> Grant:
    if role is Role.BUILDING_HEAD:
        return Grant(role, building_id=building.id)
    if role is Role.GRID_WORKER:
        return Grant(role, grid_id=building.grid_id)
    return Grant(role)


async def activate(ctx: Context, person: Someone) -> None:
    person.status = "active"
    await people.grant(ctx.session, person.id, Grant(Role.RESIDENT))


async def ask_approval(
    ctx: Context, approver: Someone, applicant: Someone, building: str, room: str
) -> None:
    t = ctx.translator_for(approver)
    options = await ctx.ticket_options(
        approver,
        REGISTRATION_TICKET,
        applicant.id,
        [(t.gettext("Approve"), "approve"), (t.gettext("Reject"), "reject")],
    )
    ctx.notify(
        approver,
        Outgoing(
            t.gettext("{name} asks to join {building}, room {room}. Do they live there?").format(
                name=applicant.display_name, building=building, room=room
            ),
            options=options,
        ),
    )
