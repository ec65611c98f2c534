"""Photos and voice notes are fetched, checked and stored before the update's transaction.

Decoding a 12 MP photo takes about 100 ms (bench/media.py). Doing it inside the transaction
would hold SQLite's single writer that long, so the engine runs intake first and the flow only
sees the outcome: a `StoredMedia` or a `media_problem`. Storage is content-addressed, so a
photo stored for an update that is then dropped as a duplicate costs nothing but disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from handlers.messages import FileRef, Incoming, Kind, StoredMedia
from services.media import MediaLimits, MediaRejected, MediaStorage, process_photo

log = logging.getLogger("linli.intake")

# How a channel hands over a file's bytes, refusing more than `limit` of them.
Fetch = Callable[[FileRef, int], Awaitable[bytes]]


class FileTooBig(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


class MediaIntake:
    def __init__(
        self,
        storage: MediaStorage,
        fetchers: Mapping[str, Fetch],
        limits: MediaLimits,
        max_voice_bytes: int,
    ) -> None:
        self.storage = storage
        # Filled in by the assembly as channels start; read at call time.
        self.fetchers = fetchers
        self.limits = limits
        self.max_voice_bytes = max_voice_bytes

    async def __call__(self, incoming: Incoming) -> Incoming:
        if not incoming.chat.private or incoming.kind not in (Kind.PHOTO, Kind.VOICE):
            return incoming
        ref = incoming.photo if incoming.kind is Kind.PHOTO else incoming.voice
        fetch = self.fetchers.get(incoming.channel)
        if ref is None or fetch is None:
            return replace(incoming, media_problem="unreadable")
        limit = self.limits.max_bytes if incoming.kind is Kind.PHOTO else self.max_voice_bytes
        try:
            data = await fetch(ref, limit)
        except FileTooBig:
            return replace(incoming, media_problem="too_big")
        except Exception as exc:
            log.warning("could not fetch %s from %s: %s", ref.file_ref, incoming.channel, exc)
            return replace(incoming, media_problem="unreadable")
        try:
            media = await asyncio.to_thread(self._store, incoming.kind, data)
        except MediaRejected as rejected:
            return replace(incoming, media_problem=rejected.reason)
        return replace(incoming, media=media)

    def _store(self, kind: Kind, data: bytes) -> StoredMedia:
        if kind is Kind.VOICE:
            key = hashlib.sha256(data).hexdigest()
            self.storage.put(key, data)
            return StoredMedia("voice", key)
        photo = process_photo(data, self.limits)
        self.storage.put(photo.key, photo.jpeg)
        self.storage.put(photo.thumb_key, photo.thumbnail)
        return StoredMedia("photo", photo.key, photo.thumb_key, photo.phash, photo.gps)
