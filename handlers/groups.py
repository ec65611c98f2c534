"""`/group` (or adding the bot to a group): which part of the community a group chat serves.

Asked of the person who sent it or added the bot, privately, with the scopes their roles allow
(services/scopes.py); anyone else gets a polite refusal and the group stays unlinked."""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow
from handlers.i18n import N_
from handlers.messages import Outgoing
from handlers.start_links import start_parameter
from models import Role
from services import group_catch_up, groups, people, scopes
from services.scopes import BUILDING, COMMUNITY, Scope

GROUP_TICKET = "group.scope"


def scope_label(ctx: Context, scope: Scope) -> str:
    if scope.kind == COMMUNITY:
        return ctx._("The whole community")
    if scope.kind == BUILDING:
        return ctx._("Building: {name}").format(name=scope.name)
    return ctx._("Grid: {name}").format(name=scope.name)


class GroupFlow(Flow):
    name = "group"
    command = "group"
    description = N_("Choose which building or grid a group chat serves")
    roles: ClassVar[frozenset[Role] | None] = frozenset({Role.BUILDING_HEAD, Role.STAFF})

    async def begin(self, ctx: Context, args: str) -> None:
        chat = ctx.incoming.chat
        if chat.private:
            ctx.say(
                ctx._("Send /group in the group chat you want to link, or add me to that group.")
            )
            return
        group = await groups.seen(ctx.session, chat.channel, chat.chat_id, chat.title, ctx.now)
        choices = await scopes.choosable(ctx.session, await ctx.roles())
        if not await people.has_private_chat(ctx.session, ctx.person.id, chat.channel):
            ctx.say(
                ctx._(
                    "I will ask you privately what this group is for. Please open a private "
                    "chat with me first, then send /group here again."
                ),
                private_start=start_parameter("help"),
                private_label=ctx._("Open private chat"),
            )
            return
        options = await ctx.ticket_options(
            ctx.person, GROUP_TICKET, group.id, [(scope_label(ctx, s), s.key) for s in choices]
        )
        ctx.notify(
            ctx.person,
            Outgoing(
                ctx._(
                    "Which part of the community is the group “{title}” for? Its polls, results "
                    "and announcements will go there."
                ).format(title=group.title or chat.chat_id),
                options=options,
            ),
        )
        ctx.say(ctx._("I have written to you privately to choose what this group is for."))


async def choose_scope(ctx: Context, group_id: int, choice: str) -> None:
    """The private question's answer; what the person may choose is checked again now."""
    group = await groups.by_id(ctx.session, group_id)
    scope = await scopes.by_key(ctx.session, choice)
    if group is None or scope is None:
        ctx.say(ctx._("That group or place no longer exists. Nothing was changed."))
        return
    allowed = {s.key for s in await scopes.choosable(ctx.session, await ctx.roles())}
    if scope.key not in allowed:
        ctx.say(
            ctx._("You can no longer link groups to {scope}. Nothing was changed.").format(
                scope=scope_label(ctx, scope)
            )
        )
        return
    if await groups.link(ctx.session, group.id, scope, ctx.now, by=ctx.person.id):
        await ctx.deliver(await group_catch_up.catch_up(ctx.session, group.id, ctx.now))
    ctx.say(
        ctx._("Done: the group “{title}” now serves {scope}.").format(
            title=group.title or group.chat_id, scope=scope_label(ctx, scope)
        )
    )
