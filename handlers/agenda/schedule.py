"""What the tick does for the agenda: move the cycle when a phase is due, and remind those who
have not voted a day before the close. `linli agenda advance` runs the same `advance`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.flow import Notifier
from handlers.i18n import Catalogs
from handlers.notices import NoticeKinds
from models import Poll
from services.agenda import cycles, notices
from services.agenda.rules import AgendaRules

log = logging.getLogger("linli.agenda")


@dataclass
class AgendaJobs:
    rules: AgendaRules
    catalogs: Catalogs
    default_locale: str
    kinds: NoticeKinds
    voter_key: Callable[[], bytes]

    def _notifier(self, session: AsyncSession, now: datetime) -> Notifier:
        return Notifier(session, self.catalogs, self.default_locale, now, self.kinds)

    async def advance(
        self,
        session: AsyncSession,
        now: datetime,
        *,
        expected: str | None = None,
        actor_label: str = "",
    ) -> cycles.Moved | None:
        """Move the cycle and tell whoever must hear of it, in the caller's transaction."""
        moved = await cycles.advance(
            session, self.rules, now, self.voter_key(), expected=expected, actor_label=actor_label
        )
        if moved is not None:
            await self._notifier(session, now).tell(moved.notices)
            log.info("agenda cycle=%s phase=%s", moved.cycle.id, moved.phase)
        return moved

    async def __call__(self, session: AsyncSession, now: datetime) -> int:
        done = 0
        due = await cycles.due(session, self.rules, now)
        if due is not None:
            try:
                async with session.begin_nested():
                    if await self.advance(session, now, expected=due.phase, actor_label="tick"):
                        done += 1
            except Exception:
                log.exception("agenda phase %s not moved", due.phase)
        cycle = await cycles.due_reminder(session, now)
        if cycle is not None:
            async with session.begin_nested():
                poll = await session.get(Poll, cycle.poll_id)
                assert poll is not None
                cycle.reminded_at = now
                await self._notifier(session, now).tell(
                    await notices.reminder(session, poll, self.voter_key())
                )
                done += 1
        return done
