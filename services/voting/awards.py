"""The pending points a vote earns ([points.rules] vote_cast), once per poll and unit.

A named poll's ballot earns them as it is cast. An anonymous poll's would say, beside the
person, when they voted and so which leaf is theirs: its ballot keeps instead who cast it as a
token only the key can match, and the close awards every caster at once, in the order of the
people, at the close's time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Ballot, Person, Poll
from services.points import awards
from services.voting.keys import voter_token

VOTE_REASON = "poll.vote"


def vote_award_key(poll_id: int, unit: str) -> str:
    """One award per poll and unit: "poll:7:vote:person:12", "poll:7:vote:household:3"; an
    anonymous poll's names its caster: one caster per unit, the first to vote for it."""
    return f"poll:{poll_id}:vote:{unit}"


def caster_token(key: bytes, poll_id: int, person_id: int) -> str:
    return voter_token(key, poll_id, f"caster:person:{person_id}")


async def award_anonymous_voters(
    session: AsyncSession, poll: Poll, key: bytes, now: datetime
) -> int:
    """At the close: each anonymous ballot's caster earns what the ballot was to earn. The
    awards' keys make a second close award nothing more. How many were awarded."""
    owed = (
        await session.execute(
            select(Ballot.caster, Ballot.award).where(
                Ballot.poll_id == poll.id, Ballot.award > 0, Ballot.caster.is_not(None)
            )
        )
    ).all()
    if not owed:
        return 0
    # Whoever cast it, even if they have moved out since: every person's token.
    everyone = (await session.scalars(select(Person.id))).all()
    by_token = {caster_token(key, poll.id, person_id): person_id for person_id in everyone}
    earned = sorted((by_token[caster], award) for caster, award in owed if caster in by_token)
    awarded = 0
    for person_id, award in earned:
        paid = await awards.award(
            session,
            person_id,
            "vote_cast",
            award,
            vote_award_key(poll.id, f"person:{person_id}"),
            now,
        )
        awarded += paid is not None
    return awarded
