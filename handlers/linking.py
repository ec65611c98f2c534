"""`/link`: someone who uses Linli in two apps becomes one person in both (services/linking.py).

A code is asked for in one app and typed in the other, after `/link` there or as `/link CODE`.
"""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow, Step
from handlers.i18n import N_
from handlers.messages import Kind
from services import linking
from services.linking import Linked, Refusal

GET, HAVE = "get", "have"
# Wrong codes typed in one conversation before it ends (the use case also counts per hour).
MAX_TRIES = 3
APP_NAMES = {"telegram": N_("Telegram"), "wechat": N_("WeChat"), "console": N_("the console")}

REFUSALS = {
    Refusal.UNKNOWN: N_(
        "That code is not valid or has expired. Codes last 10 minutes: ask for a new one with "
        "/link in your other app."
    ),
    Refusal.TOO_MANY: N_(
        "Too many wrong codes. For your safety, please wait an hour before trying again."
    ),
    Refusal.SAME_PERSON: N_("These apps are already linked: you are one person in both."),
    Refusal.SAME_APP: N_(
        "This code was made in this app. Type it in your other app instead, after /link there."
    ),
    Refusal.BOTH_REGISTERED: N_(
        "Both accounts are already registered, so a code can't join them. Please ask the "
        "community staff to help."
    ),
    Refusal.SHARED_APP: N_(
        "One of these accounts is already linked to another account in the same app, so they "
        "can't be joined. Please ask the community staff to help."
    ),
}


def spaced(code: str) -> str:
    """Read out in two halves, like a phone number: 1234 5678."""
    half = len(code) // 2
    return f"{code[:half]} {code[half:]}"


class LinkFlow(Flow):
    name = "link"
    command = "link"
    description = N_("Use Linli in both Telegram and WeChat as one person")
    private_only: ClassVar[bool] = True
    steps: ClassVar[dict[str, Step]] = {
        "how": Step(ask="_ask_how"),
        "code": Step(ask="_ask_code", text=True),
    }

    async def begin(self, ctx: Context, args: str) -> None:
        if args.strip():
            await self._redeem(ctx, args)
        else:
            self._ask_how(ctx)

    def _ask_how(self, ctx: Context) -> None:
        ctx.ask(
            self.name,
            "how",
            ctx._(
                "Do you use Linli in another app too (Telegram or WeChat)? Link the two and you "
                "are one person in both: one registration, the same roles and one points account."
            ),
            options=[
                (ctx._("Get a code for my other app"), GET),
                (ctx._("I have a code from my other app"), HAVE),
            ],
        )

    async def step_how(self, ctx: Context) -> None:
        if ctx.choice == GET:
            code = await linking.issue(ctx.session, ctx.person.id, ctx.incoming.channel, ctx.now)
            ctx.finish()
            ctx.say(
                ctx._(
                    "Your link code is {code}. Within 10 minutes, open Linli in your other app, "
                    "send /link there, choose “I have a code from my other app” and type it. "
                    "Don't give this code to anyone else."
                ).format(code=spaced(code))
            )
        elif ctx.choice == HAVE:
            self._ask_code(ctx)
        else:
            self._ask_how(ctx)

    def _ask_code(self, ctx: Context) -> None:
        ctx.ask(
            self.name,
            "code",
            ctx._("Type the 8-digit code your other app showed you, for example 1234 5678."),
            data={"tries": ctx.data.get("tries", 0)},
        )

    async def step_code(self, ctx: Context) -> None:
        typed = ctx.incoming.text if ctx.incoming.kind is Kind.TEXT else ""
        await self._redeem(ctx, typed)

    async def _redeem(self, ctx: Context, typed: str) -> None:
        code = linking.normalise(typed)
        result: Linked | Refusal = (
            await linking.redeem(ctx.session, code, ctx.person.id, ctx.incoming.channel, ctx.now)
            if code
            else Refusal.UNKNOWN
        )
        if isinstance(result, Linked):
            ctx.finish()
            apps = ctx._(" and ").join(ctx._(APP_NAMES.get(c, c)) for c in result.channels)
            ctx.say(
                ctx._(
                    "Done: you are one person in {apps} now. I will write to you in the app "
                    "you used last."
                ).format(apps=apps)
            )
            return
        asked = ctx.state is not None and (ctx.state.flow, ctx.state.step) == (self.name, "code")
        if not code and asked:
            refusal = ctx._("That is not a link code: it has 8 digits, for example 1234 5678.")
        else:
            refusal = ctx._(REFUSALS[result])
        tries = int(ctx.data.get("tries", 0)) + 1  # type: ignore[call-overload]
        if result is Refusal.UNKNOWN and asked and tries < MAX_TRIES:
            ctx.data["tries"] = tries
            ctx.say(refusal)
            self._ask_code(ctx)
            return
        ctx.finish()
        ctx.say(refusal)
