"""Who answers for a report, level by level (街乡吹哨、部门报到).

Each owner has a ladder: the people who fix it, the head of their unit, then community staff.
An overdue or reopened report climbs one rung; a rung nobody holds is skipped, so a report is
never parked with no one. Within a rung the person with the fewest open reports gets it. Nobody
is ever routed their own report: a handler who reports something is a resident like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Person, Report, Role
from services import people
from services.reports.lifecycle import HANDLING_STATES

# Rung names double as the msgid keys handlers translate ("grid_worker" → 网格员 …).
GRID_WORKER = "grid_worker"
PROPERTY = "property"
PROPERTY_HEAD = "property_head"
DEPARTMENT = "department"
DEPARTMENT_HEAD = "department_head"
STAFF = "staff"

LADDERS: dict[str, tuple[str, ...]] = {
    "grid_worker": (GRID_WORKER, STAFF),
    "property": (PROPERTY, PROPERTY_HEAD, STAFF),
    "department": (DEPARTMENT, DEPARTMENT_HEAD, STAFF),
}
_RUNG_ROLES = {
    GRID_WORKER: Role.GRID_WORKER,
    PROPERTY: Role.PROPERTY,
    PROPERTY_HEAD: Role.PROPERTY_HEAD,
    DEPARTMENT: Role.DEPARTMENT,
    DEPARTMENT_HEAD: Role.DEPARTMENT_HEAD,
}


def owner_kind(owner: str) -> str:
    """`department:<name>` → department; the label Report.owner keeps the name."""
    return owner.partition(":")[0]


def ladder(owner: str) -> tuple[str, ...]:
    return LADDERS[owner_kind(owner)]


def rung(owner: str, level: int) -> str:
    steps = ladder(owner)
    return steps[min(level, len(steps) - 1)]


async def people_at(session: AsyncSession, report: Report, level: int) -> list[Person]:
    name = rung(report.owner, level)
    if name == STAFF:
        return await people.staff_members(session)
    role = _RUNG_ROLES[name]
    if name == GRID_WORKER:
        if report.grid_id is None:
            return []
        return await people.holding(session, role, grid_id=report.grid_id)
    if name in (DEPARTMENT, DEPARTMENT_HEAD):
        return await people.holding(session, role, department=report.owner.partition(":")[2])
    return await people.holding(session, role)


@dataclass(frozen=True)
class Choice:
    level: int
    rung: str
    person: Person


async def choose(
    session: AsyncSession, report: Report, level: int, *, exclude: frozenset[int] = frozenset()
) -> Choice | None:
    """The least busy person on the first rung from `level` up that anyone holds, never the
    reporter nor anyone in `exclude`."""
    exclude = exclude | {report.reporter_id}
    for current in range(level, len(ladder(report.owner))):
        candidates = [p for p in await people_at(session, report, current) if p.id not in exclude]
        if candidates:
            load = await open_load(session, [p.id for p in candidates])
            best = min(candidates, key=lambda p: (load.get(p.id, 0), p.id))
            return Choice(current, rung(report.owner, current), best)
    return None


async def reassign_options(session: AsyncSession, report: Report) -> list[Choice]:
    """Whom the report may be passed to now: anyone on its rung or above, each once at their
    lowest rung, except whoever has it and whoever reported it. The buttons offered and the
    check of the one pressed both come from here."""
    exclude = {report.assignee_id, report.reporter_id}
    options: list[Choice] = []
    for level in range(report.escalation_level, top_level(report.owner) + 1):
        for person in await people_at(session, report, level):
            if person.id not in exclude:
                exclude.add(person.id)
                options.append(Choice(level, rung(report.owner, level), person))
    return options


async def open_load(session: AsyncSession, person_ids: list[int]) -> dict[int, int]:
    rows = await session.execute(
        select(Report.assignee_id, func.count())
        .where(
            Report.assignee_id.in_(person_ids), Report.state.in_([s.value for s in HANDLING_STATES])
        )
        .group_by(Report.assignee_id)
    )
    return {assignee: count for assignee, count in rows.all()}


def top_level(owner: str) -> int:
    return len(ladder(owner)) - 1
