"""The key behind anonymous voters' tokens (from the configuration, or a file made once), and
the tokens."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def voter_key(configured: str, key_file: str) -> bytes:
    if configured:
        return configured.encode()
    path = Path(key_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Created readable by its owner only, and never overwritten: a second key would
            # make every anonymous voter a new one.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_hex(32))
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path}: the voter key is too short")
    return key.encode()


def voter_token(key: bytes, poll_id: int, unit: str) -> str:
    """Who, in an anonymous poll: stable per poll and unit, meaningless without the key."""
    return hmac.new(key, f"{poll_id}:{unit}".encode(), hashlib.sha256).hexdigest()[:40]
