"""Casting a ballot: one current ballot per eligible unit, every version a leaf of the log."""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Table,
    and_,
    bindparam,
    func,
    not_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from models import Ballot, BallotEvent, Poll
from services.points import pending as points_service
from services.voting import awards, log, polls
from services.voting.keys import voter_token


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


def leaf_of(
    poll_id: int, voter: str, picks: list[int], proxy: bool, replaces: str | None, salt: str
) -> tuple[bytes, str]:
    """A ballot's leaf: its canonical entry and the entry's hash, the receipt. The salt (secret,
    random) keeps anyone from rebuilding the entry, and so the choice, from the receipt."""
    encoded = log.encode(
        {
            "poll": poll_id,
            "voter": voter,
            "choices": picks,
            "proxy": proxy,
            "replaces": replaces,
            "salt": salt,
        }
    )
    return encoded, log.leaf_hash(encoded).hex()


def mask_of(picks: Sequence[int]) -> int:
    return sum(1 << n for n in set(picks))


def picks_of(mask: int) -> list[int]:
    return [n for n in range(mask.bit_length()) if mask >> n & 1]


# Casting runs for every ballot (bench/voting.py): prebuilt Core statements, few round trips,
# and no lock that one ballot of a poll holds while another waits. The database appends the
# ballot's leaf to the log at the commit (BallotEvent, migration 0011).
_POLL: Table = Poll.__table__  # type: ignore[assignment]
_BALLOT: Table = Ballot.__table__  # type: ignore[assignment]

# In one statement: the poll, whether the person may vote in it (their household), and the
# ballot of a resident's own unit, by name or by token: the caller passes both, not knowing yet
# whether the poll is anonymous, and a name ("person:…") never equals a token (hex), so one of
# the two lookups finds it at most. A household's ballot is read next, once the household is
# known. Each lookup matches both columns of the unique key to a parameter, never to an
# expression of the poll's columns nor to a list: PostgreSQL's generic plan, made in a poll's
# first seconds when the ballot table's statistics say it is nearly empty, otherwise matched the
# poll alone and read all its ballots for each cast (the bench at half speed or less).
_BY_NAME = _BALLOT.alias("by_name")
_BY_TOKEN = _BALLOT.alias("by_token")


def _own(column: str) -> Any:
    return func.coalesce(_BY_NAME.c[column], _BY_TOKEN.c[column])


def _lookup(ballot: Any, voter: str) -> Any:
    return and_(
        ballot.c.poll_id == bindparam("poll_id"),
        ballot.c.voter == bindparam(voter, type_=_BALLOT.c.voter.type),
        not_(_POLL.c.per_household),
    )


_FACTS = (
    select(
        _POLL.c.status,
        _POLL.c.deadline,
        _POLL.c.options,
        _POLL.c.max_choices,
        _POLL.c.anonymous,
        _POLL.c.per_household,
        _POLL.c.created_at,
        polls.ELIGIBLE_HOUSEHOLD.label("household_id"),
        _own("id").label("ballot_id"),
        _own("choices").label("choices"),
        _own("proxy").label("proxy"),
        _own("receipt").label("receipt"),
    )
    .select_from(
        _POLL.outerjoin(_BY_NAME, _lookup(_BY_NAME, "unit")).outerjoin(
            _BY_TOKEN, _lookup(_BY_TOKEN, "token")
        )
    )
    .where(_POLL.c.id == bindparam("poll_id"))
)
_FIND = select(_BALLOT.c.id, _BALLOT.c.choices, _BALLOT.c.proxy, _BALLOT.c.receipt).where(
    _BALLOT.c.poll_id == bindparam("poll_id"), _BALLOT.c.voter == bindparam("voter")
)
_BALLOT_COLUMNS = (
    "poll_id",
    "voter",
    "person_id",
    "choices",
    "proxy",
    "entry",
    "receipt",
    "updated_at",
    "caster",
    "award",
)
_CHANGED_COLUMNS = ("person_id", "choices", "proxy", "entry", "receipt", "updated_at")


def _first(insert: Any) -> Any:
    """The unit's first ballot, or nothing when another phone of the unit got there first: the
    unique constraint on poll and voter decides."""
    return (
        insert(_BALLOT)
        .values({c: bindparam(c) for c in _BALLOT_COLUMNS})
        .on_conflict_do_nothing(index_elements=["poll_id", "voter"])
    )


# A changed ballot, if it is still the version that was read (compare and set).
_CHANGE = (
    update(_BALLOT)
    .where(_BALLOT.c.id == bindparam("ballot_id"), _BALLOT.c.receipt == bindparam("read"))
    .values({c: bindparam(c) for c in _CHANGED_COLUMNS})
)
# PostgreSQL: the unit's first ballot and its pending award in one statement, the award only
# if the ballot was written.
_PG_WRITTEN = _first(pg_insert).returning(_BALLOT.c.updated_at).cte("written")
_PG_FIRST = (
    select(func.count())
    .select_from(_PG_WRITTEN)
    .add_cte(points_service.pending_after(_PG_WRITTEN, _PG_WRITTEN.c.updated_at))
)
_SQLITE_FIRST = _first(sqlite_insert)
# A unit's ballot read out of date is read again; phones of one household would have to change
# it this many times in a row, each between another's read and write, to wear this out.
_ATTEMPTS = 5


async def cast(
    session: AsyncSession,
    poll_id: int,
    person_id: int,
    chosen: Sequence[int],
    now: datetime,
    key: bytes,
    *,
    proxy: bool = False,
    points: int = 0,
) -> Receipt | Refusal:
    """`person_id` votes `chosen` (option numbers from 0); `proxy`: someone cast it for them.
    The unit's first ballot earns `points`, pending, for the resident it counts for (the proxy
    earns nothing), once per poll and unit; a changed ballot earns nothing more. In an
    anonymous poll they are awarded at the close (services/voting/awards.py)."""

    def run(sync: Session) -> Receipt | Refusal:
        # Core statements don't autoflush: what this transaction changed through the ORM (a
        # poll just opened, with its first leaf) goes to the database first.
        sync.flush()
        return _cast(
            sync.connection(), poll_id, person_id, chosen, now, key, proxy=proxy, points=points
        )

    return await session.run_sync(run)


def _cast(
    connection: Connection,
    poll_id: int,
    person_id: int,
    chosen: Sequence[int],
    now: datetime,
    key: bytes,
    *,
    proxy: bool,
    points: int,
) -> Receipt | Refusal:
    """One synchronous block of prebuilt statements: the facts, then the ballot with its leaf
    and the award (on PostgreSQL in one statement). Nothing here waits for another unit's
    ballot: the database appends the leaf to the log when the caller commits, and that commit
    fails if the poll closed in between (migration 0011), so a ballot is in the log or not at
    all."""
    own = f"person:{person_id}"
    poll = connection.execute(
        _FACTS,
        {
            "poll_id": poll_id,
            "person_id": person_id,
            "unit": own,
            "token": voter_token(key, poll_id, own),
        },
    ).first()
    if poll is None:
        return Refusal.UNKNOWN
    if poll.status != "open" or poll.deadline <= now:
        return Refusal.CLOSED
    if poll.household_id is None:
        return Refusal.NOT_ELIGIBLE
    picks = sorted(set(chosen))
    if not picks or any(not 0 <= n < len(poll.options) for n in picks):
        return Refusal.BAD_CHOICE
    if len(picks) > poll.max_choices:
        return Refusal.TOO_MANY
    unit = f"household:{poll.household_id}" if poll.per_household else own
    voter = voter_token(key, poll_id, unit) if poll.anonymous else unit
    mask = mask_of(picks)
    found = {"poll_id": poll_id, "voter": voter}
    if poll.per_household:
        ballot = _Read.of(connection.execute(_FIND, found).first())
    else:
        ballot = _Read.of(poll, "ballot_id")
    salt = secrets.token_hex(16)
    written = {
        "person_id": None if poll.anonymous else person_id,
        "choices": mask,
        "proxy": proxy,
        # An anonymous ballot and its leaf say nothing of when it was cast: beside the rows
        # a vote leaves with the person (a reply, a conversation), a time would say whose.
        "updated_at": poll.created_at if poll.anonymous else now,
    }
    # The resident the ballot counts for earns the points, once per unit: the award is made
    # with the unit's first ballot only, or, in an anonymous poll, kept on it for the close.
    award = {
        "award_person": person_id,
        "award_points": 0 if poll.anonymous else points,
        "award_reason": awards.VOTE_REASON,
        "award_key": awards.vote_award_key(poll_id, unit),
    }
    first = {
        "caster": awards.caster_token(key, poll_id, person_id) if poll.anonymous else None,
        "award": points if poll.anonymous else 0,
    }
    for _ in range(_ATTEMPTS):
        if ballot is not None and (ballot.choices, ballot.proxy) == (mask, proxy):
            return Receipt(ballot.receipt, unchanged=True)
        replaces = None if ballot is None else ballot.receipt
        encoded, receipt = leaf_of(poll_id, voter, picks, proxy, replaces, salt)
        leaf = {"entry": encoded.decode(), "receipt": receipt}
        if _write(connection, found, ballot, {**written, **leaf}, first, award):
            return Receipt(receipt, changed=replaces is not None)
        # What was read is out of date: another phone of the household voted in between (the
        # write waited for it to commit), so reading again finds its ballot.
        ballot = _Read.of(connection.execute(_FIND, found).first())
    raise RuntimeError(f"poll {poll_id}: a unit's ballot kept changing while it was cast")


@dataclass(frozen=True)
class _Read:
    """A unit's ballot as read: which row, and the version its receipt says."""

    id: int
    choices: int
    proxy: bool
    receipt: str

    @classmethod
    def of(cls, row: Row[Any] | None, id_column: str = "id") -> _Read | None:
        if row is None or getattr(row, id_column) is None:
            return None
        return cls(getattr(row, id_column), row.choices, row.proxy, row.receipt)


def _write(
    connection: Connection,
    found: dict[str, Any],
    ballot: _Read | None,
    written: dict[str, Any],
    first: dict[str, Any],
    award: dict[str, Any],
) -> bool:
    """The ballot (the unit's first, with `first`, or a change of the version read) with its
    leaf and, for a first ballot, the award; or, when what was read is out of date, nothing.
    Each statement gets only its own parameters: an INSERT or UPDATE takes any other column's
    name as one more column to set."""
    if ballot is not None:
        values = {**written, "ballot_id": ballot.id, "read": ballot.receipt}
        return bool(connection.execute(_CHANGE, values).rowcount)
    if connection.dialect.name == "postgresql":
        values = {**found, **written, **first, **award}
        return bool(connection.execute(_PG_FIRST, values).scalar())
    # SQLite: one writer at a time, and a statement is a call on this thread.
    if not connection.execute(_SQLITE_FIRST, {**found, **written, **first}).rowcount:
        return False
    points_service.record_pending(
        connection,
        award["award_person"],
        award["award_points"],
        reason=award["award_reason"],
        key=award["award_key"],
        now=written["updated_at"],
    )
    return True


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
    size = poll.size if poll.size is not None else await polls.log_size(session, poll.id)
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
