"""Dialogue state and the keys of updates already handled, both kept in the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Conversation(Base):
    """Where one person stands in one chat; a missing row means "no flow open"."""

    __tablename__ = "conversation"
    __table_args__ = (UniqueConstraint("channel", "chat_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    flow: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(32))
    # A fresh random nonce per step: buttons from an older step no longer match it.
    nonce: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    choices: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Bumped by every save; a save that finds another version lost a race and changes nothing.
    version: Mapped[int] = mapped_column(default=0, server_default="0")
    expires_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProcessedUpdate(Base):
    """One row per platform update key, written with the update's own changes: the primary key
    makes a redelivery a no-op.

    It also keeps the update's replies until the channel has sent them (then `replies` is
    emptied), so a crash between the commit and the send loses nothing: a redelivery, or the
    tick, sends them again (DESIGN.md "Incoming duplicates").
    """

    __tablename__ = "processed_update"
    __table_args__ = (
        # The tick looks for replies a dead process left; once sent, a row leaves this index.
        Index(
            "ix_processed_update_unsent",
            "received_at",
            sqlite_where=text("replies IS NOT NULL"),
            postgresql_where=text("replies IS NOT NULL"),
        ),
    )

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    chat_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # SQL NULL once sent (not JSON null), so the partial index above drops the row.
    replies: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON(none_as_null=True), default=None
    )
