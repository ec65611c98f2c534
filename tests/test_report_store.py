"""Reports in the database, on SQLite and Postgres: numbers, timeline, refusals, duplicates."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.app import Linli
from models import AuditEntry, ReportMedia
from services import community, people
from services.reports.duplicates import similar_open
from services.reports.lifecycle import Action, Capacity, Refusal, State
from services.reports.policy import Category
from services.reports.store import NewReport, Photo, apply, follow, submit, timeline
from tests.conftest import FakeClock

LIGHT = Category("lighting", "property", 48)
ROAD = Category("road", "department", 120, department="Municipal works")


async def resident(linli: Linli, name: str) -> int:
    async with linli.transaction() as session:
        return (await people.identify(session, "console", name)).id


async def building(linli: Linli, name: str = "Building 2") -> int:
    async with linli.transaction() as session:
        found = await community.building_by_name(session, name)
        assert found is not None
        return found.id


async def cast(linli: Linli, *names: str) -> tuple[list[int], int]:
    """Residents by name, and Building 2 where their reports are."""
    return [await resident(linli, name) for name in names], await building(linli)


async def test_submit_numbers_due_time_and_timeline(linli: Linli, clock: FakeClock) -> None:
    reporter = await resident(linli, "amy")
    async with linli.transaction() as session:
        report = await submit(
            session,
            NewReport(
                reporter,
                ROAD,
                "pothole by the gate",
                place="east gate",
                photos=[Photo("a" * 64, "b" * 64, "ffd8c0e0f0f8fcfe")],
                voice_keys=["c" * 64],
            ),
            clock(),
        )
        number, report_id = report.number, report.id
        assert report.owner == "department:Municipal works"
        assert report.due_at == clock() + timedelta(hours=120)
    assert number == f"R-2026-{report_id:06d}"
    async with linli.sessions() as session:
        kinds = sorted((await session.scalars(select(ReportMedia.kind))).all())
        events = await timeline(session, report_id)
    assert kinds == ["before", "voice"]
    assert [(e.action, e.from_state, e.to_state) for e in events] == [("submit", None, "submitted")]


async def test_moves_are_recorded_and_refusals_audited(linli: Linli, clock: FakeClock) -> None:
    (reporter, worker), b2 = await cast(linli, "ben", "wu")
    async with linli.transaction() as session:
        report = await submit(session, NewReport(reporter, LIGHT, building_id=b2), clock())
        assert (
            await apply(session, report, Action.ASSIGN, Capacity.SYSTEM, actor_id=None, now=clock())
            is State.ASSIGNED
        )
        refused = await apply(
            session, report, Action.ACCEPT, Capacity.REPORTER, actor_id=reporter, now=clock()
        )
        assert isinstance(refused, Refusal) and refused.reason == "not_your_role"
        assert (
            await apply(
                session, report, Action.ACCEPT, Capacity.ASSIGNEE, actor_id=worker, now=clock()
            )
            is State.IN_PROGRESS
        )
        clock.advance(hours=3)
        early = await apply(
            session, report, Action.RESOLVE, Capacity.ASSIGNEE, actor_id=worker, now=clock()
        )
        assert isinstance(early, Refusal) and early.reason == "note_required"
        done = await apply(
            session,
            report,
            Action.RESOLVE,
            Capacity.ASSIGNEE,
            actor_id=worker,
            now=clock(),
            note="new bulb",
        )
        assert done is State.RESOLVED and report.resolved_at == clock()
        report_id, number = report.id, report.number
    async with linli.sessions() as session:
        events = await timeline(session, report_id)
        refusals = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "report.refused"))
        ).all()
    assert [e.to_state for e in events] == ["submitted", "assigned", "in_progress", "resolved"]
    assert events[-1].note == "new bulb" and events[-1].actor_id == worker
    assert [r.detail["reason"] for r in refusals] == ["not_your_role", "note_required"]
    assert all(r.detail["report"] == number for r in refusals)


async def test_similar_open_reports_by_category_and_by_photo(
    linli: Linli, clock: FakeClock
) -> None:
    reporter = await resident(linli, "cai")
    b2 = await building(linli, "Building 2")
    b3 = await building(linli, "Building 3")
    async with linli.transaction() as session:
        same = await submit(
            session, NewReport(reporter, LIGHT, "lamp out", building_id=b2), clock()
        )
        photo = await submit(
            session,
            NewReport(
                reporter,
                ROAD,
                "rubbish",
                building_id=b2,
                photos=[Photo("d" * 64, None, "ffd8c0e0f0f8fcfe")],
            ),
            clock(),
        )
        await submit(session, NewReport(reporter, LIGHT, "elsewhere", building_id=b3), clock())
        closed = await submit(session, NewReport(reporter, LIGHT, "old", building_id=b2), clock())
        closed.state = State.CLOSED.value
        same_id, photo_id = same.id, photo.id
    clock.advance(days=1)
    async with linli.sessions() as session:
        found = await similar_open(
            session,
            category="lighting",
            building_id=b2,
            place=None,
            since=clock() - timedelta(days=14),
            phashes=["ffd8c0e0f0f8fcff"],  # one bit away from the road report's photo
        )
        assert [r.id for r in found] == [photo_id, same_id]
        stale = await similar_open(
            session, category="lighting", building_id=b2, place=None, since=clock()
        )
        assert stale == []


async def test_follow_is_idempotent(linli: Linli, clock: FakeClock) -> None:
    (reporter, follower), b2 = await cast(linli, "dai", "eli")
    async with linli.transaction() as session:
        report = await submit(session, NewReport(reporter, LIGHT, building_id=b2), clock())
        assert await follow(session, report.id, follower, clock())
        assert not await follow(session, report.id, follower, clock())


async def test_nothing_is_similar_to_a_report_with_no_building_and_no_place(
    linli: Linli, clock: FakeClock
) -> None:
    """Only a pin on the map: reports in buildings (no shared place either) are not "the same
    place", whichever grid they are in."""
    [reporter], b2 = await cast(linli, "cai")
    async with linli.transaction() as session:
        await submit(session, NewReport(reporter, LIGHT, "lamp out", building_id=b2), clock())
        pinned = await submit(
            session, NewReport(reporter, LIGHT, "lamp out", location=(31.2, 121.4)), clock()
        )
        found = await similar_open(
            session,
            category="lighting",
            building_id=None,
            place=None,
            since=clock() - timedelta(days=1),
            exclude_id=pinned.id,
        )
    assert found == []
