"""`linli audit poll ID`: rebuild the log's tree and the tally from what is stored, and say
every way they disagree with each other or with what was published."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Select, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from models import Ballot, BallotEvent, Poll
from services.voting import log
from services.voting.ballots import picks_of

_LEAF: Table = BallotEvent.__table__  # type: ignore[assignment]
_BALLOT: Table = Ballot.__table__  # type: ignore[assignment]
# Leaves read from the database at a time: the log of a large poll is streamed, not loaded.
CHUNK = 5_000
# From this many leaves the root is rebuilt in a process of its own (starting one costs less).
ROOT_ELSEWHERE = 100_000


async def audit_poll(session: AsyncSession, poll_id: int) -> list[str] | None:
    """The mismatches found (empty: everything checks out); None: no such poll."""
    poll = await session.get(Poll, poll_id)
    if poll is None:
        return None
    problems: list[str] = []
    digests: list[bytes] = []
    current: dict[str, _Version] = {}  # voter → their ballot as the log has it so far
    closed = poll.status == "closed"
    elsewhere = closed and (poll.size or 0) >= ROOT_ELSEWHERE
    replay = _Replay(poll.id, len(poll.options), poll.max_choices, current)
    leaves = select(_LEAF.c.index, _LEAF.c.entry, _LEAF.c.digest).where(_LEAF.c.poll_id == poll_id)
    expected_index = 0
    # A large log's root is rebuilt meanwhile by another process, from the rows it reads.
    root_elsewhere = _rebuilt_elsewhere(session, poll.id, poll.size or 0) if elsewhere else None
    async for chunk in _chunks(session, leaves.order_by(_LEAF.c.index)):
        for index, entry, digest in chunk:
            expected_index += 1
            if index != expected_index:
                problems.append(f"leaf {expected_index} is missing (found {index})")
                break
            encoded = entry.encode()
            if log.leaf_hash(encoded).hex() != digest:
                problems.append(f"leaf {index}: its hash does not match its entry")
            if not elsewhere:
                digests.append(bytes.fromhex(digest))
            try:
                data: dict[str, Any] = orjson.loads(encoded)
            except orjson.JSONDecodeError:
                problems.append(f"leaf {index}: not a JSON entry")
                continue
            if index == 1:
                if data.get("seed") != poll.seed or data.get("poll") != poll.id:
                    problems.append("leaf 1 is not the poll's published seed")
                continue
            problem = replay(index, digest, data)
            if problem is not None:
                problems.append(problem)
        else:
            continue
        break
    problems += await _compare_ballots(session, poll_id, current)
    if closed:
        if root_elsewhere is not None:
            root = (await root_elsewhere).hex()
        else:
            root = log.root_of(digests[: poll.size or 0]).hex()
        if poll.root != root or poll.size != expected_index:
            problems.append(
                f"published root {poll.root} of {poll.size} leaves; rebuilt {root} of "
                f"{expected_index}"
            )
        counts = [0] * len(poll.options)
        for version in current.values():
            for n in picks_of(version.choices):
                if n < len(counts):
                    counts[n] += 1
        published = poll.results or {}
        if published.get("counts") != counts or published.get("turnout") != len(current):
            problems.append(
                f"published counts {published.get('counts')} and turnout "
                f"{published.get('turnout')}; the log gives {counts} and {len(current)}"
            )
    return problems


async def _chunks(session: AsyncSession, query: Select[Any]) -> AsyncIterator[Sequence[Any]]:
    """The rows of `query`, CHUNK at a time, straight from the driver's cursor: SQLAlchemy's
    rows cost more per row than the audit's own checks, and a large poll has a million. The
    statement is compiled by SQLAlchemy for the connection's driver ("$n" for asyncpg, "?" for
    sqlite3), its parameters in the order the placeholders number them."""
    connection = await session.connection()
    compiled = query.compile(dialect=connection.dialect)
    values = [compiled.params[name] for name in compiled.positiontup or ()]
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if connection.dialect.name != "postgresql":
        # aiosqlite's sqlite3 connection, read on this thread as bot/sqlite_driver.py does.
        cursor = driver._conn.execute(str(compiled), values)
        while chunk := cursor.fetchmany(CHUNK):
            yield chunk
        return
    cursor = await driver.cursor(str(compiled), *values)
    # The next chunk is asked for before this one is checked: the database reads it meanwhile.
    coming = asyncio.ensure_future(cursor.fetch(CHUNK))
    while chunk := await coming:
        coming = asyncio.ensure_future(cursor.fetch(CHUNK))
        await asyncio.sleep(0)  # lets the request go out
        yield chunk


def _rebuilt_elsewhere(session: AsyncSession, poll_id: int, size: int) -> asyncio.Future[bytes]:
    """The root of the poll's first `size` leaves, rebuilt in a process of its own from its own
    read of the log: pymerkle hashes in Python, a few seconds for a million leaves, which then
    overlap this process's checks instead of following them."""
    assert session.bind is not None
    url = session.bind.url.render_as_string(hide_password=False)
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    future = asyncio.get_running_loop().run_in_executor(pool, _root_from, url, poll_id, size)
    future.add_done_callback(lambda _: pool.shutdown(wait=False))
    return future


def _root_from(url: str, poll_id: int, size: int) -> bytes:
    return asyncio.run(_read_root(url, poll_id, size))


async def _read_root(url: str, poll_id: int, size: int) -> bytes:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(_LEAF.c.digest)
                .where(_LEAF.c.poll_id == poll_id, _LEAF.c.index <= size)
                .order_by(_LEAF.c.index)
            )
            leaves = [bytes.fromhex(digest) for digest in rows.scalars()]
    finally:
        await engine.dispose()
    return log.root_of(leaves)


@dataclass(frozen=True, slots=True)
class _Version:
    choices: int  # mask
    index: int
    receipt: str


@dataclass(frozen=True, slots=True)
class _Replay:
    """Each ballot leaf, checked against the voter's ballot so far. Entries written before
    migration 0011 name their place ("n") and the place they replace; later ones name the
    receipt they replace, and their place is the log's. Runs once per leaf (a million for a
    large poll): the poll's facts are plain fields here."""

    poll_id: int
    options: int
    max_choices: int
    current: dict[str, _Version]

    def __call__(self, index: int, digest: str, data: dict[str, Any]) -> str | None:
        voter, picks = data.get("voter"), data.get("choices")
        if data.get("poll") != self.poll_id or not isinstance(voter, str):
            return f"leaf {index}: not a ballot of this poll at this place"
        old_format = "n" in data
        if old_format and data["n"] != index:
            return f"leaf {index}: not a ballot of this poll at this place"
        if type(picks) is not list or not picks or len(picks) > self.max_choices:
            return f"leaf {index}: not a valid choice"
        mask = 0
        for n in picks:
            if type(n) is not int or not 0 <= n < self.options:
                return f"leaf {index}: not a valid choice"
            mask |= 1 << n
        before = self.current.get(voter)
        if before is None:
            expected: int | str | None = None
        else:
            expected = before.index if old_format else before.receipt
        if data.get("replaces") != expected:
            return f"leaf {index}: says it replaces {data.get('replaces')}, the log says otherwise"
        self.current[voter] = _Version(mask, index, digest)
        return None


async def _compare_ballots(
    session: AsyncSession, poll_id: int, current: dict[str, _Version]
) -> list[str]:
    """Every stored ballot against the voter's last leaf, and every voter of the log stored."""
    mismatched: list[tuple[str, tuple[int, str] | None, tuple[int, str] | None]] = []
    seen = 0
    stored = select(_BALLOT.c.voter, _BALLOT.c.choices, _BALLOT.c.receipt).where(
        _BALLOT.c.poll_id == poll_id
    )
    async for chunk in _chunks(session, stored):
        for voter, choices, receipt in chunk:
            logged = current.get(voter)
            if logged is not None:
                seen += 1
                if (logged.choices, logged.receipt) == (choices, receipt):
                    continue
            mismatched.append(
                (voter, (choices, receipt), logged and (logged.choices, logged.receipt))
            )
    if seen < len(current):
        stored_voters = {voter for voter, _, _ in mismatched}
        for voter, logged in current.items():
            if voter not in stored_voters and not await _stored(session, poll_id, voter):
                mismatched.append((voter, None, (logged.choices, logged.receipt)))
    if not mismatched:
        return []
    receipts = {ballot[1] for _, *pair in mismatched for ballot in pair if ballot is not None}
    places = dict(
        (
            await session.execute(
                select(BallotEvent.digest, BallotEvent.index).where(
                    BallotEvent.poll_id == poll_id, BallotEvent.digest.in_(receipts)
                )
            )
        ).all()
    )
    return [
        f"ballot of {voter}: stored {_say(stored_one, places)}, "
        f"the log says {_say(logged_one, places)}"
        for voter, stored_one, logged_one in sorted(mismatched)
    ]


async def _stored(session: AsyncSession, poll_id: int, voter: str) -> bool:
    query = select(Ballot.id).where(Ballot.poll_id == poll_id, Ballot.voter == voter)
    return await session.scalar(query) is not None


def _say(ballot: tuple[int, str] | None, places: dict[str, int]) -> str:
    if ballot is None:
        return "nothing"
    choices, receipt = ballot
    where = f"leaf {places[receipt]}" if receipt in places else f"receipt {receipt} not in the log"
    return f"options {[n + 1 for n in picks_of(choices)]} ({where})"
