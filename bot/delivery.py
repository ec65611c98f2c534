"""Sends outbox rows through whichever channel can reach the person, or to their group chat
(DESIGN.md "Broadcasts")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.messages import Capabilities, Outgoing
from services import menus, outbox, people
from services.sql import Transaction

log = logging.getLogger("linli.delivery")


class RecipientBlocked(Exception):
    """The person blocked the bot or left (or, for a group chat, the bot is no longer in it);
    retrying will not help.

    `lasting`: the chat refuses the bot until the person writes again (a block, an unfollow),
    so it is marked unreachable; False: only this message cannot go now (WeChat outside its
    window, with no template for it)."""

    def __init__(self, reason: str, *, lasting: bool = True) -> None:
        super().__init__(reason)
        self.lasting = lasting


class RateLimited(Exception):
    """The platform asked us to wait (Telegram's 429), and no part of the message went out.

    Not a failure: the same message is sent again after `retry_after` seconds, at no attempt's
    cost.
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited: retry after {retry_after:g} s")
        self.retry_after = retry_after


class Sender(Protocol):
    """A channel as the outbox sees it."""

    name: str
    # How options and cards are shown there; the dialogue engine words its messages by it.
    capabilities: Capabilities
    # The chats this process can deliver to on this channel; None: every chat of the channel.
    # A console reaches only the person at its keyboard, so other people's rows are left for
    # their own console.
    reach: frozenset[str] | None

    async def send(self, chat_id: str, message: Outgoing, *, bulk: bool = False) -> str | None:
        """`bulk`: a broadcast's, sent at the channel's pace for them. Returns how it went
        where a channel has several ways (WeChat: "wechat_cs" or "wechat_template")."""
        ...


async def remember_menu(
    session: AsyncSession, sender: Sender, chat: tuple[str, str], message: Outgoing, now: datetime
) -> None:
    """A message with options, sent privately where options are a numbered list: a digit typed
    there later answers it (DESIGN.md step 3). Where options are buttons, they are pressed."""
    if message.options and not sender.capabilities.buttons:
        await menus.show(
            session,
            *chat,
            [{"label": o.label, "payload": o.payload} for o in message.options],
            now,
        )


@dataclass(frozen=True)
class Outcome:
    status: str  # as outbox.settle takes it
    error: str | None = None
    retry_at: datetime | None = None
    # Where it was sent: a message with options becomes that chat's menu.
    chat: tuple[str, str] | None = None
    # Private chats that refused it (the person blocked the bot there): unreachable there
    # until they write again, as a broadcast marks them.
    blocked: tuple[tuple[str, str], ...] = ()


class OutboxDispatcher:
    def __init__(
        self,
        transaction: Transaction,
        clock: Callable[[], datetime],
    ) -> None:
        self.transaction = transaction
        self.clock = clock
        self.senders: dict[str, Sender] = {}
        # A channel that answered 429 gets nothing more from us until this time.
        self.paused_until: dict[str, datetime] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[int]] = set()

    def register(self, sender: Sender) -> None:
        self.senders[sender.name] = sender

    def reach(self) -> outbox.Reach:
        """Which chats the registered channels can deliver to, for `outbox.claim`."""
        return {name: sender.reach for name, sender in self.senders.items()}

    def reaches(self, channel: str, chat_id: str) -> bool:
        sender = self.senders.get(channel)
        return sender is not None and (sender.reach is None or chat_id in sender.reach)

    async def kick(self) -> None:
        """Send soon without making the caller wait for the network."""
        task = asyncio.create_task(self.run_once())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for kicked sends; tests and shutdown use it."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def poll(self, every: float = 1.0) -> None:
        """Send what is due now and then every `every` seconds, until cancelled.

        For a process without a short tick (the console): rows that another process queued
        for this one's person (a card for the worker at this keyboard) show up within `every`.
        Each round runs as a kicked send, so cancelling the poll never interrupts a batch
        halfway (its rows would stay "sending" until the claim times out): `drain` waits for it.
        """
        while True:
            task = asyncio.create_task(self._run_logged())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await asyncio.shield(task)
            await asyncio.sleep(every)

    async def _run_logged(self) -> int:
        try:
            return await self.run_once()
        except Exception:
            # A busy database or a lost connection: the next round tries again.
            log.exception("outbox round failed")
            return 0

    async def run_once(self) -> int:
        async with self._lock:
            async with self.transaction() as session:
                deliveries = await outbox.claim(session, self.clock(), reach=self.reach())
            sent = 0
            for delivery in deliveries:
                message = Outgoing.from_dict(delivery.payload)
                outcome = await self._deliver(delivery, message)
                sent += outcome.status == "sent"
                async with self.transaction() as session:
                    now = self.clock()
                    await outbox.settle(
                        session,
                        delivery.message_id,
                        outcome.status,
                        now,
                        outcome.error,
                        retry_at=outcome.retry_at,
                        payload=delivery.payload,
                    )
                    for channel, chat_id in outcome.blocked:
                        await people.unreachable(session, channel, chat_id)
                    if outcome.chat is not None and delivery.group_chat_id is None:
                        sender = self.senders[outcome.chat[0]]
                        await remember_menu(session, sender, outcome.chat, message, now)
            return sent

    async def _deliver(self, delivery: outbox.Delivery, message: Outgoing) -> Outcome:
        reachable = [(c, chat) for c, chat in delivery.identities if self.reaches(c, chat)]
        if not reachable:
            if delivery.group_chat_id is not None:
                return Outcome("unreachable", "the bot is no longer in the group")
            return Outcome("unreachable", "no private chat on a running channel")
        last_error: str | None = None
        blocked: list[tuple[str, str]] = []
        for channel, chat_id in reachable:
            paused = self.paused_until.get(channel)
            if paused is not None and paused > self.clock():
                # Waiting out a 429: the rest of the batch is not sent through this channel.
                return Outcome("deferred", last_error or "waiting out a rate limit", paused)
            try:
                await self.senders[channel].send(chat_id, message)
                return Outcome("sent", chat=(channel, chat_id), blocked=tuple(blocked))
            except RecipientBlocked as exc:
                last_error = f"blocked: {exc}"
                if exc.lasting and delivery.group_chat_id is None:
                    blocked.append((channel, chat_id))
            except RateLimited as exc:
                until = self.clock() + timedelta(seconds=exc.retry_after)
                self.paused_until[channel] = until
                log.warning(
                    "outbox rate limited id=%s channel=%s retry_after=%ss",
                    delivery.message_id,
                    channel,
                    exc.retry_after,
                )
                return Outcome("deferred", str(exc), until)
            except Exception as exc:
                log.warning(
                    "outbox send failed id=%s channel=%s: %s", delivery.message_id, channel, exc
                )
                return Outcome("failed", str(exc))
        return Outcome("blocked", last_error, blocked=tuple(blocked))
