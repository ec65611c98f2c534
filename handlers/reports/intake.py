"""Photos and voice notes are fetched, checked and stored before the update's transaction.

Decoding a 12 MP photo takes about 100 ms (bench/media.py). Doing it inside the transaction
would hold SQLite's single writer that long, so the engine runs intake first and the flow only
sees the outcome: a `StoredMedia` or a `media_problem`. Storage is content-addressed, so a
photo stored for an update that is then dropped as a duplicate costs nothing but disk.

Photos are fetched and decoded a few at a time (`max_concurrent_decodes`, DESIGN.md "Security"):
a burst of big photos would otherwise hold every file's bytes and decoded pixels at once (six
40-megapixel photos took the process to 1.57 GB; bench/media_burst.py). The slot is taken
before the fetch, so the bytes of a photo that waits are not read yet. Decodes run in threads
of their own, as many as there are slots, and share a memory budget read from each photo's
header (services/media/pipeline.py), so two big pictures are not decoded side by side either.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import replace

from handlers.messages import FileRef, Incoming, Kind, StoredMedia
from services.media import (
    DecodeBudget,
    MediaLimits,
    MediaRejected,
    MediaStorage,
    process_photo,
    unmap_freed_pictures,
)

log = logging.getLogger("linli.intake")

# How a channel hands over a file's bytes, refusing more than `limit` of them.
Fetch = Callable[[FileRef, int], Awaitable[bytes]]


# Telegram lets a bot download files of up to 20 MB; a PDF is stored as it came.
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
PDF_MAGIC = b"%PDF-"


def is_pdf(mime_type: str | None, name: str | None) -> bool:
    """What a platform says of a document: the only kind of document the bot takes."""
    return mime_type == "application/pdf" or (name or "").lower().endswith(".pdf")


def document_name(name: str) -> str:
    """A file name safe to send on: no path, no control characters, at most 80 characters,
    ending in .pdf."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*').strip(" .")
    stem = base[:-4] if base.lower().endswith(".pdf") else base
    return (stem[:76] or "document") + ".pdf"


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
        max_concurrent_decodes: int = 2,
    ) -> None:
        if max_concurrent_decodes < 1:
            raise ValueError("max_concurrent_decodes must be at least 1")
        self.storage = storage
        # Filled in by the assembly as channels start; read at call time.
        self.fetchers = fetchers
        self.limits = limits
        self.max_voice_bytes = max_voice_bytes
        self.max_concurrent_decodes = max_concurrent_decodes
        self.decodes = asyncio.Semaphore(max_concurrent_decodes)
        self.budget = DecodeBudget(limits.max_decode_bytes)
        # A decode can't be interrupted: if its update is cancelled, the thread still holds
        # one of these workers until it ends, so the bound holds whatever happens to the task.
        self._decoders = ThreadPoolExecutor(max_concurrent_decodes, "linli-decode")
        unmap_freed_pictures()  # or each decode thread keeps its biggest picture's memory

    async def __call__(self, incoming: Incoming) -> Incoming:
        if not incoming.chat.private or incoming.kind not in (
            Kind.PHOTO,
            Kind.VOICE,
            Kind.DOCUMENT,
        ):
            return incoming
        ref = {
            Kind.PHOTO: incoming.photo,
            Kind.VOICE: incoming.voice,
            Kind.DOCUMENT: incoming.document,
        }[incoming.kind]
        fetch = self.fetchers.get(incoming.channel)
        if ref is None or fetch is None:
            return replace(incoming, media_problem="unreadable")
        if incoming.kind is Kind.PHOTO:
            async with self.decodes:
                return await self._take(incoming, ref, fetch, self.limits.max_bytes)
        if incoming.kind is Kind.DOCUMENT:
            return await self._take(incoming, ref, fetch, MAX_DOCUMENT_BYTES)
        return await self._take(incoming, ref, fetch, self.max_voice_bytes)

    async def _take(self, incoming: Incoming, ref: FileRef, fetch: Fetch, limit: int) -> Incoming:
        try:
            data = await fetch(ref, limit)
        except FileTooBig:
            return replace(incoming, media_problem="too_big")
        except Exception as exc:
            # The reference and the error text may quote what the person typed (a console path).
            log.warning(
                "could not fetch media channel=%s key=%s error=%s",
                incoming.channel,
                incoming.update_key,
                type(exc).__name__,
            )
            return replace(incoming, media_problem="unreadable")
        try:
            if incoming.kind is Kind.PHOTO:
                # As asyncio.to_thread does, but in the decode threads: with the context.
                run = functools.partial(copy_context().run, self._store, incoming.kind, data)
                media = await asyncio.get_running_loop().run_in_executor(self._decoders, run)
            elif incoming.kind is Kind.DOCUMENT:
                media = await asyncio.to_thread(self._store_document, data, ref.name)
            else:
                media = await asyncio.to_thread(self._store, incoming.kind, data)
        except MediaRejected as rejected:
            return replace(incoming, media_problem=rejected.reason)
        return replace(incoming, media=media)

    def _store_document(self, data: bytes, name: str) -> StoredMedia:
        """A PDF as it came (it is passed on, never opened here), under its content's hash."""
        if not data.startswith(PDF_MAGIC):
            raise MediaRejected("not_a_pdf")
        key = hashlib.sha256(data).hexdigest()
        self.storage.put(key, data)
        return StoredMedia("document", key, name=document_name(name))

    def _store(self, kind: Kind, data: bytes) -> StoredMedia:
        if kind is Kind.VOICE:
            key = hashlib.sha256(data).hexdigest()
            self.storage.put(key, data)
            return StoredMedia("voice", key)
        photo = process_photo(data, self.limits, self.budget)
        self.storage.put(photo.key, photo.jpeg)
        self.storage.put(photo.thumb_key, photo.thumbnail)
        return StoredMedia("photo", photo.key, photo.thumb_key, photo.phash, photo.gps)
