"""Where processed photos live: a tiny interface, so an S3-compatible store can come later."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

# Keys are SHA-256 hex digests; temporary files (".incoming-…") never match.
KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class MediaStorage(Protocol):
    def put(self, key: str, data: bytes) -> str:
        """Store under `key` (idempotent: the key is the content's hash); returns the key."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def keys_older_than(self, timestamp: float) -> Iterator[str]:
        """Keys of files last stored before `timestamp` (seconds since the epoch)."""
        ...

    def delete_if_older(self, key: str, timestamp: float) -> bool:
        """Delete unless stored again since `timestamp`; True when deleted."""
        ...


class LocalStorage:
    """Content-addressed files under a directory, fanned out by the hash's first two bytes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad media key {key!r}")
        return self.root / key[:2] / key[2:4] / key

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
