"""Publication: the vote closes, the items are ranked by their votes, the top N go to the
council (their proposers earn pending points), and the results are told."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import AgendaCycle, AgendaItem, Poll
from services.agenda import items, notices
from services.agenda.rules import PUBLISHED
from services.notices import GroupNotice, Notice
from services.points import awards
from services.voting import polls


@dataclass(frozen=True)
class Published:
    ranked: list[AgendaItem]
    results: polls.Results | None
    notices: list[Notice | GroupNotice] = field(default_factory=list)


def selected_key(item_id: int) -> str:
    return f"agenda:{item_id}:selected"


async def publish(
    session: AsyncSession, cycle: AgendaCycle, now: datetime, selected_points: int, key: bytes
) -> Published:
    """The caller holds the cycle's row, in the voting phase."""
    results = None
    poll = None
    on_ballot: list[AgendaItem] = []
    if cycle.poll_id is not None:
        closed = await polls.close(session, cycle.poll_id, now, key)
        assert closed is not None
        results = closed.results
        poll = await session.get(Poll, cycle.poll_id)
        on_ballot = await ballot(session, cycle.id)
        support = {
            item.id: n for item, n in await items.with_support(session, cycle.id, ("accepted",))
        }
        for item in on_ballot:
            assert item.option is not None
            item.votes = results.counts[item.option]
        # Ties: the more supported item first, then the earlier one.
        on_ballot.sort(key=lambda item: (-(item.votes or 0), -support.get(item.id, 0), item.id))
        for rank, item in enumerate(on_ballot, 1):
            item.rank = rank
            # An item nobody voted for does not go to the council.
            item.selected = rank <= cycle.council_items and bool(item.votes)
            if item.selected:
                await awards.award(
                    session,
                    item.proposer_id,
                    "proposal_selected",
                    selected_points,
                    selected_key(item.id),
                    now,
                )
    cycle.phase, cycle.published_at = PUBLISHED, now
    proposers = [item.proposer_id for item in on_ballot]
    told = await notices.results(session, cycle.id, poll, key, proposers)
    return Published(on_ballot, results, told)


async def ballot(session: AsyncSession, cycle_id: int) -> list[AgendaItem]:
    """The items that were on the month's ballot, in their ballot order, or ranked once
    published."""
    return list(
        (
            await session.scalars(
                select(AgendaItem)
                .where(AgendaItem.cycle_id == cycle_id, AgendaItem.option.is_not(None))
                .order_by(AgendaItem.rank, AgendaItem.option)
            )
        ).all()
    )
