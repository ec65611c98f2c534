"""Joining the community: `/start CODE` → room → name → registered (or waiting for approval).

Only the dialogue lives here: asking, parsing the answers and wording what happened. Whether
an invite is good, who is registered at once and who is asked to confirm are the use cases'
(services/registration/usecases.py)."""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow, Step
from handlers.i18n import N_
from handlers.messages import Kind
from models import Role
from services import community, people
from services.registration import usecases
from services.registration.usecases import MAX_NAME_LENGTH, REGISTRATION_TICKET

USE_PLATFORM_NAME = "__platform_name__"
# Where the catalog (handlers/catalog.py) and older imports find them.
__all__ = ["MAX_NAME_LENGTH", "REGISTRATION_TICKET", "ROLE_NAMES", "StartFlow"]


class StartFlow(Flow):
    name = "start"
    command = "start"
    description = N_("Join the community or see where you stand")
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {"room": Step(text=True), "name": Step(text=True)}

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
        redeemed = await usecases.redeem(ctx.session, ctx.person.id, code, ctx.now)
        if isinstance(redeemed, usecases.AlreadyRegistered):
            await self._status(ctx)
        elif isinstance(redeemed, usecases.RoleTaken):
            ctx.say(
                ctx._(
                    "You now have the role {role} for {building}. Send /help to see your commands."
                ).format(role=ctx._(ROLE_NAMES[redeemed.role]), building=redeemed.building)
            )
        elif isinstance(redeemed, usecases.Refused):
            self._invite_refused(ctx, redeemed)
        else:
            ctx.ask(
                self.name,
                "room",
                ctx._(
                    "Welcome to {community}! You are joining {building}. Which room do you live "
                    "in? Type the number, for example 302."
                ).format(community=ctx.rules.name, building=redeemed.building),
                data={
                    "invite_id": redeemed.invite_id,
                    "building_id": redeemed.building_id,
                    "building": redeemed.building,
                },
            )

    @staticmethod
    def _invite_refused(ctx: Context, refused: usecases.Refused) -> None:
        if refused.reason == usecases.INVITE_SPENT:
            # A role invite whose last use went to someone else a moment ago.
            ctx.say(ctx._("This invite code has already been used. Please ask for a new one."))
        elif refused.reason == usecases.EXPIRED:
            ctx.say(
                ctx._("This invite code has expired. Please ask your building head for a new one.")
            )
        elif refused.reason == usecases.USED_UP:
            ctx.say(
                ctx._(
                    "This invite code has already been used. Please ask your building head "
                    "for a new one."
                )
            )
        else:
            ctx.say(
                ctx._(
                    "This invite code is not valid. Please check it, or ask your building "
                    "head for a new one."
                )
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
        if await community.household(ctx.session, building_id, room) is None:
            await self._no_such_room(ctx, building_id, building_name, room)
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
            data={"room": room, "platform_name": platform_name},
        )

    @staticmethod
    async def _no_such_room(ctx: Context, building_id: int, building: str, room: str) -> None:
        span = await community.room_range(ctx.session, building_id)
        ctx.say(
            ctx._("{building} has no room {room}. Rooms go from {first} to {last}.").format(
                building=building,
                room=room,
                first=span[0] if span else "-",
                last=span[1] if span else "-",
            )
        )

    async def step_name(self, ctx: Context) -> None:
        if ctx.choice == USE_PLATFORM_NAME:
            name = str(ctx.data.get("platform_name") or "")
        elif ctx.incoming.kind is Kind.TEXT and ctx.choice is None:
            name = ctx.incoming.text
        else:
            name = ""
        await self._complete(ctx, name)

    @staticmethod
    def _ask_name_again(ctx: Context) -> None:
        ctx.say(
            ctx._("Please type your name, up to {limit} characters.").format(limit=MAX_NAME_LENGTH)
        )

    async def _complete(self, ctx: Context, name: str) -> None:
        data = ctx.data
        invite_id = int(data["invite_id"])  # type: ignore[call-overload]
        building_id = int(data["building_id"])  # type: ignore[call-overload]
        building, room = str(data["building"]), str(data["room"])
        # The use case checks the name (spaces tidied, not empty, not too long).
        joined = await usecases.join(
            ctx.session,
            ctx.person.id,
            invite_id,
            room,
            name,
            ctx.now,
            approval="auto" if ctx.rules.approval == "auto" else "building_head",
            welcome_points=ctx.rules.welcome_points,
        )
        if isinstance(joined, usecases.Refused) and joined.reason == usecases.BAD_NAME:
            self._ask_name_again(ctx)  # the question stays open
            return
        ctx.finish()
        if isinstance(joined, usecases.Refused):
            if joined.reason == usecases.ALREADY_REGISTERED:
                await self._status(ctx)
            elif joined.reason == usecases.NO_SUCH_ROOM:
                await self._no_such_room(ctx, building_id, building, room)
            elif joined.reason == usecases.INVITE_SPENT:
                ctx.say(
                    ctx._(
                        "Sorry, this invite code was used up or expired while we were talking. "
                        "Please ask your building head for a new one."
                    )
                )
            else:
                self._invite_refused(ctx, joined)
            return
        # The use case wrote these; the engine saves the sender's record at the end of the
        # update, so it must hold the same values (or it would write back the old ones).
        ctx.person.saved(
            display_name=joined.name, household_id=joined.household_id, status=joined.status
        )
        await ctx.deliver(joined.notices)
        if joined.status == "active":
            ctx.say(
                ctx._(
                    "You are registered in {building}, room {room}. Welcome, {name}! "
                    "Send /help to see what you can do."
                ).format(building=joined.building, room=joined.room, name=joined.name)
            )
        else:
            ctx.say(
                ctx._(
                    "Thank you, {name}. Your building head will confirm that you live in "
                    "{building}, room {room}. We will tell you here as soon as they decide."
                ).format(name=joined.name, building=joined.building, room=joined.room)
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
