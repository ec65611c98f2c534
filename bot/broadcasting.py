"""Sends broadcasts: claims a few delivery rows at a time, renders each in its reader's
language (with its [Got it] ticket, written before it is sent), sends them concurrently at
the channel's pace for broadcasts (bot/pace.py: replies to residents go first), and settles
each row in its own transaction the moment it went out. Several processes share the rows
(services/broadcasts/deliveries.py); after a crash only the rows in flight can go twice.

The sender's progress card is edited at most every PROGRESS_EVERY and becomes the final
report when the last row is settled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import false, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery import RateLimited, RecipientBlocked, Sender, remember_menu
from handlers.broadcasts.notices import ACK, MESSAGE, progress_notice
from handlers.flow import Notifier
from handlers.i18n import Catalogs
from handlers.messages import Outgoing
from handlers.notices import NoticeKinds
from models import Broadcast, Person
from services.broadcasts import deliveries
from services.broadcasts.deliveries import Claimed
from services.notices import GroupNotice, Notice
from services.sql import Transaction

log = logging.getLogger("linli.broadcast")
PROGRESS_EVERY = timedelta(seconds=3)
# Rows claimed at once: about a second of sending at Telegram's rate, so a crash leaves
# little in flight, and enough to keep the sends going while a round trip is under way.
BATCH = 24
IDLE_POLL = 1.0


@dataclass(frozen=True)
class _Reader:
    """A recipient as the notice writer needs them."""

    id: int
    locale: str | None
    display_name: str = ""
    status: str = "active"


class BroadcastDispatcher:
    def __init__(
        self,
        transaction: Transaction,
        clock: Callable[[], datetime],
        catalogs: Catalogs,
        default_locale: str,
        kinds: NoticeKinds,
        *,
        after_notices: Callable[[], Awaitable[None]] | None = None,
        batch: int = BATCH,
        reclaim_after: timedelta = deliveries.RECLAIM_AFTER,
        max_attempts: int = deliveries.MAX_ATTEMPTS,
    ) -> None:
        self.transaction = transaction
        self.clock = clock
        self.catalogs = catalogs
        self.default_locale = default_locale
        self.kinds = kinds
        # Progress cards and reports go through the outbox: kick it when one is queued.
        self.after_notices = after_notices
        self.batch = batch
        # Rows another process claimed and never settled (it died) are sent after this long.
        self.reclaim_after = reclaim_after
        # Errors other than 429 and 403: retried with back-off, then failed with the reason.
        self.max_attempts = max_attempts
        self.senders: dict[str, Sender] = {}
        self.paused_until: dict[str, datetime] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False

    def register(self, sender: Sender) -> None:
        self.senders[sender.name] = sender

    def kick(self) -> None:
        """A broadcast started: the running loop looks now, not at its next poll."""
        self._wake.set()

    async def stop(self, running: asyncio.Task[None]) -> None:
        """The batch being sent finishes and is settled; nothing more is claimed."""
        self._stopping = True
        self._wake.set()
        await running

    async def run(self) -> None:
        """Until stopped: send what is due, then wait for a kick or the next poll."""
        while not self._stopping:
            try:
                await self.run_once()
            except Exception:
                log.exception("broadcast round failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """Send until no row is due now; how many were sent. Rows are claimed while the ones
        before them are still going out (when fewer than half a batch are in flight), so the
        pace never waits for a claim."""
        sent = 0
        async with self._lock:
            going: set[asyncio.Task[tuple[int, bool]]] = set()
            touched: set[int] = set()
            reported = self.clock()
            while not self._stopping or going:
                if not self._stopping and len(going) <= self.batch // 2:
                    for row, message in await self._claim(self.batch - len(going)):
                        going.add(asyncio.create_task(self._deliver(row, message)))
                if not going:
                    break
                done, going = await asyncio.wait(going, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    broadcast_id, ok = task.result()
                    touched.add(broadcast_id)
                    sent += ok
                if self.clock() - reported >= PROGRESS_EVERY / 3 or not going:
                    await self._progress(touched)
                    touched, reported = set(), self.clock()
        return sent

    async def _claim(self, limit: int) -> list[tuple[Claimed, Outgoing]]:
        now = self.clock()
        # What this process can send, less a channel waiting out a 429.
        reach = {
            name: sender.reach
            for name, sender in self.senders.items()
            if self.paused_until.get(name) is None or self.paused_until[name] <= now
        }
        if not reach:
            return []
        async with self.transaction() as session:
            claimed = await deliveries.claim(
                session, now, reach=reach, limit=limit, reclaim_after=self.reclaim_after
            )
            notifier = Notifier(session, self.catalogs, self.default_locale, now, self.kinds)
            return [(row, await self._render(notifier, row)) for row in claimed]

    async def _render(self, notifier: Notifier, row: Claimed) -> Outgoing:
        if row.group_chat_id is not None:
            return await self.kinds.render_group(
                notifier, GroupNotice(row.group_chat_id, MESSAGE, subject_id=row.broadcast_id)
            )
        assert row.person_id is not None
        broadcast = await notifier.session.get(Broadcast, row.broadcast_id)
        assert broadcast is not None
        notice = Notice(
            row.person_id,
            MESSAGE,
            subject_id=row.broadcast_id,
            params={"round": row.round},
            actions=(ACK,) if broadcast.ack else (),
        )
        return await self.kinds.render(notifier, _Reader(row.person_id, row.locale or None), notice)

    async def _deliver(self, row: Claimed, message: Outgoing) -> tuple[int, bool]:
        sender = self.senders[row.channel]
        status, error, retry_at, via, lasting = deliveries.SENT, None, None, None, True
        try:
            via = await sender.send(row.chat_id, message, bulk=True)
        except RecipientBlocked as exc:
            status, error, lasting = deliveries.UNREACHABLE, f"blocked: {exc}", exc.lasting
        except RateLimited as exc:
            retry_at = self.clock() + timedelta(seconds=exc.retry_after)
            self.paused_until[row.channel] = retry_at
            status, error = "deferred", str(exc)
            log.warning(
                "broadcast rate limited id=%s channel=%s retry_after=%ss",
                row.id,
                row.channel,
                exc.retry_after,
            )
        except Exception as exc:
            status, error = deliveries.FAILED, str(exc)
            log.warning("broadcast send failed id=%s channel=%s: %s", row.id, row.channel, exc)
        async with self.transaction() as session:
            now = self.clock()
            await deliveries.settle(
                session,
                row.id,
                status,
                now,
                error=error,
                retry_at=retry_at,
                via=via,
                max_attempts=self.max_attempts,
                lasting=lasting,
            )
            if status == deliveries.SENT and row.group_chat_id is None:
                await remember_menu(session, sender, (row.channel, row.chat_id), message, now)
        return row.broadcast_id, status == deliveries.SENT

    async def _edits_for(self, session: AsyncSession, person_id: int) -> bool:
        """Whether the app the person uses shows a card updated in place: elsewhere (WeChat)
        each update would be a new message, so they get only the final report."""
        channel = await session.scalar(select(Person.last_channel).where(Person.id == person_id))
        sender = self.senders.get(channel or "")
        return sender is None or sender.capabilities.edits

    async def _progress(self, broadcast_ids: set[int]) -> None:
        """The sender's card, at most every PROGRESS_EVERY (claimed by a conditional update,
        so two processes do not both edit it), and the final report once the last row is
        settled."""
        told = False
        for broadcast_id in sorted(broadcast_ids):
            async with self.transaction() as session:
                now = self.clock()
                finished = await deliveries.finish_if_done(session, broadcast_id, now)
                author = await session.scalar(
                    update(Broadcast)
                    .where(
                        Broadcast.id == broadcast_id,
                        Broadcast.author_id.is_not(None),
                        or_(
                            Broadcast.progress_at.is_(None),
                            Broadcast.progress_at <= now - PROGRESS_EVERY,
                            true() if finished else false(),
                        ),
                    )
                    .values(progress_at=now)
                    .returning(Broadcast.author_id)
                )
                if author is not None and (finished or await self._edits_for(session, author)):
                    notifier = Notifier(
                        session, self.catalogs, self.default_locale, now, self.kinds
                    )
                    await notifier.tell([progress_notice(author, broadcast_id)])
                    told = True
        if told and self.after_notices is not None:
            await self.after_notices()
