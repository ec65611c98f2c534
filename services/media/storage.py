"""Where processed photos live: a tiny interface, so an S3-compatible store can come later."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol


class MediaStorage(Protocol):
    def put(self, key: str, data: bytes) -> str:
        """Store under `key` (idempotent: the key is the content's hash); returns the key."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


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
