"""Reading items: a month's items with their supporters, who follows an item."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import AgendaItem, AgendaSupport


async def with_support(
    session: AsyncSession, cycle_id: int, statuses: Sequence[str]
) -> list[tuple[AgendaItem, int]]:
    """The cycle's items in these states with their supporters' count, most supported first."""
    count = func.count(AgendaSupport.id)
    rows = await session.execute(
        select(AgendaItem, count)
        .outerjoin(AgendaSupport, AgendaSupport.item_id == AgendaItem.id)
        .where(AgendaItem.cycle_id == cycle_id, AgendaItem.status.in_(statuses))
        .group_by(AgendaItem.id)
        .order_by(count.desc(), AgendaItem.id)
    )
    return [(item, int(n)) for item, n in rows.all()]


async def supporters(session: AsyncSession, item_id: int) -> list[int]:
    return list(
        (
            await session.scalars(
                select(AgendaSupport.person_id)
                .where(AgendaSupport.item_id == item_id)
                .order_by(AgendaSupport.id)
            )
        ).all()
    )


async def support_count(session: AsyncSession, item_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(AgendaSupport).where(AgendaSupport.item_id == item_id)
        )
        or 0
    )


async def followers(session: AsyncSession, item: AgendaItem) -> list[int]:
    """Who hears of its decision and follow-up: the proposer, then its supporters."""
    return [item.proposer_id, *await supporters(session, item.id)]
