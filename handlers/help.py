"""`/help`: the commands this person's roles allow, in their language."""

from __future__ import annotations

from handlers.flow import Context, Flow
from handlers.i18n import N_

CANCEL_DESCRIPTION = N_("Leave the current conversation")


class HelpFlow(Flow):
    name = "help"
    command = "help"
    description = N_("Show what you can do")

    def __init__(self, flows: dict[str, Flow]) -> None:
        # The registry, read at call time, so flows added after this one are listed too.
        self.flows = flows

    async def begin(self, ctx: Context, args: str) -> None:
        lines = [ctx._("Here is what you can do:")]
        roles = await ctx.roles()
        for flow in self.flows.values():
            if flow.command and flow.allows(roles):
                lines.append(f"/{flow.command} — {ctx._(flow.description)}")
        lines.append(f"/cancel — {ctx._(CANCEL_DESCRIPTION)}")
        if ctx.person.status != "active":
            lines.append("")
            lines.append(ctx._("More commands appear once you have joined with an invite code."))
        ctx.say("\n".join(lines))
