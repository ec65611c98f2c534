"""Who hears what about a poll: its card when it opens, a reminder for those who have not
voted a day before the deadline, and the results when it closes.

On top of each eligible resident's private card, a poll has a shared card in the group chats
of its scope (services/groups.py `serving`: a building's groups for a building poll, a grid's
and its buildings' for a grid poll, every linked group for a community poll). It shows the
turnout, never the counts, and is updated as ballots come in; at the close it loses its
buttons and the results follow it there."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Ballot, Poll
from services import groups, outbox
from services.notices import GroupNotice, Notice, to
from services.voting import polls
from services.voting.keys import voter_token

OPENED, REMINDER, RESULTS = "poll.open", "poll.reminder", "poll.results"
POLL_TICKET = "poll.vote"
# The poll's card in its group chats (a notice kind and a card kind), and its shared buttons.
GROUP_CARD = "poll.group"
GROUP_TICKET = "poll.group"
REMIND_BEFORE = timedelta(hours=24)
# Building polls; a month's agenda ballot (purpose "agenda") is reminded and closed by its cycle.
POLL = "poll"


async def _eligible(session: AsyncSession, poll: Poll) -> list[tuple[int, int]]:
    return [(p, h) for p, h in (await session.execute(polls.eligible_people(poll))).all()]


def card_key(poll_id: int) -> str:
    """How the outbox knows a poll's card in a group (services/outbox.py enqueue_card)."""
    return f"{GROUP_CARD}:{poll_id}"


def group_cards(group_ids: list[int], poll: Poll) -> list[GroupNotice]:
    return [GroupNotice(g, GROUP_CARD, subject_id=poll.id, card=GROUP_CARD) for g in group_ids]


async def opened(session: AsyncSession, poll: Poll) -> list[Notice | GroupNotice]:
    """Each eligible resident's card (unless the poll goes to its group chats only), and the
    shared card in each group chat of its scope."""
    cards = group_cards(
        await groups.serving(
            session, poll.scope, building_id=poll.building_id, grid_id=poll.grid_id
        ),
        poll,
    )
    if not poll.private:
        return list(cards)
    people = to([p for p, _ in await _eligible(session, poll)], OPENED, subject_id=poll.id)
    return [*people, *cards]


async def turnout_changed(session: AsyncSession, poll: Poll) -> list[GroupNotice]:
    """The poll's group cards again, with the turnout as it is now (a new ballot, not a
    changed one). Each is one waiting edit however many ballots come in meanwhile."""
    return group_cards(await outbox.card_groups(session, card_key(poll.id)), poll)


async def turnout(session: AsyncSession, poll: Poll) -> tuple[int, int]:
    """(units that voted, eligible units): what a group card shows before the close."""
    voted = await session.scalar(
        select(func.count()).select_from(Ballot).where(Ballot.poll_id == poll.id)
    )
    return int(voted or 0), await polls.eligible_count(session, poll)


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


async def published(session: AsyncSession, poll: Poll) -> list[Notice | GroupNotice]:
    """The results, to every eligible resident who was sent the poll (in an anonymous poll
    nobody knows who voted, so it is everyone it went to), and to the group chats that showed
    its card, whose buttons go (the card now says it is closed)."""
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
    shown = await outbox.card_groups(session, card_key(poll.id))
    in_groups = [
        notice
        for group_id in shown
        for notice in (
            GroupNotice(group_id, GROUP_CARD, subject_id=poll.id, card=GROUP_CARD),
            GroupNotice(group_id, RESULTS, subject_id=poll.id),
        )
    ]
    return [*to(people, RESULTS, subject_id=poll.id), *in_groups]


async def due_to_close(session: AsyncSession, now: datetime) -> list[int]:
    return list(
        (
            await session.scalars(
                select(Poll.id).where(
                    Poll.status == "open", Poll.deadline <= now, Poll.purpose == POLL
                )
            )
        ).all()
    )


async def due_reminders(session: AsyncSession, now: datetime) -> list[Poll]:
    return list(
        (
            await session.scalars(
                select(Poll).where(
                    Poll.status == "open",
                    Poll.purpose == POLL,
                    Poll.reminded_at.is_(None),
                    Poll.deadline <= now + REMIND_BEFORE,
                    Poll.deadline > now,
                )
            )
        ).all()
    )
