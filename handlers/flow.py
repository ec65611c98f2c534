"""What a feature flow sees: the `Context` of one update, and the `Flow` base it implements.

A flow is a small class with a `begin` and one `step_<name>` method per question it asks. It
talks only to the context (replies, next step, notifications) and to services, never to a
platform, so the same flow serves Telegram, WeChat, the console and the tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.i18n import Catalogs, Translator
from handlers.messages import Incoming, Link, Option, Outgoing
from models import Role
from services import outbox, people, tickets
from services.conversations import FlowState
from services.people import PersonRecord, RoleSet

# Button payloads stay far below Telegram's 64-byte callback_data limit.
STEP_PREFIX = "s"
TICKET_PREFIX = "t"


@dataclass(frozen=True)
class CommunityRules:
    """The slice of configuration the flows need, passed in at assembly."""

    name: str
    default_locale: str
    approval: str
    flow_timeout_minutes: int
    max_text_length: int


class Someone(Protocol):
    """A person as flows see them: the sender (a PersonRecord) or one loaded with the ORM."""

    id: int
    display_name: str
    locale: str | None
    status: str


@dataclass
class Notifier:
    """Messages and durable buttons for people other than the sender.

    Flows reach it through their `Context`; the scheduler, which has no sender, uses it alone.
    Everything is written in the caller's transaction, so it leaves only if that commits.
    """

    session: AsyncSession
    catalogs: Catalogs
    default_locale: str
    now: datetime
    notified: bool = False

    def translator_for(self, person: Someone) -> Translator:
        return self.catalogs.get(person.locale or self.default_locale)

    async def ticket_options(
        self, person: Someone, kind: str, subject_id: int, choices: Sequence[tuple[str, str]]
    ) -> tuple[Option, ...]:
        ticket = await tickets.issue(
            self.session,
            person_id=person.id,
            kind=kind,
            subject_id=subject_id,
            choices=[value for _, value in choices],
            now=self.now,
        )
        return tuple(
            Option(label, f"{TICKET_PREFIX}{ticket.token}.{i}")
            for i, (label, _) in enumerate(choices)
        )

    def notify(self, person: Someone, message: Outgoing) -> None:
        outbox.enqueue(self.session, person.id, message.to_dict(), self.now)
        self.notified = True


@dataclass
class Context:
    session: AsyncSession
    incoming: Incoming
    person: PersonRecord
    t: Translator
    catalogs: Catalogs
    rules: CommunityRules
    now: datetime
    state: FlowState | None
    choice: str | None = None
    replies: list[Outgoing] = field(default_factory=list)
    _roles: RoleSet | None = None
    _notifier: Notifier | None = None

    async def roles(self) -> RoleSet:
        """Loaded on first use: most updates are flow steps that never ask."""
        if self._roles is None:
            self._roles = await people.roles_of(self.session, self.person.id)
        return self._roles

    @property
    def notifier(self) -> Notifier:
        if self._notifier is None:
            self._notifier = Notifier(
                self.session, self.catalogs, self.rules.default_locale, self.now
            )
        return self._notifier

    @property
    def notified(self) -> bool:
        return self._notifier is not None and self._notifier.notified

    def _(self, message: str) -> str:
        return self.t.gettext(message)

    def translator_for(self, person: Someone) -> Translator:
        return self.notifier.translator_for(person)

    def say(
        self,
        text: str,
        *,
        links: Sequence[Link] = (),
        options: Sequence[Option] = (),
        private_start: str | None = None,
        private_label: str = "",
        image_path: str | None = None,
    ) -> None:
        self.replies.append(
            Outgoing(
                text=text,
                options=tuple(options),
                links=tuple(links),
                private_start=private_start,
                private_label=private_label,
                image_path=image_path,
            )
        )

    def ask(
        self,
        flow: str,
        step: str,
        text: str,
        *,
        options: Sequence[tuple[str, str]] = (),
        data: dict[str, object] | None = None,
    ) -> None:
        """Move to `step` and show `text`; each (label, value) becomes a button of this step.

        Asking the same step again with the same choices keeps the buttons already shown valid:
        an album of photos gets one answer per photo, and any of their "Done" buttons works.
        """
        choices = {str(i): value for i, (_, value) in enumerate(options)}
        same = self.state is not None and self.state.flow == flow
        nonce = (
            self.state.nonce
            if same
            and self.state is not None
            and (self.state.step, self.state.choices) == (step, choices)
            else secrets.token_hex(4)
        )
        kept = dict(self.state.data) if same and self.state is not None else {}
        if data:
            kept.update(data)
        self.state = FlowState(flow, step, nonce, kept, choices)
        self.say(
            text,
            options=[
                Option(label, f"{STEP_PREFIX}{nonce}.{i}") for i, (label, _) in enumerate(options)
            ],
        )

    def enter(self, flow: str, step: str, data: dict[str, object]) -> None:
        """Open `flow` at `step` without asking anything yet (a step will answer at once)."""
        self.state = FlowState(flow, step, secrets.token_hex(4), dict(data), {})

    def finish(self) -> None:
        self.state = None

    @property
    def data(self) -> dict[str, object]:
        return self.state.data if self.state else {}

    async def ticket_options(
        self, person: Someone, kind: str, subject_id: int, choices: Sequence[tuple[str, str]]
    ) -> tuple[Option, ...]:
        return await self.notifier.ticket_options(person, kind, subject_id, choices)

    def notify(self, person: Someone, message: Outgoing) -> None:
        """Queue a message to someone else; it leaves only if this update's transaction commits."""
        self.notifier.notify(person, message)


class Flow:
    """Base of every dialogue flow; subclasses set the class attributes and steps."""

    name: ClassVar[str]
    command: ClassVar[str | None] = None
    # Shown in /help and the platform's command menu; marked with N_ and translated there.
    description: ClassVar[str] = ""
    # None: anyone, registered or not. Admins may always.
    roles: ClassVar[frozenset[Role] | None] = None
    private_only: ClassVar[bool] = False
    # Steps that ask for a photo or a voice note: only there is media fetched and decoded.
    media_steps: ClassVar[frozenset[str]] = frozenset()

    def allows(self, roles: RoleSet) -> bool:
        return self.roles is None or Role.ADMIN in roles.roles or roles.any_of(self.roles)

    async def begin(self, ctx: Context, args: str) -> None:
        raise NotImplementedError

    async def resume(self, ctx: Context) -> None:
        assert ctx.state is not None
        step: Callable[[Context], Awaitable[None]] | None = getattr(
            self, f"step_{ctx.state.step}", None
        )
        if step is None:
            # A step renamed by an upgrade: start over rather than guess.
            ctx.finish()
            ctx.say(ctx._("That conversation can no longer continue. Please start it again."))
            return
        await step(ctx)


TicketHandler = Callable[[Context, int, str], Awaitable[None]]
