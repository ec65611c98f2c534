"""Where processed photos live: a tiny interface, so an S3-compatible store can come later.

Media travel by content key (DESIGN.md step 3): a channel opens the bytes by key, and the web
app serves them at a signed URL, so another worker, the dashboard or Open311 can show the same
photo without sharing a path."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

# Keys are SHA-256 hex digests; temporary files (".incoming-…") never match.
KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class MediaStorage(Protocol):
    def put(self, key: str, data: bytes) -> str:
        """Store under `key` (idempotent: the key is the content's hash); returns the key."""
        ...

    def get(self, key: str) -> bytes: ...

    def open(self, key: str) -> BinaryIO:
        """The stored bytes as a file to read (and close); FileNotFoundError if there are none."""
        ...

    def url(self, key: str, *, lifetime: float = 3600.0) -> str:
        """Where the web app serves it: a path signed for `lifetime` seconds."""
        ...

    def verify(self, key: str, expires: str, signature: str) -> bool:
        """Was this URL (its `exp` and `sig`) made by `url`, and is it still valid?"""
        ...

    def exists(self, key: str) -> bool: ...

    def keys_older_than(self, timestamp: float) -> Iterator[str]:
        """Keys of files last stored before `timestamp` (seconds since the epoch)."""
        ...

    def delete_if_older(self, key: str, timestamp: float) -> bool:
        """Delete unless stored again since `timestamp`; True when deleted."""
        ...


MEDIA_PATH = "/media"


def signature(secret: bytes, key: str, expires: int) -> str:
    return hmac.new(secret, f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed(secret: bytes, key: str, expires: str, given: str, now: float) -> bool:
    """Is `given` the signature of `key` until `expires`, and is that still in the future?"""
    if not expires.isdigit() or int(expires) < now:
        return False
    return hmac.compare_digest(signature(secret, key, int(expires)), given)


class LocalStorage:
    """Content-addressed files under a directory, fanned out by the hash's first two bytes.

    `secret` signs the URLs the web app serves; several workers need the same one (a random
    one per process otherwise: its links work only there)."""

    def __init__(self, root: str | os.PathLike[str], *, secret: bytes | None = None) -> None:
        self.root = Path(root)
        self.secret = secret or secrets.token_bytes(32)

    def path(self, key: str) -> Path:
        """This store's own file for `key` (not part of MediaStorage: another store has none)."""
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad media key {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def url(self, key: str, *, lifetime: float = 3600.0) -> str:
        expires = int(time.time() + lifetime)
        return f"{MEDIA_PATH}/{key}?exp={expires}&sig={signature(self.secret, key, expires)}"

    def verify(self, key: str, expires: str, signature: str) -> bool:
        return signed(self.secret, key, expires, signature, time.time())

    def put(self, key: str, data: bytes) -> str:
        target = self.path(key)
        if target.exists():
            # Stored again: the garbage collector's grace period starts over for this file,
            # which a new draft may now reference.
            os.utime(target)
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash never leaves half a photo under its final name.
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def keys_older_than(self, timestamp: float) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for directory, _subdirs, files in os.walk(self.root):
            for name in files:
                if (
                    KEY_PATTERN.match(name)
                    and os.stat(os.path.join(directory, name)).st_mtime < timestamp
                ):
                    yield name

    def delete_if_older(self, key: str, timestamp: float) -> bool:
        target = self.path(key)
        try:
            if target.stat().st_mtime >= timestamp:
                return False
            target.unlink()
        except FileNotFoundError:
            return False
        return True
