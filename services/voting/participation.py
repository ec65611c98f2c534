"""Who took part in a closed poll, and (in a named poll) who chose what. Never before the
close: nobody sees anything of a running poll (DESIGN.md "Votes")."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Ballot, Building, Household, Person, Poll
from services.people import RoleSet
from services.voting import polls
from services.voting.ballots import picks_of
from services.voting.keys import voter_token


@dataclass(frozen=True)
class Participant:
    who: str  # a name, or a home ("Building 2 302") in a per-household poll
    picks: tuple[int, ...] | None = None  # what they chose: named polls only
    proxy: bool = False


def may_see(poll: Poll, person_id: int, roles: RoleSet) -> bool:
    """Named polls: the creator and staff; anonymous ones (who took part only): the creator."""
    if poll.status != "closed":
        return False
    if poll.created_by == person_id:
        return True
    return not poll.anonymous and roles.is_staff


async def participants(session: AsyncSession, poll: Poll, key: bytes) -> list[Participant]:
    homes = {
        h: f"{b} {r}"
        for h, b, r in (
            await session.execute(
                select(Household.id, Building.name, Household.room).join(
                    Building, Building.id == Household.building_id
                )
            )
        ).all()
    }
    if not poll.anonymous:
        rows = (
            await session.execute(
                select(Ballot.voter, Ballot.choices, Ballot.proxy, Person.display_name)
                .outerjoin(Person, Person.id == Ballot.person_id)
                .where(Ballot.poll_id == poll.id)
                .order_by(Ballot.id)
            )
        ).all()
        out = []
        for voter, choices, proxy, name in rows:
            kind, _, unit_id = voter.partition(":")
            who = homes.get(int(unit_id), voter) if kind == "household" else name or voter
            out.append(Participant(who, tuple(picks_of(choices)), proxy))
        return out
    voted = set(
        (await session.scalars(select(Ballot.voter).where(Ballot.poll_id == poll.id))).all()
    )
    out, seen = [], set()
    for person_id, household_id in (await session.execute(polls.eligible_people(poll))).all():
        unit = f"household:{household_id}" if poll.per_household else f"person:{person_id}"
        if unit in seen or voter_token(key, poll.id, unit) not in voted:
            continue
        seen.add(unit)
        if poll.per_household:
            out.append(Participant(homes.get(household_id, unit)))
        else:
            person = await session.get(Person, person_id)
            out.append(Participant(person.display_name if person else unit))
    return out
