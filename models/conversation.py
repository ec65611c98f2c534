"""Dialogue state and the keys of updates already handled, both kept in the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
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
    """One row per platform update key; the primary key makes a redelivery a no-op."""

    __tablename__ = "processed_update"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class PendingReply(Base):
    """The replies to one handled update, kept until the channel has sent them.

    Written in the update's transaction and deleted once sent, so a crash between the commit and
    the send loses nothing: a redelivery of the update, or the tick, sends them again.
    """

    __tablename__ = "pending_reply"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    messages: Mapped[list[dict[str, Any]]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
