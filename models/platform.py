"""What the platforms lend us for a while: API access tokens, shared by every process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class PlatformToken(Base):
    """A platform's current access token (WeChat's), so that every process uses the same one.

    WeChat invalidates the previous token when a new one is fetched (stable_token with
    force_refresh, or the plain token endpoint), so processes that each fetched their own
    would keep cutting each other off. One of them refreshes, holding this row's lease
    (`refreshing_until`); the others wait for what it writes.
    """

    __tablename__ = "platform_token"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024), default="")
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A process is fetching a new token until then; after it, anyone may (the holder died).
    refreshing_until: Mapped[datetime] = mapped_column(default=utcnow)
