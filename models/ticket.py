"""Buttons that outlive a conversation step, such as a building head's approve/reject card."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class ActionTicket(Base):
    __tablename__ = "action_ticket"
    # A card's tickets, found by what they are about (a shared card's, retired ones).
    __table_args__ = (Index("ix_action_ticket_kind_subject_id", "kind", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(16), unique=True)
    # Only this person may press it: a forwarded or forged card does nothing for anyone else.
    # None: a shared card, which anyone in its chat may press (each press is decided by the
    # feature's use case for that person), and which a press does not use up.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    channel: Mapped[str | None] = mapped_column(String(16), default=None)
    chat_id: Mapped[str | None] = mapped_column(String(64), default=None)
    kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int]
    choices: Mapped[dict[str, Any]] = mapped_column(default=dict)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
