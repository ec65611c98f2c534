"""Reports in the database: submitting, moving through the lifecycle, finding likely duplicates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import imagehash
from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Person, Report, ReportEvent, ReportFollower, ReportMedia
from services import audit
from services.reports.lifecycle import (
    HANDLING_STATES,
    OPEN_STATES,
    Action,
    Capacity,
    Refusal,
    State,
    next_state,
)
from services.sql import insert_ignoring_conflict


@dataclass(frozen=True)
class Category:
    """What the store needs of a configured category (bot.toml [[report.categories]])."""

    code: str
    owner: str  # grid_worker | property | department
    sla_hours: float
    department: str = ""
    points: int = 0  # credited to the reporter once the report is accepted
    photo_required: bool = True

    @property
    def sla(self) -> timedelta:
        return timedelta(hours=self.sla_hours)

    @property
    def owner_label(self) -> str:
        return f"department:{self.department}" if self.owner == "department" else self.owner


@dataclass(frozen=True)
class Photo:
    media_key: str
    thumb_key: str | None
    phash: str | None


@dataclass(frozen=True)
class NewReport:
    reporter_id: int
    category: Category
    description: str = ""
    building_id: int | None = None
    grid_id: int | None = None
    place: str | None = None
    place_detail: str = ""
    location: tuple[float, float] | None = None
    photos: Sequence[Photo] = field(default_factory=tuple)
    voice_keys: Sequence[str] = field(default_factory=tuple)


def public_number(created_at: datetime, report_id: int) -> str:
    return f"R-{created_at.year}-{report_id:06d}"


async def submit(session: AsyncSession, new: NewReport, now: datetime) -> Report:
    report = Report(
        reporter_id=new.reporter_id,
        category=new.category.code,
        building_id=new.building_id,
        grid_id=new.grid_id,
        place=new.place,
        place_detail=new.place_detail,
        latitude=new.location[0] if new.location else None,
        longitude=new.location[1] if new.location else None,
        description=new.description,
        state=State.SUBMITTED.value,
        owner=new.category.owner_label,
        due_at=now + new.category.sla,
        escalate_at=now + new.category.sla,
        created_at=now,
        updated_at=now,
    )
    session.add(report)
    await session.flush()
    report.number = public_number(now, report.id)
    session.add_all(
        [
            ReportMedia(
                report_id=report.id,
                kind="before",
                media_key=p.media_key,
                thumb_key=p.thumb_key,
                phash=p.phash,
                created_at=now,
            )
            for p in new.photos
        ]
        + [
            ReportMedia(
                report_id=report.id,
                kind="voice",
                media_key=k,
                mime_type="audio/ogg",
                created_at=now,
            )
            for k in new.voice_keys
        ]
    )
    session.add(
        ReportEvent(
            report_id=report.id,
            at=now,
            actor_id=new.reporter_id,
            action="submit",
            from_state=None,
            to_state=State.SUBMITTED.value,
        )
    )
    await session.flush()
    return report


async def record_refusal(
    session: AsyncSession,
    report: Report,
    refused: Refusal,
    capacity: Capacity | None,
    actor_id: int | None,
) -> None:
    await audit.record(
        session,
        "report.refused",
        actor_id=actor_id,
        outcome="refused",
        report=report.number,
        move=refused.action.value,
        state=refused.state.value,
        capacity=capacity.value if capacity else None,
        reason=refused.reason,
    )


async def apply(
    session: AsyncSession,
    report: Report,
    action: Action,
    capacity: Capacity,
    *,
    actor_id: int | None,
    now: datetime,
    note: str = "",
) -> State | Refusal:
    """Move the report if the lifecycle allows it; refusals go to the audit log, moves to the
    report's timeline, both in the caller's transaction."""
    before = State(report.state)
    result = next_state(before, action, capacity, note=note)
    if isinstance(result, Refusal):
        await record_refusal(session, report, result, capacity, actor_id)
        return result
    report.state = result.value
    report.updated_at = now
    if result is State.RESOLVED:
        report.resolved_at = now
    if result is State.CLOSED:
        report.closed_at = now
    if result is State.REJECTED:
        report.reject_reason = note[:500]
    session.add(
        ReportEvent(
            report_id=report.id,
            at=now,
            actor_id=actor_id,
            action=action.value,
            from_state=before.value,
            to_state=result.value,
            note=note[:1000],
        )
    )
    return result


def set_assignee(
    report: Report,
    person_id: int,
    level: int,
    sla: timedelta,
    now: datetime,
    *,
    reminder_fraction: float,
    top: bool,
    new_period: bool,
) -> None:
    """Hand the report to someone; `new_period` starts their SLA clock (dispatch, escalation).

    A reassignment within a rung keeps the clock: passing a report on must not buy time.
    """
    report.assignee_id, report.escalation_level, report.updated_at = person_id, level, now
    if new_period:
        report.remind_at = now + sla * reminder_fraction
        report.reminded_at = None
        report.escalate_at = None if top else now + sla


async def get(session: AsyncSession, report_id: int) -> Report | None:
    return await session.get(Report, report_id)


def _for_move(query: Select[tuple[Report]], *, skip_locked: bool = False) -> Select[tuple[Report]]:
    """Reports locked for a move until the transaction ends, as they are now (not as this
    session last saw them)."""
    return query.with_for_update(skip_locked=skip_locked).execution_options(populate_existing=True)


async def lock(session: AsyncSession, report_id: int) -> Report | None:
    """The report as it is now, locked for a move until the transaction ends.

    Load it this way before deciding or writing anything about it: two people moving one report
    then take turns, and the second one decides on what the first one left (FOR UPDATE on
    Postgres; SQLite's BEGIN IMMEDIATE already lets one writer at a time in).
    """
    return await session.scalar(_for_move(select(Report).where(Report.id == report_id)))


async def hold_if_free(session: AsyncSession, report_id: int) -> Report | None:
    """The report, kept from moving until the transaction ends (FOR SHARE), or None while
    someone else is moving it: a move that only refers to it never waits, so never deadlocks."""
    return await session.scalar(
        select(Report)
        .where(Report.id == report_id)
        .with_for_update(read=True, skip_locked=True)
        .execution_options(populate_existing=True)
    )


async def by_number(session: AsyncSession, number: str) -> Report | None:
    return await session.scalar(select(Report).where(Report.number == number.strip().upper()))


async def media_of(session: AsyncSession, report_id: int, kind: str) -> list[ReportMedia]:
    query = select(ReportMedia).where(ReportMedia.report_id == report_id, ReportMedia.kind == kind)
    return list((await session.scalars(query.order_by(ReportMedia.id))).all())


async def add_media(
    session: AsyncSession, report_id: int, kind: str, photo: Photo, now: datetime
) -> None:
    session.add(
        ReportMedia(
            report_id=report_id,
            kind=kind,
            media_key=photo.media_key,
            thumb_key=photo.thumb_key,
            phash=photo.phash,
            created_at=now,
        )
    )


async def followers(session: AsyncSession, report_id: int) -> list[Person]:
    query = (
        select(Person)
        .join(ReportFollower, ReportFollower.person_id == Person.id)
        .where(ReportFollower.report_id == report_id)
        .order_by(Person.id)
    )
    return list((await session.scalars(query)).all())


async def of_person(session: AsyncSession, person_id: int, limit: int = 20) -> list[Report]:
    """A resident's own reports and the ones they follow, newest first."""
    followed = select(ReportFollower.report_id).where(ReportFollower.person_id == person_id)
    query = (
        select(Report)
        .where(or_(Report.reporter_id == person_id, Report.id.in_(followed)))
        .order_by(Report.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


@dataclass(frozen=True)
class QueueScope:
    """Which reports someone who handles them may see; staff see everything."""

    person_id: int
    everything: bool = False
    grid_ids: frozenset[int] = frozenset()
    owners: frozenset[str] = frozenset()  # Report.owner labels: property, department:<name>


async def queue(
    session: AsyncSession, scope: QueueScope, which: str, now: datetime, limit: int = 10
) -> list[Report]:
    """which: open (being handled), overdue (past due), mine (assigned to this person)."""
    query = select(Report).where(Report.state.in_([s.value for s in HANDLING_STATES]))
    if which == "mine":
        query = query.where(Report.assignee_id == scope.person_id)
    elif not scope.everything:
        query = query.where(
            or_(
                Report.assignee_id == scope.person_id,
                Report.grid_id.in_(scope.grid_ids) & (Report.owner == "grid_worker"),
                Report.owner.in_(scope.owners),
            )
        )
    if which == "overdue":
        query = query.where(Report.due_at <= now)
    return list(
        (await session.scalars(query.order_by(Report.due_at, Report.id).limit(limit))).all()
    )


async def _due(session: AsyncSession, query: Select[tuple[Report]]) -> list[Report]:
    """Due rows for the tick, locked for its moves. Rows someone is moving right now are left
    for the next tick (SKIP LOCKED), which finds them moved on or still due: the tick never
    waits for a chat, so it can never deadlock with one."""
    query = _for_move(query.order_by(Report.id), skip_locked=True)
    return list((await session.scalars(query)).all())


async def due_reminders(session: AsyncSession, now: datetime) -> list[Report]:
    query = select(Report).where(
        Report.remind_at <= now,
        Report.reminded_at.is_(None),
        Report.assignee_id.is_not(None),
        Report.state.in_([s.value for s in HANDLING_STATES]),
    )
    return await _due(session, query)


async def due_escalations(session: AsyncSession, now: datetime) -> list[Report]:
    query = select(Report).where(
        Report.escalate_at <= now,
        Report.assignee_id.is_not(None),
        Report.state.in_([State.ASSIGNED.value, State.IN_PROGRESS.value, State.REOPENED.value]),
    )
    return await _due(session, query)


async def undispatched(session: AsyncSession) -> list[Report]:
    """Submitted when nobody could take them; dispatch tries again once someone can."""
    query = select(Report).where(
        Report.state == State.SUBMITTED.value, Report.assignee_id.is_(None)
    )
    return await _due(session, query)


async def unrated_since(session: AsyncSession, before: datetime) -> list[Report]:
    query = select(Report).where(Report.state == State.RESOLVED.value, Report.resolved_at <= before)
    return await _due(session, query)


async def handled_by(session: AsyncSession, person_id: int) -> list[Report]:
    """The reports this person is handling now, locked for handing them on."""
    query = select(Report).where(
        Report.assignee_id == person_id, Report.state.in_([s.value for s in HANDLING_STATES])
    )
    return list((await session.scalars(_for_move(query.order_by(Report.id)))).all())


async def open_outside(session: AsyncSession, categories: Sequence[str]) -> list[Report]:
    """Open reports whose category is not among `categories` (removed from the configuration)."""
    query = select(Report).where(
        Report.state.in_([s.value for s in OPEN_STATES]), Report.category.not_in(categories)
    )
    return list((await session.scalars(query.order_by(Report.id))).all())


async def timeline(session: AsyncSession, report_id: int) -> list[ReportEvent]:
    query = select(ReportEvent).where(ReportEvent.report_id == report_id).order_by(ReportEvent.id)
    return list((await session.scalars(query)).all())


async def follow(session: AsyncSession, report_id: int, person_id: int, now: datetime) -> bool:
    """+1: True when this person was not following yet."""
    return await insert_ignoring_conflict(
        session,
        ReportFollower.__table__,  # type: ignore[arg-type]
        {"report_id": report_id, "person_id": person_id, "created_at": now},
    )


async def similar_open(
    session: AsyncSession,
    *,
    category: str,
    building_id: int | None,
    place: str | None,
    since: datetime,
    phashes: Sequence[str] = (),
    max_distance: int = 10,
    limit: int = 5,
    exclude_id: int | None = None,
) -> list[Report]:
    """Open reports that are probably about the same problem (the FixMyStreet lesson).

    Same building (or shared place) in the window, and either the same category or a photo whose
    perceptual hash is within `max_distance`: a photo match comes first, it is the stronger hint.
    """
    if building_id is not None:
        where = Report.building_id == building_id
    elif place is not None:
        where = Report.place == place
    else:
        where = false()  # neither a building nor a shared place: nothing to compare with
    candidates = list(
        (
            await session.scalars(
                select(Report)
                .where(
                    where,
                    Report.state.in_([s.value for s in OPEN_STATES]),
                    Report.created_at >= since,
                    Report.id != (exclude_id or 0),
                )
                .order_by(Report.created_at.desc())
                .limit(50)
            )
        ).all()
    )
    if not candidates:
        return []
    wanted = [imagehash.hex_to_hash(h) for h in phashes]
    photo_match: set[int] = set()
    if wanted:
        rows = (
            await session.execute(
                select(ReportMedia.report_id, ReportMedia.phash).where(
                    and_(
                        ReportMedia.report_id.in_([r.id for r in candidates]),
                        ReportMedia.phash.is_not(None),
                    )
                )
            )
        ).all()
        for report_id, phash in rows:
            known = imagehash.hex_to_hash(phash)
            if any(known - h <= max_distance for h in wanted):
                photo_match.add(report_id)
    matches = [r for r in candidates if r.id in photo_match or r.category == category]
    matches.sort(key=lambda r: (r.id not in photo_match, -r.created_at.timestamp()))
    return matches[:limit]


async def originals(
    session: AsyncSession,
    report: Report,
    *,
    window: timedelta,
    max_distance: int,
    limit: int = 50,
) -> list[Report]:
    """What `report` may be marked a duplicate of: the open reports the duplicate search offers
    for it (same building or shared place, within `window` of it, same category or a similar
    photo), best first, never itself. The same list gives the buttons and checks a typed number,
    so nobody can point a report at one in another grid, a closed one or an unrelated one."""
    phashes = [m.phash for m in await media_of(session, report.id, "before") if m.phash]
    return await similar_open(
        session,
        category=report.category,
        building_id=report.building_id,
        place=report.place,
        since=report.created_at - window,
        phashes=phashes,
        max_distance=max_distance,
        limit=limit,
        exclude_id=report.id,
    )


__all__ = [
    "Category",
    "NewReport",
    "Photo",
    "QueueScope",
    "apply",
    "follow",
    "similar_open",
    "submit",
    "timeline",
]
