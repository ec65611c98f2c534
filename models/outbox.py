"""Messages to people other than the one who wrote, written in the same transaction as the change.

A crash between commit and send leaves the row pending, and the scheduler tick sends it later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class OutboxMessage(Base):
    """One message to one chat: a person (through whichever private chat reaches them) or a
    group chat. A broadcast is one row per (broadcast, recipient chat), group chats included."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        # Exactly one target: a person, or a group chat.
        CheckConstraint("(person_id IS NULL) <> (group_chat_id IS NULL)", name="one_target"),
        # A group's card (a poll's, with its turnout) has one row in that group, which each
        # change rewrites: while it waits, the newest version replaces the older one.
        UniqueConstraint("card_key", "group_chat_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    group_chat_id: Mapped[int | None] = mapped_column(
        ForeignKey("group_chat.id"), default=None, index=True
    )
    # "kind:subject" of the group card this row shows (None: an ordinary message).
    card_key: Mapped[str | None] = mapped_column(String(64), default=None)
    # The neutral Outgoing, serialised; rendered per channel at send time.
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    # Not before this time: set by a 429's retry_after or by the back-off after an error.
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
