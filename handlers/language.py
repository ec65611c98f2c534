"""`/language`: switch between 中文 and English; the choice is kept on the person."""

from __future__ import annotations

from typing import ClassVar

from handlers.flow import Context, Flow, Step
from handlers.i18n import LANGUAGE_NAMES, N_, SUPPORTED


class LanguageFlow(Flow):
    name = "language"
    command = "language"
    description = N_("Switch between 中文 and English")
    steps: ClassVar[dict[str, Step]] = {"pick": Step(ask="_ask")}

    async def begin(self, ctx: Context, args: str) -> None:
        self._ask(ctx)

    def _ask(self, ctx: Context) -> None:
        ctx.ask(
            self.name,
            "pick",
            ctx._("Which language would you like? 请选择语言："),
            options=[(LANGUAGE_NAMES[code], code) for code in SUPPORTED],
        )

    async def step_pick(self, ctx: Context) -> None:
        if ctx.choice not in SUPPORTED:
            self._ask(ctx)
            return
        ctx.person.locale = ctx.choice
        ctx.t = ctx.catalogs.get(ctx.choice)
        ctx.finish()
        ctx.say(ctx._("Done. I will speak English with you from now on."))
