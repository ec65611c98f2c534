"""Who hears what in the cycle: staff get each proposal to moderate, the proposer the outcome,
residents the opening of the vote and a reminder if they have not voted, voters the results,
and an item's proposer and supporters its decision and follow-up."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from models import AgendaItem, AgendaUpdate, Poll
from services import groups, people
from services.agenda import items
from services.notices import GroupNotice, Notice, to
from services.scopes import COMMUNITY
from services.voting import notices as poll_notices
from services.voting import polls

PROPOSED = "agenda.proposed"  # to staff: the moderation card
MODERATED = "agenda.moderated"  # to staff: the same card, settled
OUTCOME = "agenda.outcome"  # to the proposer: accepted, merged or rejected
VOTING = "agenda.voting"  # to eligible residents: the vote is open
REMINDER = "agenda.reminder"  # to those whose unit has not voted, a day before the close
RESULTS = "agenda.results"  # to voters and proposers, and to the groups
DECISION = "agenda.decision"  # to an item's proposer and supporters
PROGRESS = "agenda.progress"  # the same, for each follow-up

MODERATION_TICKET = "agenda.moderate"
MODERATION_ACTIONS = ("accept", "merge", "reject")
VOTE_TICKET = "agenda.vote"
VOTE_ACTIONS = ("vote",)


# Each staff member's card for a proposal (its subject), settled in place once moderated.
MODERATION_CARD = "agenda-mod"


async def proposed(session: AsyncSession, item: AgendaItem) -> list[Notice]:
    staff = [p.id for p in await people.staff_members(session)]
    return to(
        staff,
        PROPOSED,
        subject_id=item.id,
        actions=MODERATION_ACTIONS,
        card=MODERATION_CARD,
    )


async def moderated(session: AsyncSession, item: AgendaItem, actor_id: int) -> list[Notice]:
    staff = [p.id for p in await people.staff_members(session)]
    return [
        Notice(item.proposer_id, OUTCOME, subject_id=item.id),
        *to(
            staff,
            MODERATED,
            subject_id=item.id,
            params={"by": actor_id},
            card=MODERATION_CARD,
        ),
    ]


async def _groups(session: AsyncSession) -> list[int]:
    """Every linked group chat: the agenda is the whole community's."""
    return await groups.serving(session, COMMUNITY)


async def voting_opened(session: AsyncSession, poll: Poll) -> list[Notice | GroupNotice]:
    """Each eligible resident, with a [Vote] button, and the groups (who vote privately)."""
    eligible = (await session.execute(polls.eligible_people(poll))).all()
    people = to(
        [person_id for person_id, _ in eligible], VOTING, subject_id=poll.id, actions=VOTE_ACTIONS
    )
    return [*people, *(GroupNotice(g, VOTING, subject_id=poll.id) for g in await _groups(session))]


async def reminder(session: AsyncSession, poll: Poll, key: bytes) -> list[Notice]:
    return to(
        await poll_notices.non_voters(session, poll, key),
        REMINDER,
        subject_id=poll.id,
        actions=VOTE_ACTIONS,
    )


async def results(
    session: AsyncSession, cycle_id: int, poll: Poll | None, key: bytes, proposers: list[int]
) -> list[Notice | GroupNotice]:
    """Those whose unit voted (found by their tokens: the ballot is anonymous), the proposers
    of the items on it, and the community's group chats."""
    voters: list[int] = []
    if poll is not None:
        waiting = set(await poll_notices.non_voters(session, poll, key))
        eligible = (await session.execute(polls.eligible_people(poll))).all()
        voters = [person_id for person_id, _ in eligible if person_id not in waiting]
    # A month with nothing on its ballot is no news for the groups.
    in_groups = (
        [GroupNotice(g, RESULTS, subject_id=cycle_id) for g in await _groups(session)]
        if poll is not None
        else []
    )
    return [*to([*voters, *proposers], RESULTS, subject_id=cycle_id), *in_groups]


async def decided(session: AsyncSession, item: AgendaItem) -> list[Notice]:
    return to(await items.followers(session, item), DECISION, subject_id=item.id)


async def progressed(session: AsyncSession, item: AgendaItem, news: AgendaUpdate) -> list[Notice]:
    return to(await items.followers(session, item), PROGRESS, subject_id=news.id)
