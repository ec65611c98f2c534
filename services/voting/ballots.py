"""Casting a ballot: one current ballot per eligible unit, every version a leaf of the log."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Ballot, BallotEvent, Person, Poll
from services.voting import log, polls


class Refusal(enum.StrEnum):
    UNKNOWN = "unknown"
    CLOSED = "closed"
    NOT_ELIGIBLE = "not_eligible"
    BAD_CHOICE = "bad_choice"
    TOO_MANY = "too_many"


@dataclass(frozen=True)
class Receipt:
    """The ballot's leaf hash: it proves the ballot is in the log, not what it says (each
    entry carries a secret salt, so nobody can rebuild it from what they chose)."""

    digest: str
    changed: bool = False  # it replaced the unit's earlier ballot
    unchanged: bool = False  # the same ballot again: nothing was added


def voter_token(key: bytes, poll_id: int, unit: str) -> str:
    """Who, in an anonymous poll: stable per poll and unit, meaningless without the key."""
    return hmac.new(key, f"{poll_id}:{unit}".encode(), hashlib.sha256).hexdigest()[:40]


def mask_of(picks: Sequence[int]) -> int:
    return sum(1 << n for n in set(picks))


def picks_of(mask: int) -> list[int]:
    return [n for n in range(mask.bit_length()) if mask >> n & 1]


async def cast(
    session: AsyncSession,
    poll_id: int,
    person_id: int,
    chosen: Sequence[int],
    now: datetime,
    key: bytes,
    *,
    proxy: bool = False,
) -> Receipt | Refusal:
    """`person_id` votes `chosen` (option numbers from 0); `proxy`: someone cast it for them."""
    poll = await polls.locked(session, poll_id)
    if poll is None:
        return Refusal.UNKNOWN
    if poll.status != "open" or poll.deadline <= now:
        return Refusal.CLOSED
    voter_row = (
        await session.execute(polls.eligible_people(poll).where(Person.id == person_id))
    ).first()
    if voter_row is None:
        return Refusal.NOT_ELIGIBLE
    picks = sorted(set(chosen))
    if not picks or any(not 0 <= n < len(poll.options) for n in picks):
        return Refusal.BAD_CHOICE
    if len(picks) > poll.max_choices:
        return Refusal.TOO_MANY
    unit = f"household:{voter_row[1]}" if poll.per_household else f"person:{person_id}"
    voter = voter_token(key, poll.id, unit) if poll.anonymous else unit
    mask = mask_of(picks)
    ballot = await session.scalar(
        select(Ballot)
        .where(Ballot.poll_id == poll.id, Ballot.voter == voter)
        .execution_options(populate_existing=True)
    )
    if ballot is not None and (ballot.choices, ballot.proxy) == (mask, proxy):
        digest = await session.scalar(
            select(BallotEvent.digest).where(
                BallotEvent.poll_id == poll.id, BallotEvent.index == ballot.leaf
            )
        )
        return Receipt(str(digest), unchanged=True)
    entry = {
        "poll": poll.id,
        "n": poll.log_size + 1,
        "voter": voter,
        "choices": picks,
        "proxy": proxy,
        "replaces": ballot.leaf if ballot is not None else None,
        "salt": secrets.token_hex(16),
    }
    digest = polls.append(session, poll, entry, now)
    who = None if poll.anonymous else person_id
    if ballot is None:
        session.add(
            Ballot(
                poll_id=poll.id,
                voter=voter,
                person_id=who,
                choices=mask,
                proxy=proxy,
                leaf=poll.log_size,
                updated_at=now,
            )
        )
    else:
        ballot.choices, ballot.proxy, ballot.leaf = mask, proxy, poll.log_size
        ballot.person_id, ballot.updated_at = who, now
    await session.flush()
    return Receipt(digest, changed=ballot is not None)


@dataclass(frozen=True)
class Verified:
    poll_id: int
    index: int
    size: int  # the tree it is checked against: the published one once the poll is closed
    root: str
    proof: dict[str, object]


async def verify(session: AsyncSession, receipt: str) -> Verified | None:
    """Is this receipt a leaf of its poll's log? With the proof, checked here against the
    published root (the current one while the poll is open), for anyone to check again."""
    receipt = receipt.strip().lower()
    if len(receipt) != 64 or any(c not in "0123456789abcdef" for c in receipt):
        return None
    event = await session.scalar(select(BallotEvent).where(BallotEvent.digest == receipt))
    if event is None:
        return None
    poll = await session.get(Poll, event.poll_id)
    assert poll is not None
    size = poll.size if poll.size is not None else poll.log_size
    if event.index > size:
        return None
    leaves = await polls.leaves(session, poll.id, size)
    root = log.root_of(leaves)
    proof = log.prove(leaves, event.index)
    if not log.verify(bytes.fromhex(receipt), root, proof):
        return None
    if poll.root is not None and root.hex() != poll.root:
        return None
    return Verified(poll.id, event.index, size, root.hex(), proof)
