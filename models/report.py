"""随手拍 photo reports, their media, their timeline and their followers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Report(Base):
    __tablename__ = "report"
    __table_args__ = (
        # The duplicate search: open reports of one category at one building or place.
        Index("ix_report_category_building_state", "category", "building_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The short public number, e.g. R-2026-000123; set right after the row gets its id.
    number: Mapped[str | None] = mapped_column(String(20), unique=True, default=None)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id"), default=None)
    # The grid whose worker answers for it: the building's, or the reporter's for a shared place.
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id"), default=None)
    place: Mapped[str | None] = mapped_column(String(100), default=None)  # a shared place
    place_detail: Mapped[str] = mapped_column(String(200), default="")
    latitude: Mapped[float | None] = mapped_column(default=None)
    longitude: Mapped[float | None] = mapped_column(default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    # Who owns the fix: grid_worker, property, or department:<name>.
    owner: Mapped[str] = mapped_column(String(100))
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id"), index=True, default=None
    )
    due_at: Mapped[datetime | None] = mapped_column(index=True, default=None)
    # When the assignee is reminded (reminder_fraction of the SLA); cleared once reminded.
    remind_at: Mapped[datetime | None] = mapped_column(index=True, default=None)
    reminded_at: Mapped[datetime | None] = mapped_column(default=None)
    # When it climbs the next rung if still open (services/reports/routing.py); None at the top.
    escalate_at: Mapped[datetime | None] = mapped_column(index=True, default=None)
    escalation_level: Mapped[int] = mapped_column(default=0)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("report.id"), default=None)
    reject_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    rating: Mapped[int | None] = mapped_column(default=None)
    rating_comment: Mapped[str | None] = mapped_column(String(500), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ReportMedia(Base):
    """A photo (before or after the fix) or a voice note, by its content-addressed key."""

    __tablename__ = "report_media"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # before | after | voice
    media_key: Mapped[str] = mapped_column(String(64))
    thumb_key: Mapped[str | None] = mapped_column(String(64), default=None)
    phash: Mapped[str | None] = mapped_column(String(32), default=None)
    mime_type: Mapped[str] = mapped_column(String(64), default="image/jpeg")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportEvent(Base):
    """One line of the report's timeline: who moved it, when, from what to what, and why."""

    __tablename__ = "report_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    action: Mapped[str] = mapped_column(String(20))
    from_state: Mapped[str | None] = mapped_column(String(16), default=None)
    to_state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(1000), default="")


class ReportFollower(Base):
    """Residents who said "this is the same" follow the report and hear what the reporter hears."""

    __tablename__ = "report_follower"

    report_id: Mapped[int] = mapped_column(ForeignKey("report.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
