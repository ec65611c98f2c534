"""Staff announcements (公告): a broadcast, one delivery row per recipient chat, who
acknowledged it, and the send-rate state every process of one bot shares (DESIGN.md
"Broadcasts")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Broadcast(Base):
    __tablename__ = "broadcast"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Who composed it (their chat shows the progress and the final report); None: an
    # operator's script (`linli broadcast`).
    author_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    # Telegram's HTML subset, checked when composed; other channels get it as plain text.
    text: Mapped[str] = mapped_column(Text)
    # An optional photo (the message's picture) or PDF document (sent ahead of the text).
    media_key: Mapped[str | None] = mapped_column(String(128), default=None)
    media_kind: Mapped[str | None] = mapped_column(String(16), default=None)  # photo | document
    media_name: Mapped[str | None] = mapped_column(String(100), default=None)
    # Who: scope and audience keys, e.g. ["community"], ["grid:3", "building:7"],
    # ["role:building_head"], ["category:repair"] (services/broadcasts/audience.py).
    audience: Mapped[list[str]] = mapped_column(JSON)
    # Where: the recipients' private chats, the scopes' group chats, or both.
    private: Mapped[bool] = mapped_column(default=True)
    groups: Mapped[bool] = mapped_column(default=False)
    ack: Mapped[bool] = mapped_column(default=False)
    # scheduled → sending → done; scheduled → cancelled
    status: Mapped[str] = mapped_column(String(16), default="scheduled", index=True)
    send_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Acknowledgement: re-sends made to those who had not, when the next is due, and when the
    # building heads got their door-knock lists.
    resends: Mapped[int] = mapped_column(default=0)
    next_resend_at: Mapped[datetime | None] = mapped_column(default=None)
    doorknock_at: Mapped[datetime | None] = mapped_column(default=None)
    # The sender's progress card was last shown at (edited at most every few seconds).
    progress_at: Mapped[datetime | None] = mapped_column(default=None)


class BroadcastDelivery(Base):
    """One message of a broadcast to one chat (a person's private chat, or a group), for one
    round (0, then each re-send). Claimed by one dispatcher at a time; marked sent right after
    it went out, so after a crash only the rows in flight can go twice."""

    __tablename__ = "broadcast_delivery"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "channel", "chat_id", "round"),
        Index("ix_broadcast_delivery_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_broadcast_delivery_broadcast_id_status", "broadcast_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcast.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    group_chat_id: Mapped[int | None] = mapped_column(ForeignKey("group_chat.id"), default=None)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16), default="zh_CN")
    round: Mapped[int] = mapped_column(default=0)
    # queued → sending → sent | unreachable | failed (sending → queued: retried)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(300), default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    # How it went: telegram, console, wechat_cs (inside the 48 h window), wechat_template.
    via: Mapped[str | None] = mapped_column(String(16), default=None)


class BroadcastAck(Base):
    """A person who pressed [Got it] (or replied 1): once per broadcast."""

    __tablename__ = "broadcast_ack"

    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcast.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(16), default="")


class SendPace(Base):
    """A send rate shared by every process of one bot: the time the next message may go
    (GCRA's theoretical arrival time) for one key, e.g. "telegram" or "telegram:group:-100…".
    Taken by one conditional UPDATE, so two dispatchers together keep to the limit."""

    __tablename__ = "send_pace"

    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    next_at: Mapped[datetime]
