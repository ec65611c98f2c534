"""Sends outbox rows through whichever channel can reach the person (DESIGN.md "Broadcasts")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from handlers.messages import Outgoing
from services import outbox
from services.sql import Transaction

log = logging.getLogger("linli.delivery")


class RecipientBlocked(Exception):
    """The person blocked the bot or left; retrying will not help."""


class Sender(Protocol):
    name: str

    async def send(self, chat_id: str, message: Outgoing) -> None: ...


class OutboxDispatcher:
    def __init__(
        self,
        transaction: Transaction,
        clock: Callable[[], datetime],
    ) -> None:
        self.transaction = transaction
        self.clock = clock
        self.senders: dict[str, Sender] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[int]] = set()

    def register(self, sender: Sender) -> None:
        self.senders[sender.name] = sender

    async def kick(self) -> None:
        """Send soon without making the caller wait for the network."""
        task = asyncio.create_task(self.run_once())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for kicked sends; tests and shutdown use it."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run_once(self) -> int:
        async with self._lock:
            async with self.transaction() as session:
                deliveries = await outbox.claim(session, self.clock())
            sent = 0
            for delivery in deliveries:
                status, error = await self._deliver(delivery)
                sent += status == "sent"
                async with self.transaction() as session:
                    await outbox.settle(session, delivery.message_id, status, self.clock(), error)
            return sent

    async def _deliver(self, delivery: outbox.Delivery) -> tuple[str, str | None]:
        message = Outgoing.from_dict(delivery.payload)
        reachable = [(c, chat) for c, chat in delivery.identities if c in self.senders]
        if not reachable:
            return "unreachable", "no private chat on a running channel"
        last_error: str | None = None
        for channel, chat_id in reachable:
            try:
                await self.senders[channel].send(chat_id, message)
                return "sent", None
            except RecipientBlocked as exc:
                last_error = f"blocked: {exc}"
            except Exception as exc:
                log.warning(
                    "outbox send failed id=%s channel=%s: %s", delivery.message_id, channel, exc
                )
                return "failed", str(exc)
        return "blocked", last_error
