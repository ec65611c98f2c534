"""Creating, listing and closing polls; who may vote in one; the tally."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from models import Ballot, BallotEvent, Building, Household, Person, Poll
from services import audit
from services.scopes import BUILDING, GRID, Scope
from services.sql import is_postgres
from services.voting import awards, log

MAX_QUESTION = 300
MAX_OPTION = 100
MIN_OPTIONS, MAX_OPTIONS = 2, 10


class PollProblem(Exception):
    """A poll that can't be created as asked; the message says which part, for the CLI."""


@dataclass(frozen=True)
class Results:
    counts: list[int]
    turnout: int  # eligible units that voted
    eligible: int
    quorum_met: bool | None  # None: no quorum asked
    root: str
    size: int


async def create(
    session: AsyncSession,
    scope: Scope,
    question: str,
    options: list[str],
    *,
    deadline: datetime,
    now: datetime,
    max_choices: int = 1,
    anonymous: bool = False,
    per_household: bool = False,
    quorum_percent: int | None = None,
    private: bool = True,
    created_by: int | None = None,
) -> Poll:
    question = " ".join(question.split())
    options = [" ".join(o.split()) for o in options]
    if not question or len(question) > MAX_QUESTION:
        raise PollProblem(f"the question must have 1 to {MAX_QUESTION} characters")
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise PollProblem(f"a poll has {MIN_OPTIONS} to {MAX_OPTIONS} options")
    if any(not o or len(o) > MAX_OPTION for o in options) or len(set(options)) < len(options):
        raise PollProblem(f"options must be different, each 1 to {MAX_OPTION} characters")
    if not 1 <= max_choices <= len(options):
        raise PollProblem("--multiple must be between 1 and the number of options")
    if quorum_percent is not None and not 1 <= quorum_percent <= 100:
        raise PollProblem("the quorum is a percentage from 1 to 100")
    if deadline <= now:
        raise PollProblem("the deadline must be in the future")
    return await open_poll(
        session,
        scope,
        question,
        options,
        deadline=deadline,
        now=now,
        max_choices=max_choices,
        anonymous=anonymous,
        per_household=per_household,
        quorum_percent=quorum_percent,
        private=private,
        created_by=created_by,
    )


async def open_poll(
    session: AsyncSession,
    scope: Scope,
    question: str,
    options: list[str],
    *,
    deadline: datetime,
    now: datetime,
    max_choices: int,
    anonymous: bool,
    per_household: bool,
    quorum_percent: int | None = None,
    private: bool = True,
    created_by: int | None = None,
    purpose: str = "poll",
) -> Poll:
    """The poll as checked by its caller (`create`, or a month's agenda ballot, whose options
    are its accepted items, more than a building poll's ten), with the first leaf of its log."""
    poll = Poll(
        purpose=purpose,
        scope=scope.kind,
        grid_id=scope.id if scope.kind == GRID else None,
        building_id=scope.id if scope.kind == BUILDING else None,
        question=question,
        options=options,
        max_choices=max_choices,
        anonymous=anonymous,
        per_household=per_household,
        quorum_percent=quorum_percent,
        deadline=deadline,
        private=private,
        created_by=created_by,
        created_at=now,
        seed=secrets.token_hex(32),
    )
    session.add(poll)
    await session.flush()
    # Leaf 1: the poll as opened, with its seed. Published now, so the log can't be prepared.
    first_leaf(
        session,
        poll,
        {
            "poll": poll.id,
            "seed": poll.seed,
            "question": question,
            "options": options,
            "max_choices": max_choices,
            "anonymous": anonymous,
            "per_household": per_household,
        },
        now,
    )
    await audit.record(session, "poll.create", actor_id=created_by, at=now, poll=poll.id)
    return poll


def first_leaf(session: AsyncSession, poll: Poll, entry: dict[str, Any], now: datetime) -> str:
    """The poll's first leaf, placed at once (a ballot's leaf is placed at its commit, see
    BallotEvent); its hash."""
    encoded = log.encode(entry)
    digest = log.leaf_hash(encoded).hex()
    session.add(
        BallotEvent(poll_id=poll.id, index=1, entry=encoded.decode(), digest=digest, at=now)
    )
    return digest


# The advisory lock a ballot's leaf is appended under, at its commit (migration 0011, which
# repeats the number): first key this, second the poll's id.
LOG_LOCK = 7011


async def locked(session: AsyncSession, poll_id: int) -> Poll | None:
    """The poll with its row locked, and on PostgreSQL its log: no ballot's leaf is appended
    until this transaction ends (the commit of a ballot of a poll closed meanwhile fails)."""
    query = select(Poll).where(Poll.id == poll_id).execution_options(populate_existing=True)
    if is_postgres(session):
        await session.execute(
            select(func.pg_advisory_xact_lock(LOG_LOCK, poll_id)).execution_options(autoflush=False)
        )
        query = query.with_for_update()
    return await session.scalar(query)


def eligible_people(poll: Poll) -> Select[tuple[int, int]]:
    """(person id, household id) of every active resident of the poll's scope."""
    query = (
        select(Person.id, Person.household_id)
        .join(Household, Household.id == Person.household_id)
        .join(Building, Building.id == Household.building_id)
        .where(Person.status == "active")
    )
    if poll.scope == BUILDING:
        query = query.where(Building.id == poll.building_id)
    elif poll.scope == GRID:
        query = query.where(Building.grid_id == poll.grid_id)
    return query


# Casting a ballot (services/voting/ballots.py) runs as one block of prebuilt Core statements,
# for every ballot.
_POLL: Table = Poll.__table__  # type: ignore[assignment]

# `eligible_people` for one person (the `person_id` parameter), as SQL over the poll's row in
# the enclosing statement: their household, or NULL when they may not vote in it. The same
# rule (tests/test_voting.py holds them together).
ELIGIBLE_HOUSEHOLD = (
    select(Person.household_id)
    .join(Household, Household.id == Person.household_id)
    .join(Building, Building.id == Household.building_id)
    .where(
        Person.id == bindparam("person_id"),
        Person.status == "active",
        or_(
            and_(_POLL.c.scope != BUILDING, _POLL.c.scope != GRID),
            and_(_POLL.c.scope == BUILDING, Building.id == _POLL.c.building_id),
            and_(_POLL.c.scope == GRID, Building.grid_id == _POLL.c.grid_id),
        ),
    )
    .correlate(_POLL)
    .scalar_subquery()
)


async def log_size(session: AsyncSession, poll_id: int) -> int:
    """The leaves in the poll's log now (the seed's included)."""
    query = select(func.max(BallotEvent.index)).where(BallotEvent.poll_id == poll_id)
    return int(await session.scalar(query) or 0)


async def eligible_count(session: AsyncSession, poll: Poll) -> int:
    people = eligible_people(poll).subquery()
    column = people.c.household_id if poll.per_household else people.c.id
    return int(await session.scalar(select(func.count(func.distinct(column)))) or 0)


async def tally(session: AsyncSession, poll: Poll) -> tuple[list[int], int]:
    """(votes per option, ballots): one pass over the poll's ballots, in SQL."""

    # Bit n of the mask is option n; the masks are literals (both databases compare a bigint
    # with them; a bound parameter would be typed as the column's type on one and not the other).
    sums = [
        func.coalesce(
            func.sum(case((Ballot.choices.op("&")(literal_column(str(1 << n))) != 0, 1), else_=0)),
            0,
        )
        for n in range(len(poll.options))
    ]
    row = (
        await session.execute(select(func.count(), *sums).where(Ballot.poll_id == poll.id))
    ).one()
    return [int(v) for v in row[1:]], int(row[0])


async def leaves(session: AsyncSession, poll_id: int, upto: int | None = None) -> list[bytes]:
    query = select(BallotEvent.digest).where(BallotEvent.poll_id == poll_id)
    if upto is not None:
        query = query.where(BallotEvent.index <= upto)
    rows = await session.scalars(query.order_by(BallotEvent.index))
    return [bytes.fromhex(d) for d in rows]


@dataclass(frozen=True)
class Closed:
    results: Results
    now: bool  # closed by this call (False: it was closed before, and nothing changed)


async def close(session: AsyncSession, poll_id: int, now: datetime, key: bytes) -> Closed | None:
    """Close now (the deadline, or an operator) and publish: counts, turnout, quorum, and the
    log's root and size; an anonymous poll's voters get their points now (`key`: the voter
    key). Closing a closed poll changes nothing and says its results."""
    poll = await locked(session, poll_id)
    if poll is None:
        return None
    closing = poll.status != "closed"
    if closing:
        counts, turnout = await tally(session, poll)
        eligible = await eligible_count(session, poll)
        logged = await leaves(session, poll.id)
        root = log.root_of(logged).hex()
        poll.status, poll.closed_at = "closed", now
        poll.root, poll.size = root, len(logged)
        poll.results = {"counts": counts, "turnout": turnout, "eligible": eligible}
        if poll.anonymous:
            await awards.award_anonymous_voters(session, poll, key, now)
        await audit.record(session, "poll.close", at=now, poll=poll.id, root=root)
    results = results_of(poll)
    assert results is not None
    return Closed(results, closing)


def results_of(poll: Poll) -> Results | None:
    if poll.results is None or poll.root is None or poll.size is None:
        return None
    turnout, eligible = int(poll.results["turnout"]), int(poll.results["eligible"])
    quorum = (
        None
        if poll.quorum_percent is None
        else turnout * 100 >= poll.quorum_percent * eligible and eligible > 0
    )
    return Results(
        [int(c) for c in poll.results["counts"]], turnout, eligible, quorum, poll.root, poll.size
    )


async def listing(session: AsyncSession) -> list[Poll]:
    return list((await session.scalars(select(Poll).order_by(Poll.id))).all())
