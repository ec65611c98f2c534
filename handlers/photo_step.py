"""An optional photo (a proposal's, a progress update's, an announcement's): one way to ask for
it and to read the answer, so every such step refuses a broken file the same polite way and
loses nothing."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.flow import Context
from handlers.messages import Kind
from handlers.reports.cards import media_problem
from handlers.reports.rules import ReportRules

NO_PHOTO, CANCEL = "skip", "cancel"


@dataclass(frozen=True)
class PhotoStep:
    flow: str
    step: str
    cancel: bool  # offer "Cancel" beside "No photo"

    def ask(self, ctx: Context, text: str | None = None) -> None:
        options = [(ctx._("No photo"), NO_PHOTO)]
        if self.cancel:
            options.append((ctx._("Cancel"), CANCEL))
        ctx.ask(
            self.flow,
            self.step,
            text or ctx._("You may add a photo. Send it, or choose “No photo”."),
            options=options,
        )

    def answer(self, ctx: Context, media: ReportRules) -> tuple[bool, str | None]:
        """(taken, media key): "No photo" is (True, None). Anything but a usable photo gets
        the reason and the question again: (False, None)."""
        incoming = ctx.incoming
        if ctx.choice == NO_PHOTO:
            return True, None
        if incoming.kind is Kind.PHOTO and incoming.media is not None:
            return True, incoming.media.key
        if incoming.kind is Kind.PHOTO and incoming.media_problem:
            ctx.say(media_problem(ctx.t, incoming.media_problem, media))
            self.ask(ctx, ctx._("You can send another photo, or choose “No photo”."))
        else:
            self.ask(ctx, ctx._("Please send a photo, or choose “No photo”."))
        return False, None
