"""Collects stored files that nothing references (DESIGN.md "Security": nothing kept for nobody).

Photos and voice notes are stored before the update that brought them is handled, so a draft
that is cancelled, times out or is refused leaves files behind. Storage is content-addressed, so
one file may belong to a draft and to a submitted report at once: a file goes only when no
report, open conversation, queued notice or kept reply names it, and only after a grace period
longer than any conversation lives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    AgendaItem,
    AgendaUpdate,
    Broadcast,
    Conversation,
    OutboxMessage,
    ProcessedUpdate,
    ReportMedia,
)
from services.media.storage import KEY_PATTERN, MediaStorage

log = logging.getLogger("linli.media")


async def referenced_keys(session: AsyncSession) -> set[str]:
    """Every media key the database still needs: reports, agenda items and their follow-up,
    drafts and messages not yet sent."""
    keys: set[str] = set()
    for media_key, thumb_key in await session.execute(
        select(ReportMedia.media_key, ReportMedia.thumb_key)
    ):
        keys.add(media_key)
        if thumb_key:
            keys.add(thumb_key)
    for table in (AgendaItem, AgendaUpdate):
        keys.update(
            key
            for key in await session.scalars(
                select(table.photo_key).where(table.photo_key.is_not(None))
            )
            if key
        )
    # An announcement's photo or document: sent at its time, and again to those who have not
    # acknowledged it.
    keys.update(
        key
        for key in await session.scalars(
            select(Broadcast.media_key).where(Broadcast.media_key.is_not(None))
        )
        if key
    )
    documents: list[Any] = list(await session.scalars(select(Conversation.data)))
    documents += list(
        await session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.status.in_(("pending", "sending")))
        )
    )
    documents += list(
        await session.scalars(
            select(ProcessedUpdate.replies).where(ProcessedUpdate.replies.is_not(None))
        )
    )
    keys.update(_keys_in(documents))
    return keys


def _keys_in(value: Any) -> Iterable[str]:
    """Keys mentioned anywhere in a JSON document, as a key or as a stored file's path."""
    if isinstance(value, str):
        name = value.rsplit("/", 1)[-1]
        if KEY_PATTERN.match(name):
            yield name
    elif isinstance(value, dict):
        for item in value.values():
            yield from _keys_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys_in(item)


@dataclass
class MediaCollector:
    """A tick job; the scan itself runs at most once per `every`, in a thread."""

    storage: MediaStorage
    grace: timedelta = timedelta(days=1)
    every: timedelta = timedelta(hours=1)
    _due: float = field(default=0.0, init=False)

    async def __call__(self, session: AsyncSession, now: datetime) -> int:
        # File ages are wall-clock facts (their mtime), not business time.
        if time.monotonic() < self._due:
            return 0
        self._due = time.monotonic() + self.every.total_seconds()
        return await self.collect(session)

    async def collect(self, session: AsyncSession) -> int:
        cutoff = time.time() - self.grace.total_seconds()
        old = await asyncio.to_thread(lambda: set(self.storage.keys_older_than(cutoff)))
        if not old:
            return 0
        doomed = old - await referenced_keys(session)
        deleted = await asyncio.to_thread(
            lambda: sum(self.storage.delete_if_older(key, cutoff) for key in doomed)
        )
        if deleted:
            log.info("media collected files=%d", deleted)
        return deleted
