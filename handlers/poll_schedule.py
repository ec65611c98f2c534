"""What the scheduler tick does for polls: remind non-voters a day before the deadline, and
close polls at their deadline and publish the results (DESIGN.md "Time"). Each poll is moved
in a savepoint of its own, locked, so a second tick finds nothing left to do."""

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
from services.voting import notices, polls

log = logging.getLogger("linli.polls")


@dataclass
class PollJobs:
    catalogs: Catalogs
    default_locale: str
    kinds: NoticeKinds
    voter_key: Callable[[], bytes]

    async def __call__(self, session: AsyncSession, now: datetime) -> int:
        notifier = Notifier(session, self.catalogs, self.default_locale, now, self.kinds)
        done = 0
        for poll in await notices.due_reminders(session, now):
            async with session.begin_nested():
                await notifier.tell(await notices.remind(session, poll, self.voter_key(), now))
                done += 1
        for poll_id in await notices.due_to_close(session, now):
            try:
                async with session.begin_nested():
                    closed = await polls.close(session, poll_id, now, self.voter_key())
                    if closed is not None and closed.now:
                        poll = await session.get(Poll, poll_id)
                        assert poll is not None
                        await notifier.tell(await notices.published(session, poll))
                        done += 1
            except Exception:
                log.exception("closing poll=%s failed", poll_id)
        return done
