"""`linli audit poll ID`: rebuild the log's tree and the tally from what is stored, and say
every way they disagree with each other or with what was published."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Ballot, BallotEvent, Poll
from services.voting import log
from services.voting.ballots import mask_of, picks_of


async def audit_poll(session: AsyncSession, poll_id: int) -> list[str] | None:
    """The mismatches found (empty: everything checks out); None: no such poll."""
    poll = await session.get(Poll, poll_id)
    if poll is None:
        return None
    problems: list[str] = []
    digests: list[bytes] = []
    current: dict[str, tuple[int, int]] = {}  # voter → (choices mask, leaf index)
    rows = await session.execute(
        select(BallotEvent.index, BallotEvent.entry, BallotEvent.digest)
        .where(BallotEvent.poll_id == poll_id)
        .order_by(BallotEvent.index)
    )
    for expected_index, (index, entry, digest) in enumerate(rows, 1):
        if index != expected_index:
            problems.append(f"leaf {expected_index} is missing (found {index})")
            break
        encoded = entry.encode()
        if log.leaf_hash(encoded).hex() != digest:
            problems.append(f"leaf {index}: its hash does not match its entry")
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
        problems += _replay(index, data, poll, current)
    if len(digests) != poll.log_size:
        problems.append(f"the log has {len(digests)} leaves, the poll says {poll.log_size}")
    stored = {
        voter: (choices, leaf)
        for voter, choices, leaf in (
            await session.execute(
                select(Ballot.voter, Ballot.choices, Ballot.leaf).where(Ballot.poll_id == poll_id)
            )
        ).all()
    }
    for voter in sorted(set(stored) | set(current)):
        if stored.get(voter) != current.get(voter):
            problems.append(
                f"ballot of {voter}: stored {_say(stored.get(voter))}, "
                f"the log says {_say(current.get(voter))}"
            )
    if poll.status == "closed":
        root = log.root_of(digests[: poll.size or 0]).hex()
        if poll.root != root or poll.size != len(digests):
            problems.append(
                f"published root {poll.root} of {poll.size} leaves; rebuilt {root} of "
                f"{len(digests)}"
            )
        counts = [0] * len(poll.options)
        for mask, _ in current.values():
            for n in picks_of(mask):
                if n < len(counts):
                    counts[n] += 1
        published = poll.results or {}
        if published.get("counts") != counts or published.get("turnout") != len(current):
            problems.append(
                f"published counts {published.get('counts')} and turnout "
                f"{published.get('turnout')}; the log gives {counts} and {len(current)}"
            )
    return problems


def _replay(
    index: int, data: dict[str, Any], poll: Poll, current: dict[str, tuple[int, int]]
) -> list[str]:
    voter, picks = data.get("voter"), data.get("choices")
    if data.get("poll") != poll.id or data.get("n") != index or not isinstance(voter, str):
        return [f"leaf {index}: not a ballot of this poll at this place"]
    if not isinstance(picks, list) or not picks or len(picks) > poll.max_choices:
        return [f"leaf {index}: not a valid choice"]
    if any(not isinstance(n, int) or not 0 <= n < len(poll.options) for n in picks):
        return [f"leaf {index}: not a valid choice"]
    before = current.get(voter)
    if data.get("replaces") != (before[1] if before else None):
        return [f"leaf {index}: says it replaces {data.get('replaces')}, the log says otherwise"]
    current[voter] = (mask_of(picks), index)
    return []


def _say(ballot: tuple[int, int] | None) -> str:
    if ballot is None:
        return "nothing"
    return f"options {[n + 1 for n in picks_of(ballot[0])]} (leaf {ballot[1]})"
