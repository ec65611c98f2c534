"""议事厅: the monthly agenda cycle, its proposed items, their supporters and their follow-up."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class AgendaCycle(Base):
    """One month's cycle. Its phase times are computed from `[agenda]` when it opens and kept
    here (DESIGN.md "Time"): the tick moves it when one is due, `linli agenda advance` at once."""

    __tablename__ = "agenda_cycle"

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7), unique=True)  # "2026-12"
    # proposals → voting → published
    phase: Mapped[str] = mapped_column(String(16), default="proposals", index=True)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    # New proposals are taken until then (moderation may go on until voting opens).
    proposals_close_at: Mapped[datetime] = mapped_column()
    voting_at: Mapped[datetime] = mapped_column()
    publish_at: Mapped[datetime] = mapped_column()
    votes_per_voter: Mapped[int] = mapped_column()
    council_items: Mapped[int] = mapped_column()
    per_household: Mapped[bool] = mapped_column()
    # The ballot: a poll of the voting service (one log, receipts, audit) with an option per
    # accepted item, in `AgendaItem.option` order.
    poll_id: Mapped[int | None] = mapped_column(ForeignKey("poll.id"), default=None)
    voting_opened_at: Mapped[datetime | None] = mapped_column(default=None)
    reminded_at: Mapped[datetime | None] = mapped_column(default=None)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    # The results card's chart (a media key), drawn once at publication.
    chart_key: Mapped[str | None] = mapped_column(String(128), default=None)


class AgendaItem(Base):
    __tablename__ = "agenda_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("agenda_cycle.id"), index=True)
    proposer_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    title: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(Text, default="")
    photo_key: Mapped[str | None] = mapped_column(String(128), default=None)
    # pending → accepted | merged | rejected
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reason: Mapped[str | None] = mapped_column(Text, default=None)  # a rejection's
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("agenda_item.id"), default=None)
    moderated_by: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    moderated_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Its option number (from 0) on the month's ballot.
    option: Mapped[int | None] = mapped_column(default=None)
    # At publication: its votes and rank; the top N go to the council.
    votes: Mapped[int | None] = mapped_column(default=None)
    rank: Mapped[int | None] = mapped_column(default=None)
    selected: Mapped[bool] = mapped_column(default=False)
    # After the meeting: the council's decision, then progress (planned, in_progress, done).
    decision: Mapped[str | None] = mapped_column(Text, default=None)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    progress: Mapped[str | None] = mapped_column(String(16), default=None)


class AgendaSupport(Base):
    """A resident backs an item: shown beside it, never counted as a vote."""

    __tablename__ = "agenda_support"
    __table_args__ = (UniqueConstraint("item_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("agenda_item.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AgendaUpdate(Base):
    """The follow-up of a decided item, published to its proposer and supporters."""

    __tablename__ = "agenda_update"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("agenda_item.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # planned | in_progress | done
    note: Mapped[str] = mapped_column(Text, default="")
    photo_key: Mapped[str | None] = mapped_column(String(128), default=None)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)
