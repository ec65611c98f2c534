"""Who hears what about a poll: its card when it opens, a reminder for those who have not
voted a day before the deadline, and the results when it closes."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Ballot, Poll
from services.notices import Notice, to
from services.voting import polls
from services.voting.ballots import voter_token

OPENED, REMINDER, RESULTS = "poll.open", "poll.reminder", "poll.results"
POLL_TICKET = "poll.vote"
REMIND_BEFORE = timedelta(hours=24)


async def _eligible(session: AsyncSession, poll: Poll) -> list[tuple[int, int]]:
    return [(p, h) for p, h in (await session.execute(polls.eligible_people(poll))).all()]


async def opened(session: AsyncSession, poll: Poll) -> list[Notice]:
    """Each eligible resident's card, unless the poll goes to its group chats only."""
    if not poll.private:
        return []
    return to([p for p, _ in await _eligible(session, poll)], OPENED, subject_id=poll.id)


async def non_voters(session: AsyncSession, poll: Poll, key: bytes) -> list[int]:
    """Eligible residents whose unit has no ballot (in an anonymous poll, found by deriving
    each unit's token: the database alone can't say who voted)."""
    voted = set(
        (await session.scalars(select(Ballot.voter).where(Ballot.poll_id == poll.id))).all()
    )
    waiting = []
    for person_id, household_id in await _eligible(session, poll):
        unit = f"household:{household_id}" if poll.per_household else f"person:{person_id}"
        voter = voter_token(key, poll.id, unit) if poll.anonymous else unit
        if voter not in voted:
            waiting.append(person_id)
    return waiting


async def remind(session: AsyncSession, poll: Poll, key: bytes, now: datetime) -> list[Notice]:
    poll.reminded_at = now
    return to(await non_voters(session, poll, key), REMINDER, subject_id=poll.id)


async def published(session: AsyncSession, poll: Poll) -> list[Notice]:
    """The results, to every eligible resident who was sent the poll (in an anonymous poll
    nobody knows who voted, so it is everyone it went to)."""
    if poll.private:
        people = [p for p, _ in await _eligible(session, poll)]
    else:
        people = [
            p
            for p in (
                await session.scalars(
                    select(Ballot.person_id).where(
                        Ballot.poll_id == poll.id, Ballot.person_id.is_not(None)
                    )
                )
            ).all()
            if p is not None
        ]
    if poll.created_by is not None:
        people.append(poll.created_by)
    return to(people, RESULTS, subject_id=poll.id)


async def due_to_close(session: AsyncSession, now: datetime) -> list[int]:
    return list(
        (
            await session.scalars(
                select(Poll.id).where(Poll.status == "open", Poll.deadline <= now)
            )
        ).all()
    )


async def due_reminders(session: AsyncSession, now: datetime) -> list[Poll]:
    return list(
        (
            await session.scalars(
                select(Poll).where(
                    Poll.status == "open",
                    Poll.reminded_at.is_(None),
                    Poll.deadline <= now + REMIND_BEFORE,
                    Poll.deadline > now,
                )
            )
        ).all()
    )
