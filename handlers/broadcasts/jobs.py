"""The scheduler's part in broadcasts: scheduled ones start when their time comes, unacknowledged
urgent notices go again after N hours, and then building heads get their door-knock lists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.broadcasts.notices import DOORKNOCK
from handlers.flow import Notifier
from handlers.i18n import Catalogs
from handlers.notices import NoticeKinds
from services.broadcasts import acks, compose
from services.notices import Notice


@dataclass
class BroadcastJobs:
    catalogs: Catalogs
    default_locale: str
    kinds: NoticeKinds
    policy: acks.Policy
    # Wakes the broadcast dispatcher when rows were queued (it polls anyway).
    kick: Callable[[], None]

    async def __call__(self, session: AsyncSession, now: datetime) -> int:
        started = await compose.start_due(session, now, resend_after=self.policy.resend_after)
        resent = await acks.resend_due(session, now, self.policy)
        lists = await acks.doorknock_due(session, now, self.policy)
        notifier = Notifier(session, self.catalogs, self.default_locale, now, self.kinds)
        await notifier.tell(
            [
                Notice(
                    knock.head_id,
                    DOORKNOCK,
                    subject_id=knock.broadcast_id,
                    params={
                        "building": knock.building.name,
                        "residents": [
                            {"name": r.name, "room": r.room, "reachable": r.reachable}
                            for r in knock.residents
                        ],
                    },
                )
                for knock in lists
            ]
        )
        if started or resent:
            self.kick()
        return len(started) + len(resent) + len(lists)
