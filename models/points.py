"""Points owed before the double-entry ledger exists; the ledger issue settles them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class PendingAward(Base):
    __tablename__ = "pending_award"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    points: Mapped[int]
    reason: Mapped[str] = mapped_column(String(64))  # e.g. report.accepted
    # Unique, so awarding the same thing twice (a retried update) cannot pay twice.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(default=None)
