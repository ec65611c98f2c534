"""What a group chat missed before it was linked to its scope: the shared cards of the polls
still open there and, while the month's agenda is being voted on, the vote's announcement. A
building head who adds the bot to a group in the middle of a poll expects the poll to be there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Poll
from services import groups
from services.agenda import notices as agenda_notices
from services.notices import GroupNotice
from services.voting import notices as poll_notices


async def catch_up(session: AsyncSession, group_id: int, now: datetime) -> list[GroupNotice]:
    open_polls = await session.scalars(
        select(Poll).where(Poll.status == "open", Poll.deadline > now).order_by(Poll.id)
    )
    missed: list[GroupNotice] = []
    for poll in open_polls:
        if poll.purpose != poll_notices.POLL:
            # A month's agenda ballot, the whole community's: every linked group hears of it.
            missed.append(GroupNotice(group_id, agenda_notices.VOTING, subject_id=poll.id))
            continue
        serving = await groups.serving(
            session, poll.scope, building_id=poll.building_id, grid_id=poll.grid_id
        )
        if group_id in serving:
            missed.extend(poll_notices.group_cards([group_id], poll))
    return missed
