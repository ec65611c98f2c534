"""Reports in the database: submitting, moving one through the lifecycle (locked), its media,
followers and timeline. Lists and due rows are in queries.py, likely duplicates in
duplicates.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Person, Report, ReportEvent, ReportFollower, ReportMedia
from services import audit
from services.reports.lifecycle import (
    Action,
    Capacity,
    Refusal,
    State,
    next_state,
)
from services.reports.policy import Category
from services.sql import insert_ignoring_conflict


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


def for_move(query: Select[tuple[Report]], *, skip_locked: bool = False) -> Select[tuple[Report]]:
    """Reports locked for a move until the transaction ends, as they are now (not as this
    session last saw them)."""
    return query.with_for_update(skip_locked=skip_locked).execution_options(populate_existing=True)


async def lock(session: AsyncSession, report_id: int) -> Report | None:
    """The report as it is now, locked for a move until the transaction ends.

    Load it this way before deciding or writing anything about it: two people moving one report
    then take turns, and the second one decides on what the first one left (FOR UPDATE on
    Postgres; SQLite's BEGIN IMMEDIATE already lets one writer at a time in).
    """
    return await session.scalar(for_move(select(Report).where(Report.id == report_id)))


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


__all__ = ["NewReport", "Photo", "apply", "follow", "lock", "submit", "timeline"]
