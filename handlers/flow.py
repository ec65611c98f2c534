"""What a feature flow sees: the `Context` of one update, and the `Flow` base it implements.

A flow is a small class with a `begin`, a table of its steps (`steps`: what each question
takes, and which method asks it) and one `step_<name>` method per step that handles the answer.
It talks only to the context (replies, next step, notifications) and to services (use cases),
never to a platform, so the same flow serves Telegram, WeChat, the console and the tests.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.i18n import Catalogs, Translator
from handlers.messages import Capabilities, Incoming, Kind, Option, Outgoing
from handlers.notices import NoticeKinds
from models import Role
from services import outbox, people, tickets
from services.conversations import FlowState
from services.notices import GroupNotice, Notice
from services.people import PersonRecord, RoleSet

# Button payloads stay far below Telegram's 64-byte callback_data limit:
# s<nonce>.<n> for a step's options, t<token>.<n> for a durable card's, numbered from 1; a
# trailing "k" keeps the pressed message's buttons (the flow's choice, see `Outgoing`).
STEP_PREFIX = "s"
TICKET_PREFIX = "t"
KEEP_SUFFIX = "k"
# Where an interrupted conversation waits while a card's question is answered.
SUSPENDED = "_suspended"
# The question a step last asked, so that it can be asked again word for word.
ASKED = "_asked"
# The [Cancel] button's value in the flows that offer one.
CANCEL = "cancel"


def payloads(prefix: str, token: str, count: int, *, keep: bool = False) -> list[str]:
    """The payloads of `count` options, in the one numbering (from 1)."""
    suffix = KEEP_SUFFIX if keep else ""
    return [f"{prefix}{token}.{n}{suffix}" for n in range(1, count + 1)]


def numbered_choices(values: Sequence[str]) -> dict[str, str]:
    return {str(n): value for n, value in enumerate(values, 1)}


@dataclass(frozen=True)
class CommunityRules:
    """The slice of configuration the flows need, passed in at assembly."""

    name: str
    default_locale: str
    approval: str
    flow_timeout_minutes: int
    max_text_length: int
    # `[points.rules] first_registration`: earned when a resident's registration is complete.
    welcome_points: int = 0


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
    kinds: NoticeKinds = field(default_factory=NoticeKinds)
    notified: bool = False

    def translator_for(self, person: Someone) -> Translator:
        return self.catalogs.get(person.locale or self.default_locale)

    async def ticket_options(
        self,
        person: Someone | None,
        kind: str,
        subject_id: int,
        choices: Sequence[tuple[str, str]],
        *,
        chat: tuple[str, str] | None = None,
        keep: bool = False,
        lifetime: timedelta = tickets.LIFETIME,
    ) -> tuple[Option, ...]:
        """Durable buttons for `person`, or (person None) a shared card's buttons that anyone
        in `chat` (channel, chat id) may press, which a press does not use up."""
        ticket = await tickets.issue(
            self.session,
            person_id=person.id if person is not None else None,
            kind=kind,
            subject_id=subject_id,
            choices=[value for _, value in choices],
            now=self.now,
            lifetime=lifetime,
            chat=chat,
        )
        return tuple(
            Option(label, payload)
            for (label, _), payload in zip(
                choices, payloads(TICKET_PREFIX, ticket.token, len(choices), keep=keep), strict=True
            )
        )

    def notify(self, person: Someone | int, message: Outgoing) -> None:
        person_id = person if isinstance(person, int) else person.id
        outbox.enqueue(self.session, person_id, message.to_dict(), self.now)
        self.notified = True

    async def render(self, notice: Notice) -> tuple[Someone, Outgoing] | None:
        reader = await people.someone(self.session, notice.person_id)
        if reader is None:
            return None
        return reader, await self.kinds.render(self, reader, notice)

    async def tell(self, notices: Iterable[Notice | GroupNotice]) -> None:
        """The one writer of notification intents: each is rendered in its reader's language
        (a group chat's: the community's) and queued in the outbox, in this transaction."""
        for notice in notices:
            if isinstance(notice, GroupNotice):
                await self.tell_group(notice)
                continue
            rendered = await self.render(notice)
            if rendered is not None:
                self.notify(*rendered)

    async def tell_group(self, notice: GroupNotice) -> None:
        """A group chat's message; a card replaces its version still waiting to be sent."""
        message = (await self.kinds.render_group(self, notice)).to_dict()
        if notice.card is not None:
            key = f"{notice.card}:{notice.subject_id}"
            await outbox.enqueue_card(self.session, notice.group_chat_id, key, message, self.now)
        else:
            outbox.enqueue_group(self.session, notice.group_chat_id, message, self.now)
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
    can: Capabilities = field(default_factory=Capabilities)
    kinds: NoticeKinds = field(default_factory=NoticeKinds)
    choice: str | None = None
    replies: list[Outgoing] = field(default_factory=list)
    # Set by finish() when an interrupted conversation comes back: its question is asked again.
    resumed: bool = False
    # The conversation that was open when a card's button was pressed: a question the card
    # asks never replaces it, even in the same flow (another report's card), but suspends it.
    interrupted: FlowState | None = None
    # What the presser of a shared card alone is told (see answer_press), and whether the
    # pressed message's buttons go away (the button's payload says: the flow's choice).
    press_answer: str | None = None
    # The answer needs reading (and a tap to close it), not just a glance: a refusal.
    press_alert: bool = False
    clear_pressed: bool = True
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
                self.session, self.catalogs, self.rules.default_locale, self.now, self.kinds
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
        options: Sequence[Option] = (),
        private_start: str | None = None,
        private_label: str = "",
    ) -> None:
        self.replies.append(
            Outgoing(
                text=text,
                options=tuple(options),
                private_start=private_start,
                private_label=private_label,
            )
        )

    async def deliver(self, notices: Iterable[Notice | GroupNotice]) -> None:
        """What a use case returned: the sender's own notices become replies here (their card
        updated in place), everyone else's (and group chats') go to the outbox."""
        others: list[Notice | GroupNotice] = []
        for notice in notices:
            if isinstance(notice, Notice) and notice.person_id == self.person.id:
                self.replies.append(
                    await self.notifier.kinds.render(self.notifier, self.person, notice)
                )
            else:
                others.append(notice)
        await self.notifier.tell(others)

    def answer_press(self, text: str, *, alert: bool = False) -> None:
        """Tell the person who pressed a shared card, and nobody else: in place where the
        channel can (Telegram's callback answer; `alert`: one they close themselves), else in
        their private chat."""
        if self.can.press_answers:
            self.press_answer = text
            self.press_alert = alert
        else:
            self.notify(self.person, Outgoing(text))

    def ask(
        self,
        flow: str,
        step: str,
        text: str,
        *,
        options: Sequence[tuple[str, str]] = (),
        data: dict[str, object] | None = None,
        keep: bool = False,
    ) -> None:
        """Move to `step` and show `text`; each (label, value) becomes a button of this step.

        Asking the same step again with the same choices keeps the buttons already shown valid:
        an album of photos gets one answer per photo, and any of their "Done" buttons works.
        `keep`: a press leaves these buttons in place.
        """
        choices = numbered_choices([value for _, value in options])
        same = (
            self.state is not None
            and self.state.flow == flow
            and self.state is not self.interrupted
        )
        nonce = (
            self.state.nonce
            if same
            and self.state is not None
            and (self.state.step, self.state.choices) == (step, choices)
            else secrets.token_hex(4)
        )
        kept = dict(self.state.data) if same and self.state is not None else {}
        if not same and self.state is not None:
            self._suspend(kept)
        if data:
            kept.update(data)
        kept[ASKED] = {"text": text, "options": [list(o) for o in options], "keep": keep}
        self.state = FlowState(flow, step, nonce, kept, choices)
        self.say(
            text,
            options=[
                Option(label, payload)
                for (label, _), payload in zip(
                    options, payloads(STEP_PREFIX, nonce, len(options), keep=keep), strict=True
                )
            ],
        )

    def enter(self, flow: str, step: str, data: dict[str, object]) -> None:
        """Open `flow` at `step` without asking anything yet (a step will answer at once)."""
        kept = dict(data)
        if self.state is not None and (self.state.flow != flow or self.state is self.interrupted):
            self._suspend(kept)
        self.state = FlowState(flow, step, secrets.token_hex(4), kept, {})

    def _suspend(self, data: dict[str, object]) -> None:
        """A card's question interrupts an open conversation: it waits, whole, inside the new
        one and comes back when that finishes (a draft is never silently dropped)."""
        assert self.state is not None
        data[SUSPENDED] = asdict(self.state)

    def cancelled(self) -> bool:
        """[Cancel] was pressed: the conversation ends and the person is told nothing was
        saved (True); any other answer goes on (False)."""
        if self.choice != CANCEL:
            return False
        self.finish()
        self.say(self._("Cancelled. Nothing was saved."))
        return True

    def finish(self) -> dict[str, object]:
        """End this conversation; one it interrupted comes back (its question asked again).
        Returns what the ended conversation had gathered: `ctx.data` is no longer it."""
        gathered = dict(self.data)
        waiting = self.state.data.get(SUSPENDED) if self.state is not None else None
        if isinstance(waiting, dict):
            self.state = FlowState(**waiting)
            self.resumed = True
        else:
            self.state = None
        return gathered

    def abandon(self) -> None:
        """End this conversation and any it interrupted: the person chose something else."""
        self.state = None
        self.resumed = False

    @property
    def typed(self) -> str:
        """What the person typed, trimmed; "" for anything else (a photo, a press)."""
        return self.incoming.text.strip() if self.incoming.kind is Kind.TEXT else ""

    @property
    def data(self) -> dict[str, object]:
        return self.state.data if self.state else {}

    async def ticket_options(
        self, person: Someone, kind: str, subject_id: int, choices: Sequence[tuple[str, str]]
    ) -> tuple[Option, ...]:
        return await self.notifier.ticket_options(person, kind, subject_id, choices)

    def notify(self, person: Someone | int, message: Outgoing) -> None:
        """Queue a message to someone else; it leaves only if this update's transaction commits."""
        self.notifier.notify(person, message)


@dataclass(frozen=True)
class Step:
    """One question of a flow, in its step table: which method asks it (again, when the
    person comes back to it), and what it takes besides its options."""

    ask: str | None = None
    # Typed text is an answer here. Elsewhere, text that names none of the options gets the
    # question again instead of being taken for something else.
    text: bool = False
    # A photo or a voice note is an answer here: only then is media fetched and decoded.
    media: bool = False
    # A document (a PDF) is an answer here: only then is one fetched and stored.
    documents: bool = False


class Flow:
    """Base of every dialogue flow; subclasses set the class attributes and steps."""

    name: ClassVar[str]
    command: ClassVar[str | None] = None
    # Shown in /help and the platform's command menu; marked with N_ and translated there.
    description: ClassVar[str] = ""
    # None: anyone, registered or not. Admins may always.
    roles: ClassVar[frozenset[Role] | None] = None
    private_only: ClassVar[bool] = False
    # The step graph in one place: each step's name, how it is asked and what it takes. The
    # answer to step "x" is handled by the method `step_x`.
    steps: ClassVar[dict[str, Step]] = {}

    def allows(self, roles: RoleSet) -> bool:
        """Asked of the roles (services/people.py), not decided here."""
        return roles.may_use(self.roles)

    def takes_media(self, step: str) -> bool:
        found = self.steps.get(step)
        return found is not None and found.media

    def takes_documents(self, step: str) -> bool:
        found = self.steps.get(step)
        return found is not None and found.documents

    def takes_text(self, step: str) -> bool:
        found = self.steps.get(step)
        return found is not None and found.text

    async def begin(self, ctx: Context, args: str) -> None:
        raise NotImplementedError

    async def resume(self, ctx: Context) -> None:
        assert ctx.state is not None
        step: Callable[[Context], Awaitable[None]] | None = getattr(
            self, f"step_{ctx.state.step}", None
        )
        if step is None or ctx.state.step not in self.steps:
            # A step renamed by an upgrade: start over rather than guess.
            ctx.abandon()
            ctx.say(ctx._("That conversation can no longer continue. Please start it again."))
            return
        await step(ctx)

    async def ask_again(self, ctx: Context) -> bool:
        """Ask the current step's question again: by its asking method, which may word it for
        what changed meanwhile, or else as it was last asked. False if it never was."""
        state = ctx.state
        assert state is not None
        found = self.steps.get(state.step)
        if found is not None and found.ask is not None:
            asked = getattr(self, found.ask)(ctx)
            if inspect.isawaitable(asked):
                await asked
            return True
        last = state.data.get(ASKED)
        if not isinstance(last, dict):
            return False
        ctx.ask(
            state.flow,
            state.step,
            str(last["text"]),
            options=[(str(label), str(value)) for label, value in last["options"]],
            keep=bool(last.get("keep")),
        )
        return True


TicketHandler = Callable[[Context, int, str], Awaitable[None]]


class CancellableFlow(Flow):
    """A flow whose every question ends with [Cancel], and where an answer that is none of the
    options (a photo, say) gets the question again."""

    def _ask(self, ctx: Context, step: str, text: str, options: Sequence[tuple[str, str]]) -> None:
        ctx.ask(self.name, step, text, options=[*options, (ctx._("Cancel"), CANCEL)])

    async def _whole_number(self, ctx: Context, least: int, most: int) -> int | None:
        """A whole number typed (or pressed) within the bounds; else None: cancelled, or the
        person told and the question asked again."""
        if ctx.cancelled():
            return None
        typed = ctx.choice if ctx.choice is not None and ctx.choice.isdigit() else ctx.typed
        if typed.isdigit() and least <= int(typed) <= most:
            return int(typed)
        ctx.say(
            ctx._("That is not a whole number from {least} to {most}.").format(
                least=least, most=most
            )
        )
        await self.ask_again(ctx)
        return None

    async def _unanswered(self, ctx: Context) -> bool:
        """Cancelled, or no option chosen: then the question again (True: nothing more to do)."""
        if ctx.cancelled():
            return True
        if ctx.choice is None:
            await self.ask_again(ctx)
            return True
        return False
