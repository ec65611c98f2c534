"""Group chats the bot is in, and which part of the community each one serves."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class GroupChat(Base):
    """Poll cards, results and broadcasts go to the group chats of their scope.

    A group is linked to a scope (a building, a grid or the whole community) by a building head
    or a staff member, or from the command line; until then it serves nothing.
    """

    __tablename__ = "group_chat"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255), default="")
    # community | grid | building; None: not linked (yet, or any more).
    scope: Mapped[str | None] = mapped_column(String(16), default=None)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id"), default=None)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id"), default=None)
    # None when linked from the command line.
    linked_by: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    linked_at: Mapped[datetime | None] = mapped_column(default=None)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the bot was removed (or Telegram answered 403): nothing more is sent there, and
    # queued messages are settled, until the bot is back (`/group`, adding it, `group link`).
    left_at: Mapped[datetime | None] = mapped_column(default=None)
