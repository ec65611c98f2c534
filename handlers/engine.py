"""The dialogue engine: one update in, one transaction, neutral replies out (DESIGN.md).

Channels call `DialogueEngine.handle` as their callback. It claims the update key, resolves the
person, loads their conversation state, runs one step and saves the state together with the
domain change. A step that raises rolls everything back and the person gets an apology.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from handlers import start_links
from handlers.flow import (
    ASKED,
    KEEP_SUFFIX,
    STEP_PREFIX,
    TICKET_PREFIX,
    CommunityRules,
    Context,
    Flow,
    TicketHandler,
)
from handlers.i18n import N_, Catalogs, Translator, match_locale
from handlers.messages import Capabilities, Incoming, Kind, Outgoing, Reply
from handlers.notices import NoticeKinds
from models import ActionTicket
from services import audit, conversations, menus, people, replies, tickets, updates
from services.sql import Transaction

log = logging.getLogger("linli.engine")

Clock = Callable[[], datetime]
PAYLOAD_PATTERN = re.compile(r"^([st])([A-Za-z0-9_-]{4,16})\.(\d{1,2})(k?)$")
# An update that lost a race for its conversation is run again on the state that won.
STALE_ATTEMPTS = 3
MEDIA_KINDS = (Kind.PHOTO, Kind.VOICE, Kind.DOCUMENT)
# Replies the engine did not keep (nothing committed), so there is nothing to forget.
UNKEPT_OUTCOMES = frozenset({"duplicate", "error", "conflict"})
EXPIRED = N_("This button has expired. Nothing was changed.")


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class FlowRegistry:
    flows: dict[str, Flow] = field(default_factory=dict)
    tickets: dict[str, TicketHandler] = field(default_factory=dict)
    # Shared cards' buttons, which anyone in the card's chat may press (see Notifier).
    shared_tickets: dict[str, TicketHandler] = field(default_factory=dict)
    # How each feature's notification intents read (handlers/notices.py).
    notices: NoticeKinds = field(default_factory=NoticeKinds)
    # Begun by a photo or voice note sent privately with no conversation open.
    photo_flow: Flow | None = None

    def add(self, flow: Flow) -> None:
        self.flows[flow.name] = flow

    def on_ticket(self, kind: str, handler: TicketHandler) -> None:
        self.tickets[kind] = handler

    def on_shared_ticket(self, kind: str, handler: TicketHandler) -> None:
        self.shared_tickets[kind] = handler

    def by_command(self, command: str) -> Flow | None:
        return next((f for f in self.flows.values() if f.command == command), None)

    def commands(self) -> Iterable[Flow]:
        return (f for f in self.flows.values() if f.command)


class SentReceipts:
    """Forgets replies once sent, in batches: one small write transaction for many updates."""

    def __init__(self, transaction: Transaction, delay: float = 0.2) -> None:
        self.transaction = transaction
        self.delay = delay
        self._keys: list[tuple[str, str]] = []
        self._task: asyncio.Task[None] | None = None

    def __contains__(self, item: tuple[str, str]) -> bool:
        """Sent, but not forgotten in the database yet."""
        return item in self._keys

    def add(self, channel: str, key: str) -> None:
        self._keys.append((channel, key))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.delay)
        await self.flush()

    async def flush(self) -> None:
        while self._keys:
            keys, self._keys = self._keys[:500], self._keys[500:]
            try:
                async with self.transaction() as session:
                    await replies.forget(session, keys)
            except Exception:
                # Kept replies are sent again later: a duplicate message, never a lost one.
                log.exception("could not forget %d sent replies", len(keys))

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.flush()


class DialogueEngine:
    def __init__(
        self,
        transaction: Transaction,
        registry: FlowRegistry,
        catalogs: Catalogs,
        rules: CommunityRules,
        *,
        clock: Clock = system_clock,
        after_commit: Callable[[], Awaitable[None]] | None = None,
        intake: Callable[[Incoming], Awaitable[Incoming]] | None = None,
    ) -> None:
        self.transaction = transaction
        self.registry = registry
        self.catalogs = catalogs
        self.rules = rules
        self.clock = clock
        self.after_commit = after_commit
        # Media is fetched and processed before the transaction (handlers/reports/intake.py),
        # and only for a sender who may send it at their current step.
        self.intake = intake
        self.receipts = SentReceipts(transaction)
        # What each running channel can show (buttons or a numbered list, edits…); channels
        # register as they start (bot/app.py Linli.attach). Unknown channels can do everything.
        self.capabilities: dict[str, Capabilities] = {}

    async def handle(self, incoming: Incoming) -> Reply:
        started = time.perf_counter()
        reply = Reply()
        notified = False
        try:
            if self.intake is not None and await self._expects_media(incoming):
                incoming = await self.intake(incoming)
            for attempt in range(1, STALE_ATTEMPTS + 1):
                try:
                    async with self.transaction() as session:
                        reply, notified = await self._handle(session, incoming)
                    break
                except updates.AlreadyHandled:
                    # A concurrent delivery of this update committed first: answer as a
                    # redelivery (its replies, if they may not have gone out yet).
                    async with self.transaction() as session:
                        reply = await self._duplicate(session, incoming)
                    break
                except conversations.StaleConversation:
                    log.info(
                        "stale conversation channel=%s key=%s attempt=%d",
                        incoming.channel,
                        incoming.update_key,
                        attempt,
                    )
            else:
                reply = Reply(
                    [Outgoing(self._translator(incoming).gettext(EXPIRED))], outcome="conflict"
                )
        except Exception:
            log.exception(
                "update failed channel=%s key=%s chat=%s",
                incoming.channel,
                incoming.update_key,
                incoming.chat.chat_id,
            )
            t = self._translator(incoming)
            reply = Reply(
                [Outgoing(t.gettext("Sorry, something went wrong on our side. Please try again."))],
                flow=reply.flow,
                step=reply.step,
                outcome="error",
            )
        log.info(
            "update channel=%s flow=%s step=%s outcome=%s ms=%.1f",
            incoming.channel,
            reply.flow,
            reply.step,
            reply.outcome,
            (time.perf_counter() - started) * 1000,
        )
        if notified and self.after_commit is not None:
            await self.after_commit()
        key = incoming.update_key
        if key is not None and reply.messages and reply.outcome not in UNKEPT_OUTCOMES:
            channel = incoming.channel
            reply.receipt = lambda: self.receipts.add(channel, key)
        return reply

    def _translator(self, incoming: Incoming) -> Translator:
        return self.catalogs.get(
            match_locale(incoming.sender.language_code, self.rules.default_locale)
        )

    async def _expects_media(self, incoming: Incoming) -> bool:
        """Is a photo or voice note from this sender wanted now? Nothing is fetched otherwise
        (DESIGN.md "Security"): not for strangers, not for a redelivery, not at a step that
        asks for something else. A read before the update's own transaction."""
        if incoming.kind not in MEDIA_KINDS or not incoming.chat.private:
            return False
        async with self.transaction() as session:
            key = incoming.update_key
            if key is not None and await updates.seen(session, incoming.channel, key):
                return False
            found = await people.peek(
                session, incoming.channel, incoming.sender.external_id, incoming.chat.chat_id
            )
            if found is None:
                return False
            person_id, stored = found
            if stored is not None and not stored.expired(self.clock()):
                flow = self.registry.flows.get(stored.state.flow)
                if incoming.kind is Kind.DOCUMENT:
                    return flow is not None and flow.takes_documents(stored.state.step)
                return flow is not None and flow.takes_media(stored.state.step)
            if incoming.kind is Kind.DOCUMENT:
                return False  # no flow starts with a document
            photo_flow = self.registry.photo_flow
            return photo_flow is not None and photo_flow.allows(
                await people.roles_of(session, person_id)
            )

    async def _duplicate(self, session: AsyncSession, incoming: Incoming) -> Reply:
        """A redelivery changes nothing; its replies go out again if they may not have."""
        key = incoming.update_key
        kept = (
            await replies.kept(session, incoming.channel, key)
            if key is not None and (incoming.channel, key) not in self.receipts
            else None
        )
        if kept:
            return Reply([Outgoing.from_dict(m) for m in kept], outcome="resent")
        return Reply(outcome="duplicate")

    async def _handle(self, session: AsyncSession, incoming: Incoming) -> tuple[Reply, bool]:
        now = self.clock()
        locale = match_locale(incoming.sender.language_code, self.rules.default_locale)
        arrival = await people.arrive(
            session,
            incoming.channel,
            incoming.sender.external_id,
            incoming.chat.chat_id,
            update_key=incoming.update_key,
            display_name=incoming.sender.display_name,
            username=incoming.sender.username,
            private=incoming.chat.private,
            locale=locale,
        )
        if arrival is None:
            return await self._duplicate(session, incoming), False
        person, stored = arrival.person, arrival.conversation
        state = stored.state if stored is not None else None
        timed_out = stored is not None and stored.expired(now)
        ctx = Context(
            session=session,
            incoming=incoming,
            person=person,
            t=self.catalogs.get(person.locale or locale),
            catalogs=self.catalogs,
            rules=self.rules,
            now=now,
            state=None if timed_out else state,
            can=self.capabilities.get(incoming.channel, Capabilities()),
            kinds=self.registry.notices,
        )
        reply = Reply(flow=state.flow if state else "-", step=state.step if state else "-")
        reply.outcome = await self._route(ctx, timed_out)
        if ctx.resumed and ctx.state is not None:
            # A card was answered: the conversation it interrupted comes back, question first.
            mark = len(ctx.replies)
            if await self._flow(ctx.state.flow).ask_again(ctx):
                ctx.replies.insert(mark, Outgoing(ctx._("Now, back to where you were:")))
        if ctx.state is not None:
            reply.flow, reply.step = ctx.state.flow, ctx.state.step
        reply.press_answer = ctx.press_answer
        reply.press_alert = ctx.press_alert
        reply.clear_pressed = ctx.clear_pressed
        state_after = ctx.state
        key = incoming.update_key
        menu = next((m.options for m in reversed(ctx.replies) if m.options), None)

        def epilogue(sync: Session) -> None:
            connection = sync.connection()
            person.save(connection)
            conversations.save(
                connection,
                stored,
                state_after,
                channel=incoming.channel,
                chat_id=incoming.chat.chat_id,
                person_id=person.id,
                expires_at=now + timedelta(minutes=self.rules.flow_timeout_minutes),
                now=now,
            )
            if menu is not None and incoming.chat.private and not ctx.can.buttons:
                menus.remember(
                    connection,
                    incoming.channel,
                    incoming.chat.chat_id,
                    [{"label": o.label, "payload": o.payload} for o in menu],
                    now,
                )
            if key is not None:
                updates.claim(
                    connection,
                    incoming.channel,
                    key,
                    now,
                    chat_id=incoming.chat.chat_id,
                    replies=[m.to_dict() for m in ctx.replies] or None,
                )

        await session.run_sync(epilogue)
        reply.messages = ctx.replies
        return reply, ctx.notified

    async def _route(self, ctx: Context, timed_out: bool) -> str:
        incoming = ctx.incoming
        if incoming.kind is Kind.COMMAND:
            return await self._command(ctx, incoming.command or "", incoming.args)
        if incoming.kind is Kind.CHOICE:
            return await self._choice(ctx, incoming.payload or "")
        if incoming.kind is Kind.TEXT and len(incoming.text) > self.rules.max_text_length:
            ctx.say(
                ctx._("That message is too long. Please keep it under {limit} characters.").format(
                    limit=self.rules.max_text_length
                )
            )
            return "refused"
        if not incoming.chat.private:
            # Groups are for talking among neighbours: there the bot listens to commands and
            # buttons only, even while someone has a flow open.
            return "ignored"
        if incoming.kind is Kind.TEXT:
            # The digit of a numbered list, or an option's text, answers the chat's last menu.
            named, typed = await self._typed_choice(ctx)
            if typed is not None:
                return typed
            if named and ctx.state is None:
                # It names an option of a card already answered or gone (a digit sent again
                # to change a vote, say): said so, rather than "not understood".
                return self._expired(ctx, "stale")
        if ctx.state is not None:
            flow = self._flow(ctx.state.flow)
            if (
                incoming.kind is Kind.TEXT
                and not flow.takes_text(ctx.state.step)
                and await flow.ask_again(ctx)
            ):
                # Text that names no option is not an answer here: the question again.
                return "reasked"
            await flow.resume(ctx)
            return "ok"
        photo_flow = self.registry.photo_flow
        if incoming.kind in (Kind.PHOTO, Kind.VOICE) and photo_flow is not None:
            if not photo_flow.allows(await ctx.roles()):
                ctx.say(
                    ctx._(
                        "Thank you for the photo. Please join the community first "
                        "(send /start), then you can report problems with photos."
                    )
                )
                return "refused"
            await photo_flow.begin(ctx, "")
            return "ok"
        if timed_out:
            ctx.say(
                ctx._(
                    "Your previous conversation timed out, so nothing was saved. "
                    "Send /help to see what you can do."
                )
            )
            return "timed_out"
        ctx.say(ctx._("I didn't catch that. Send /help to see what I can do for you."))
        return "unrecognised"

    def _flow(self, name: str) -> Flow:
        return self.registry.flows[name]

    async def _command(self, ctx: Context, command: str, args: str) -> str:
        if command == "cancel":
            had_flow = ctx.state is not None
            ctx.finish()
            ctx.say(
                ctx._("Cancelled. Nothing was saved.")
                if had_flow
                else ctx._("There is nothing to cancel.")
            )
            return "cancelled"
        # A deep link that opens a command (a group's "open private chat", a scanned QR code)
        # instead of redeeming an invite.
        opened = start_links.command_of(args) if command == "start" else None
        if opened is not None:
            command, args = opened
        flow = self.registry.by_command(command)
        if flow is None:
            ctx.say(
                ctx._(
                    "I don't know the command /{command}. Send /help to see what I can do."
                ).format(command=command[:32])
            )
            return "unknown_command"
        if not flow.allows(await ctx.roles()):
            await audit.record(
                ctx.session,
                "command.refused",
                actor_id=ctx.person.id,
                outcome="refused",
                command=command,
                channel=ctx.incoming.channel,
            )
            ctx.say(
                ctx._(
                    "Sorry, /{command} is not available to you. Send /help to see your commands."
                ).format(command=command)
            )
            return "refused"
        if flow.private_only and not ctx.incoming.chat.private:
            start = args if command == "start" and args else start_links.start_parameter(command)
            ctx.say(
                ctx._("Let's continue in a private chat, so your details stay private."),
                private_start=start,
                private_label=ctx._("Open private chat"),
            )
            return "redirected"
        # A command is the person choosing something else: an open conversation ends.
        ctx.abandon()
        await flow.begin(ctx, args)
        return "ok"

    async def _typed_choice(self, ctx: Context) -> tuple[bool, str | None]:
        """A typed answer that names an option, handled as the press it names: (whether it
        named one, the outcome); the outcome is None when it names no live option (it is then
        text, for a step that takes text).

        Where options are numbered (no buttons), the chat's last menu is read from the
        database: cards from the outbox are in it. Where they are buttons, people type what a
        button says, and only the question they were asked last is looked at.
        """
        incoming = ctx.incoming
        if not incoming.chat.private or len(incoming.text) > 200:
            return False, None
        if ctx.can.buttons:
            options = self._asked(ctx)
        else:
            options = await ctx.session.run_sync(
                lambda sync: menus.last(sync.connection(), incoming.channel, incoming.chat.chat_id)
            )
        payload = menus.pick(options, incoming.text, by_number=not ctx.can.buttons)
        if payload is None:
            return False, None
        return True, await self._choice(ctx, payload, typed=True)

    @staticmethod
    def _asked(ctx: Context) -> list[dict[str, str]]:
        """The options of the current step's question, as a menu."""
        state = ctx.state
        asked = state.data.get(ASKED) if state is not None else None
        if not isinstance(asked, dict) or not asked.get("options"):
            return []
        keep = KEEP_SUFFIX if asked.get("keep") else ""
        return [
            {"label": str(label), "payload": f"{STEP_PREFIX}{state.nonce}.{n}{keep}"}
            for n, (label, _) in enumerate(asked["options"], 1)
        ]

    async def _choice(self, ctx: Context, payload: str, *, typed: bool = False) -> str | None:
        """A button press (or, `typed`, an option named by text: then a stale option is not an
        error but None, and the text is handled as text)."""
        match = PAYLOAD_PATTERN.match(payload)
        if match is None:
            log.warning(
                "forged button payload channel=%s person=%s", ctx.incoming.channel, ctx.person.id
            )
            return None if typed else self._expired(ctx, "forged")
        kind, token, index, keep = match.groups()
        ctx.clear_pressed = keep != KEEP_SUFFIX
        if kind == STEP_PREFIX:
            state = ctx.state
            if state is None or state.nonce != token or index not in state.choices:
                return None if typed else self._expired(ctx, "stale")
            ctx.choice = state.choices[index]
            await self._flow(state.flow).resume(ctx)
            return "ok"
        assert kind == TICKET_PREFIX
        ticket = await tickets.find(ctx.session, token)
        if (
            ticket is None
            or index not in ticket.choices
            or (ticket.expires_at is not None and ticket.expires_at <= ctx.now)
        ):
            return None if typed else self._expired(ctx, "stale")
        if ticket.person_id is None:
            return await self._shared(ctx, ticket, index, typed=typed)
        if (
            ticket.person_id != ctx.person.id
            or ticket.used_at is not None
            or ticket.kind not in self.registry.tickets
        ):
            return None if typed else self._expired(ctx, "stale")
        if not await tickets.spend(ctx.session, ticket.id, ctx.now):
            return None if typed else self._expired(ctx, "stale")
        await self._interrupting(
            ctx, self.registry.tickets[ticket.kind], ticket.subject_id, ticket.choices[index]
        )
        return "ok"

    async def _shared(
        self, ctx: Context, ticket: ActionTicket, index: str, *, typed: bool
    ) -> str | None:
        """A shared card's button: only from the card's own chat, never used up; the feature's
        use case decides for this person (eligibility, once per person)."""
        incoming = ctx.incoming
        handler = self.registry.shared_tickets.get(ticket.kind)
        if (
            handler is None
            or ticket.used_at is not None
            or (ticket.channel, ticket.chat_id) != (incoming.channel, incoming.chat.chat_id)
        ):
            return None if typed else self._expired(ctx, "stale")
        await self._interrupting(ctx, handler, ticket.subject_id, ticket.choices[index])
        return "ok"

    @staticmethod
    async def _interrupting(
        ctx: Context, handler: TicketHandler, subject_id: int, choice: str
    ) -> None:
        """A card's button, pressed while the person may have a conversation open: the card's
        handler may ask its own question (the open one then waits inside it, see
        Context._suspend) or answer at once (the open one simply goes on)."""
        before = ctx.interrupted = ctx.state
        await handler(ctx, subject_id, choice)
        ctx.interrupted = None
        if before is not None and ctx.state in (None, before):
            ctx.state = before
            ctx.resumed = True

    @staticmethod
    def _expired(ctx: Context, outcome: str) -> str:
        if not ctx.incoming.chat.private:
            # A group's card: only the presser hears it, and its buttons stay for the others
            # (a forged press must not take them away).
            ctx.answer_press(ctx._(EXPIRED))
            ctx.clear_pressed = False
        else:
            ctx.say(ctx._(EXPIRED))
        return outcome
