"""After the council meets: its decision on each item, then progress updates, each told to the
item's proposer and supporters; and the months gone by."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import AgendaCycle, AgendaItem, AgendaUpdate
from services import audit
from services.agenda import notices
from services.agenda.rules import PUBLISHED
from services.notices import Notice
from services.people import RoleSet

PROGRESS_STATES = ("planned", "in_progress", "done")


class Problem(enum.StrEnum):
    NOT_STAFF = "not_staff"
    UNKNOWN = "unknown"  # not an item the council took up
    EMPTY = "empty"
    NOT_DECIDED = "not_decided"  # progress before a decision
    BAD_STATE = "bad_state"


@dataclass(frozen=True)
class Recorded:
    item: AgendaItem
    notices: list[Notice] = field(default_factory=list)


async def council_items(session: AsyncSession, *, decided: bool | None = None) -> list[AgendaItem]:
    """Items the council took up, newest month first; `decided` narrows to those with (or
    without) a decision."""
    query = (
        select(AgendaItem)
        .join(AgendaCycle, AgendaCycle.id == AgendaItem.cycle_id)
        .where(AgendaItem.selected.is_(True), AgendaCycle.phase == PUBLISHED)
        .order_by(AgendaCycle.month.desc(), AgendaItem.rank)
    )
    if decided is not None:
        query = query.where(
            AgendaItem.decision.is_not(None) if decided else AgendaItem.decision.is_(None)
        )
    return list((await session.scalars(query)).all())


async def _council_item(
    session: AsyncSession, roles: RoleSet, item_id: int
) -> AgendaItem | Problem:
    """The item, if staff may record on it: one the council took up."""
    if not roles.is_staff:
        return Problem.NOT_STAFF
    item = await session.get(AgendaItem, item_id, populate_existing=True)
    return item if item is not None and item.selected else Problem.UNKNOWN


async def decide(
    session: AsyncSession,
    actor_id: int,
    roles: RoleSet,
    item_id: int,
    decision: str,
    now: datetime,
    limit: int,
) -> Recorded | Problem:
    """Record (or correct) the council's decision on an item."""
    item = await _council_item(session, roles, item_id)
    if isinstance(item, Problem):
        return item
    decision = decision.strip()
    if not decision or len(decision) > limit:
        return Problem.EMPTY
    item.decision, item.decided_by, item.decided_at = decision, actor_id, now
    await audit.record(session, "agenda.decide", actor_id=actor_id, at=now, item=item.id)
    return Recorded(item, await notices.decided(session, item))


async def progress(
    session: AsyncSession,
    actor_id: int,
    roles: RoleSet,
    item_id: int,
    state: str,
    note: str,
    photo_key: str | None,
    now: datetime,
    limit: int,
) -> Recorded | Problem:
    item = await _council_item(session, roles, item_id)
    if isinstance(item, Problem):
        return item
    if item.decision is None:
        return Problem.NOT_DECIDED
    if state not in PROGRESS_STATES:
        return Problem.BAD_STATE
    note = note.strip()
    if len(note) > limit:
        return Problem.EMPTY
    news = AgendaUpdate(
        item_id=item.id, status=state, note=note, photo_key=photo_key, by_id=actor_id, at=now
    )
    session.add(news)
    item.progress = state
    await session.flush()
    await audit.record(
        session, "agenda.progress", actor_id=actor_id, at=now, item=item.id, state=state
    )
    return Recorded(item, await notices.progressed(session, item, news))


async def updates(session: AsyncSession, item_id: int) -> list[AgendaUpdate]:
    return list(
        (
            await session.scalars(
                select(AgendaUpdate)
                .where(AgendaUpdate.item_id == item_id)
                .order_by(AgendaUpdate.id)
            )
        ).all()
    )


async def history(session: AsyncSession, limit: int = 6) -> list[AgendaCycle]:
    """Published months, newest first."""
    return list(
        (
            await session.scalars(
                select(AgendaCycle)
                .where(AgendaCycle.phase == PUBLISHED)
                .order_by(AgendaCycle.month.desc())
                .limit(limit)
            )
        ).all()
    )


async def council_items_of(session: AsyncSession, cycle_id: int) -> list[AgendaItem]:
    return list(
        (
            await session.scalars(
                select(AgendaItem)
                .where(AgendaItem.cycle_id == cycle_id, AgendaItem.selected.is_(True))
                .order_by(AgendaItem.rank)
            )
        ).all()
    )
