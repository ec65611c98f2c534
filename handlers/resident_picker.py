"""Choosing a resident in chat, for staff (proxy votes, awards by hand): a building, then its
registered residents by room ("Room 302: Amy"), narrowed by a room number typed when the list
is long. Names and rooms show, so the flows that use it are private only."""

from __future__ import annotations

from handlers.flow import CancellableFlow, Context
from models import Building, Person
from services import community
from services.voting import proxies

# At most this many people a question: a longer list is narrowed by a typed room.
LISTED = 30


def typed_room(ctx: Context) -> str | None:
    """The room typed instead of a button pressed, tidied ("302", "Room 302" → "302")."""
    typed = ctx.typed
    if ctx.choice is not None or not typed:
        return None
    return community.normalise_room(typed) or typed[:16]


async def people_options(
    ctx: Context, building_id: int, room: str | None, leave_out: set[int]
) -> tuple[list[tuple[str, str]], bool]:
    """Residents of the building as options, of one room if typed; and whether the list was
    cut short."""
    found = [
        (person, home)
        for person, home in await proxies.residents_in(ctx.session, building_id)
        if person.id not in leave_out and (room is None or home == room)
    ]
    options = [
        (ctx._("Room {room}: {name}").format(room=home, name=person.display_name), str(person.id))
        for person, home in found[:LISTED]
    ]
    return options, len(found) > LISTED


def question(
    ctx: Context, asked: str, room: str | None, options: list[tuple[str, str]], cut: bool
) -> str:
    """The question with what the person should know: nobody in the room typed, or a list
    cut short."""
    lines = [asked]
    if room is not None and not options:
        lines.insert(0, ctx._("Nobody is registered in room {room}.").format(room=room))
    if cut:
        lines.append(
            ctx._("Only the first {n} are shown: type a room number to find others.").format(
                n=LISTED
            )
        )
    return "\n".join(lines)


class PickingFlow(CancellableFlow):
    """What staff flows that pick a resident share: every question ends with [Cancel] (the
    base), and the first questions are the building, then its residents."""

    async def _ask_building(self, ctx: Context) -> None:
        """The first question, in the flow's words (`_ask_which_building`)."""
        raise NotImplementedError

    async def step_building(self, ctx: Context) -> None:
        if await self._unanswered(ctx):
            return
        ctx.data["building"] = int(ctx.choice or 0)
        await self._ask_resident(ctx)

    async def _building(self, ctx: Context) -> Building | None:
        return await ctx.session.get(Building, int(ctx.data.get("building", 0)))  # type: ignore[call-overload]

    async def _residents(
        self, ctx: Context, room: str | None, nobody: str
    ) -> tuple[Building, list[tuple[str, str]], bool] | None:
        """The chosen building's residents as options (of the room typed), and whether the list
        was cut short. None when there is nothing to choose from: the building is gone (asked
        again) or nobody is registered there (the conversation ends with `nobody`, formatted
        with the building's name)."""
        building = await self._building(ctx)
        if building is None:
            await self._ask_building(ctx)
            return None
        options, cut = await people_options(ctx, building.id, room, set())
        if not options and room is None:
            ctx.finish()
            ctx.say(nobody.format(building=building.name))
            return None
        return building, options, cut

    async def _chosen(self, ctx: Context) -> Person | None:
        """The resident chosen; None if they are gone meanwhile: the conversation ends, and the
        staff member is told that nothing was saved."""
        resident = await ctx.session.get(Person, int(ctx.data.get("resident", 0)))  # type: ignore[call-overload]
        if resident is None:
            ctx.finish()
            ctx.say(ctx._("That person is no longer known here. Nothing was saved."))
        return resident

    async def _ask_which_building(self, ctx: Context, question: str) -> None:
        buildings = await community.buildings(ctx.session)
        self._ask(ctx, "building", question, [(b.name, str(b.id)) for b in buildings])

    async def _ask_resident(self, ctx: Context, room: str | None = None) -> None:
        raise NotImplementedError

    async def _after_resident(self, ctx: Context) -> None:
        """The question after the resident is chosen (`ctx.data["resident"]`)."""
        raise NotImplementedError

    async def step_resident(self, ctx: Context) -> None:
        room = typed_room(ctx)
        if room is not None:
            await self._ask_resident(ctx, room)
            return
        if await self._unanswered(ctx):
            return
        ctx.data["resident"] = int(ctx.choice or 0)
        await self._after_resident(ctx)
