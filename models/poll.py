"""Polls, their ballots and the append-only log that anyone can check (DESIGN.md "Votes")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Poll(Base):
    __tablename__ = "poll"

    id: Mapped[int] = mapped_column(primary_key=True)
    # community | grid | building (services/scopes.py)
    scope: Mapped[str] = mapped_column(String(16))
    # poll: a building poll (/poll); agenda: a month's agenda ballot, run by its cycle.
    purpose: Mapped[str] = mapped_column(String(16), default="poll", server_default="poll")
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id"), default=None)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id"), default=None)
    question: Mapped[str] = mapped_column(String(300))
    options: Mapped[list[str]] = mapped_column(JSON)
    # 1: single choice; more: up to that many options.
    max_choices: Mapped[int] = mapped_column(default=1)
    anonymous: Mapped[bool] = mapped_column(default=False)
    per_household: Mapped[bool] = mapped_column(default=False)
    quorum_percent: Mapped[int | None] = mapped_column(default=None)
    deadline: Mapped[datetime] = mapped_column(index=True)
    # Sent privately to every eligible resident (on top of the scope's group chats).
    private: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    # The log's first leaf, published when the poll opens: no history can be prepared before.
    seed: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Non-voters were reminded (a day before the deadline), once.
    reminded_at: Mapped[datetime | None] = mapped_column(default=None)
    # Published at the close: the tree's root and size, the counts, turnout and eligibility.
    root: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int | None] = mapped_column(default=None)
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class Ballot(Base):
    """The current ballot of one eligible unit (a resident, or a household): one per poll,
    enforced by the database. A changed vote overwrites it; the log keeps every version."""

    __tablename__ = "ballot"
    __table_args__ = (
        UniqueConstraint("poll_id", "voter"),
        # The tally reads this index only, not the rows (each carries its leaf's entry). The
        # voter comes before the choices so that no index on the poll alone can be taken to
        # find one unit's ballot (migration 0012).
        Index("ix_ballot_poll_id_voter_choices", "poll_id", "voter", "choices"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("poll.id"))
    # "person:7" or "household:3"; in an anonymous poll a token derived with a key that is not
    # in the database, so that a dump alone does not say who chose what.
    voter: Mapped[str] = mapped_column(String(80))
    # Who cast it, in a named poll only (None in an anonymous one).
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), default=None)
    # Bit n set: option n (from 0) chosen. Tallied in SQL, one pass.
    choices: Mapped[int] = mapped_column(BigInteger)
    proxy: Mapped[bool] = mapped_column(default=False)
    # Its latest version as a leaf of the log: the entry as hashed and its hash, the voter's
    # receipt (a change names the receipt it replaces, and is written only over that one). The
    # leaf is appended to the log by the database when the ballot commits (migration 0011).
    entry: Mapped[str] = mapped_column(Text)
    receipt: Mapped[str] = mapped_column(String(64))
    # In an anonymous poll: who cast the unit's first ballot, as a token only the key matches,
    # and the points it earns them at the close (services/voting/awards.py).
    caster: Mapped[str | None] = mapped_column(String(40), default=None)
    award: Mapped[int] = mapped_column(default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BallotEvent(Base):
    """A leaf of the poll's Merkle tree: the entry as hashed, and its leaf hash.

    Leaf 1 is the poll's seed, written when it opens; each ballot's leaf is appended by a
    trigger when the ballot commits, one at a time per poll (migration 0011): ballots of a poll
    are written side by side, and only their placing in the log, inside the commit, waits."""

    __tablename__ = "ballot_event"

    poll_id: Mapped[int] = mapped_column(ForeignKey("poll.id"), primary_key=True)
    index: Mapped[int] = mapped_column(primary_key=True)  # from 1, as pymerkle counts
    entry: Mapped[str] = mapped_column(Text)  # canonical JSON
    digest: Mapped[str] = mapped_column(String(64), index=True)  # hex: the voter's receipt
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ProxyGrant(Base):
    """A resident without a phone lets someone (their building head) vote for them: in one
    poll, or in every poll and agenda vote of a month. Recorded by staff, revocable, audited."""

    __tablename__ = "proxy_grant"

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    proxy_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    poll_id: Mapped[int | None] = mapped_column(ForeignKey("poll.id"), default=None)
    month: Mapped[str | None] = mapped_column(String(7), default=None)  # "2026-12"
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
