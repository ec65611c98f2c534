"""What each chat was last shown: its numbered menu, and the platform messages of its cards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class ChatMenu(Base):
    """The options of the last message with options shown in a chat, in their one numbering
    (from 1). A digit or an option's text typed there answers it, after a restart too and on
    any worker; the payloads are checked like a button press (DESIGN.md step 3)."""

    __tablename__ = "chat_menu"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # [{"label": …, "payload": …}, …]: option n is item n - 1.
    options: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    shown_at: Mapped[datetime] = mapped_column(default=utcnow)


class CardMessage(Base):
    """The platform's id of the message that shows a card in a chat, so that a later message
    for the same card edits it instead of adding another one."""

    __tablename__ = "card_message"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64))
    # With a picture, only the caption and buttons of the message can be edited.
    has_image: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
