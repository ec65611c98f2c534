"""Proposing an item, moderating it (accept, merge, reject with a reason) and supporting it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import AgendaCycle, AgendaItem, AgendaSupport, Person
from services import audit
from services.agenda import items, notices
from services.agenda.cycles import current
from services.agenda.rules import PROPOSALS, VOTING, AgendaRules
from services.notices import Notice
from services.people import RoleSet
from services.sql import insert_ignoring_conflict


class Problem(enum.StrEnum):
    NO_CYCLE = "no_cycle"  # no month is open for proposals
    CLOSED = "closed"  # this month's proposals are closed
    NOT_REGISTERED = "not_registered"
    TITLE = "title"  # empty or too long
    DESCRIPTION = "description"
    UNKNOWN = "unknown"  # no such item
    NOT_STAFF = "not_staff"
    DONE = "done"  # moderated already
    TOO_LATE = "too_late"  # voting has opened: it waits for next month
    BAD_TARGET = "bad_target"  # merge into what?
    NO_REASON = "no_reason"
    NOT_OPEN = "not_open"  # support: not an accepted item of an open month


@dataclass(frozen=True)
class Done:
    item: AgendaItem
    notices: list[Notice] = field(default_factory=list)


async def propose(
    session: AsyncSession,
    rules: AgendaRules,
    person_id: int,
    title: str,
    description: str,
    photo_key: str | None,
    now: datetime,
) -> Done | Problem:
    person = await session.get(Person, person_id)
    if person is None or person.status != "active":
        return Problem.NOT_REGISTERED
    cycle = await current(session)
    if cycle is None or cycle.phase != PROPOSALS:
        return Problem.NO_CYCLE
    if now >= cycle.proposals_close_at:
        return Problem.CLOSED
    title = " ".join(title.split())
    if not title or len(title) > rules.title_limit:
        return Problem.TITLE
    description = description.strip()
    if len(description) > rules.description_limit:
        return Problem.DESCRIPTION
    item = AgendaItem(
        cycle_id=cycle.id,
        proposer_id=person_id,
        title=title,
        description=description,
        photo_key=photo_key,
        created_at=now,
    )
    session.add(item)
    await session.flush()
    await audit.record(session, "agenda.propose", actor_id=person_id, at=now, item=item.id)
    return Done(item, await notices.proposed(session, item))


class Moderation(enum.StrEnum):
    ACCEPT = "accept"
    MERGE = "merge"
    REJECT = "reject"


async def check_moderation(
    session: AsyncSession, roles: RoleSet, item_id: int
) -> tuple[AgendaItem, AgendaCycle] | Problem:
    """May this person moderate this item now? (Asked again when the answer comes.)"""
    if not roles.is_staff:
        return Problem.NOT_STAFF
    item = await session.get(AgendaItem, item_id, populate_existing=True)
    if item is None:
        return Problem.UNKNOWN
    if item.status != "pending":
        return Problem.DONE
    cycle = await session.get(AgendaCycle, item.cycle_id)
    assert cycle is not None
    if cycle.phase != PROPOSALS:
        return Problem.TOO_LATE
    return item, cycle


async def merge_targets(session: AsyncSession, item: AgendaItem) -> list[AgendaItem]:
    """Accepted items of the same month that a proposal can be merged into."""
    return list(
        (
            await session.scalars(
                select(AgendaItem)
                .where(
                    AgendaItem.cycle_id == item.cycle_id,
                    AgendaItem.status == "accepted",
                    AgendaItem.id != item.id,
                )
                .order_by(AgendaItem.id)
            )
        ).all()
    )


async def moderate(
    session: AsyncSession,
    actor_id: int,
    roles: RoleSet,
    item_id: int,
    action: Moderation,
    now: datetime,
    *,
    reason: str = "",
    into: int | None = None,
) -> Done | Problem:
    checked = await check_moderation(session, roles, item_id)
    if isinstance(checked, Problem):
        return checked
    item, _ = checked
    target = None
    if action is Moderation.MERGE:
        target = await session.get(AgendaItem, into) if into is not None else None
        if target is None or target.id not in {t.id for t in await merge_targets(session, item)}:
            return Problem.BAD_TARGET
    reason = reason.strip()
    if action is Moderation.REJECT and not reason:
        return Problem.NO_REASON
    status = {
        Moderation.ACCEPT: "accepted",
        Moderation.MERGE: "merged",
        Moderation.REJECT: "rejected",
    }[action]
    # Compare and set: of two staff members pressing at once, one moderates.
    moved = await session.execute(
        update(AgendaItem)
        .where(AgendaItem.id == item.id, AgendaItem.status == "pending")
        .values(
            status=status,
            reason=reason or None,
            merged_into_id=target.id if target is not None else None,
            moderated_by=actor_id,
            moderated_at=now,
        )
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return Problem.DONE
    await session.refresh(item)
    if target is not None:
        # The merged item's backers, and its proposer, now back the item it joined.
        for backer in [item.proposer_id, *await items.supporters(session, item.id)]:
            if backer != target.proposer_id:
                await _add_support(session, target.id, backer, now)
    await audit.record(
        session,
        f"agenda.{action.value}",
        actor_id=actor_id,
        at=now,
        item=item.id,
        into=target.id if target is not None else None,
    )
    return Done(item, await notices.moderated(session, item, actor_id))


async def _add_support(session: AsyncSession, item_id: int, person_id: int, now: datetime) -> bool:
    return await insert_ignoring_conflict(
        session,
        AgendaSupport.__table__,  # type: ignore[arg-type]
        {"item_id": item_id, "person_id": person_id, "at": now},
    )


async def support(
    session: AsyncSession, person_id: int, item_id: int, now: datetime, *, on: bool
) -> bool | Problem:
    """Back an item (or stop): accepted items of a month still open. True when it changed."""
    person = await session.get(Person, person_id)
    if person is None or person.status != "active":
        return Problem.NOT_REGISTERED
    item = await session.get(AgendaItem, item_id)
    if item is None:
        return Problem.UNKNOWN
    cycle = await session.get(AgendaCycle, item.cycle_id)
    if item.status != "accepted" or cycle is None or cycle.phase not in (PROPOSALS, VOTING):
        return Problem.NOT_OPEN
    if on:
        return await _add_support(session, item.id, person_id, now)
    result = await session.execute(
        delete(AgendaSupport).where(
            AgendaSupport.item_id == item.id, AgendaSupport.person_id == person_id
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def supports(session: AsyncSession, person_id: int, item_id: int) -> bool:
    found = await session.scalar(
        select(AgendaSupport.id).where(
            AgendaSupport.item_id == item_id, AgendaSupport.person_id == person_id
        )
    )
    return found is not None
