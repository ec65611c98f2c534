"""Participation points: awards recorded before the ledger settled them, and the ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
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


# --- The ledger (issue 12): accounts, transfers and their entries --------------------------
# A person's account never goes below zero: the check is the database's, so no interleaving of
# transfers can overdraw one. System accounts (the community's issuing account, the reward
# store, the time-bank pool) are where points come from and go to; they may go below zero and
# keep no balance row of their own to update, so awards do not queue on one hot row (their
# balance is the sum of their entries).


class PointsAccount(Base):
    __tablename__ = "points_account"
    __table_args__ = (
        UniqueConstraint("person_id", "unit"),
        UniqueConstraint("system", "unit"),
        CheckConstraint("(person_id IS NULL) <> (system IS NULL)", name="one_owner"),
        CheckConstraint("system IS NOT NULL OR balance >= 0", name="never_negative"),
        # A few rows updated by every transfer: room on each page for their new versions,
        # so that they stay on it (HOT) while other sessions hold the page; packed full, the
        # updates spilled to other pages and into the indexes, and the bench slowed from
        # about 1,050 to 800 transfers/s over 100,000 transfers.
        {"postgresql_with": {"fillfactor": "20"}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    # issuing | store | timebank_pool
    system: Mapped[str | None] = mapped_column(String(16), default=None)
    unit: Mapped[str] = mapped_column(String(8))  # points | minutes
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointsTransfer(Base):
    """One movement of value: its entries sum to zero per unit. Never updated nor deleted; a
    mistake is corrected by a reversing transfer (`reverses`)."""

    __tablename__ = "points_transfer"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The same key twice is the same transfer: the second call returns the first.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    reason: Mapped[str] = mapped_column(String(64))  # a reason code, e.g. report.accepted
    # What it is for: "report:12", "poll:3", "redemption:5", "note" (a staff member's).
    reference: Mapped[str] = mapped_column(String(128), default="")
    note: Mapped[str | None] = mapped_column(Text, default=None)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    # Reversed once: the reversal's idempotency key is made from the reversed transfer's id.
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("points_transfer.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointsEntry(Base):
    __tablename__ = "points_entry"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="not_zero"),
        # An account's latest entries (`/points`), newest first.
        Index("ix_points_entry_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key to the transfer: an entry is written by the same statement as its
    # transfer, neither can be changed or deleted afterwards (migration 0013), and `linli audit
    # points` finds an entry without one; the check per entry cost the ledger's hot path a
    # lookup and a row lock. The account's key stays: accounts are not append-only.
    transfer_id: Mapped[int] = mapped_column(index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("points_account.id"))
    amount: Mapped[int] = mapped_column(BigInteger)  # signed: + credits the account


class Reward(Base):
    """A reward of the catalog, redeemed at the community service centre. Its stock is taken
    by a conditional update (never below zero, as a balance)."""

    __tablename__ = "reward"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_never_negative"),
        CheckConstraint("price > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(60))
    price: Mapped[int]  # in points
    stock: Mapped[int]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Redemption(Base):
    """A reward redeemed: its points moved to the store at once (held there), and a pickup
    code. Picked up, it is done; unclaimed by `expires_at`, the points come back."""

    __tablename__ = "redemption"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The same request twice (a button pressed twice, a redelivered update) is one redemption.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("reward.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    price: Mapped[int]
    code: Mapped[str] = mapped_column(String(12), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="held", index=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("points_transfer.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    # Picked up (by whom) or expired (refunded by which transfer).
    settled_at: Mapped[datetime | None] = mapped_column(default=None)
    picked_up_by: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    refund_transfer_id: Mapped[int | None] = mapped_column(
        ForeignKey("points_transfer.id"), default=None
    )


class LeaderboardMember(Base):
    """A resident who chose to be named on their building's leaderboard (`/points top`); the
    others are only counted there."""

    __tablename__ = "leaderboard_member"

    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointsStatement(Base):
    """A monthly statement sent (or being sent): one per person and month, so a tick that runs
    twice, or two workers, send it once."""

    __tablename__ = "points_statement"

    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-11"
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- The time bank (时间银行): help asked, given and paid in minutes -------------------------


class TimebankRequest(Base):
    """A resident's request for help (`/timebank`), with an estimate; a volunteer takes it, and
    the requester confirms the real time, which moves that many minutes to the volunteer."""

    __tablename__ = "timebank_request"
    __table_args__ = (
        CheckConstraint("estimate_minutes > 0", name="estimate_positive"),
        Index("ix_timebank_request_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    what: Mapped[str] = mapped_column(String(200))
    estimate_minutes: Mapped[int]
    # open → accepted → done; open or accepted → cancelled; accepted → open (withdrawn)
    status: Mapped[str] = mapped_column(String(16), default="open")
    volunteer_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id"), default=None, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    done_at: Mapped[datetime | None] = mapped_column(default=None)
    # Confirmed by the requester: the real time; what their own minutes paid of it and what
    # the pool covered (an elderly resident's), and the transfer that moved them.
    minutes: Mapped[int | None] = mapped_column(default=None)
    own_minutes: Mapped[int | None] = mapped_column(default=None)
    pool_minutes: Mapped[int | None] = mapped_column(default=None)
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("points_transfer.id"), default=None)


class TimebankElder(Base):
    """An elderly resident whom staff marked: help they cannot pay with their own minutes is
    covered by the time-bank pool, up to a monthly cap."""

    __tablename__ = "timebank_elder"

    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    marked_by: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)


class TimebankCoverage(Base):
    """Minutes the pool covered for one person in one month (community time). Taken by a
    conditional update that never passes the cap, so two confirmations at once cannot."""

    __tablename__ = "timebank_coverage"
    __table_args__ = (CheckConstraint("minutes >= 0", name="minutes_never_negative"),)

    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-12"
    minutes: Mapped[int] = mapped_column(default=0, server_default="0")
