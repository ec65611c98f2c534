"""A whole report lifecycle through the use cases alone: no handler, no channel, no dialogue.
Each step asserts the notification intents it returns (who is told what, with which actions),
written out by hand. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import Linli, report_rules
from models import Building, PendingAward, Role
from services import community, people
from services.notices import Notice
from services.people import Grant
from services.reports import moves, notices, queries, store, submission, ticks, verdict
from services.reports.lifecycle import State
from services.reports.policy import ReportPolicy
from tests.conftest import FakeClock

NEW = ("accept", "reassign", "reject", "duplicate")
WORKING = ("progress", "resolve", "reassign")


def said(items: list[Notice]) -> list[tuple[int, str, str | None, tuple[str, ...]]]:
    """Who hears which kind, the card's headline (for cards), and the actions they get."""
    return [(n.person_id, n.kind, n.params.get("headline"), n.actions) for n in items]


async def someone(session: AsyncSession, name: str, *grants: Grant) -> int:
    person = await people.identify(session, "console", name, display_name=name.title())
    for grant in grants:
        await people.grant(session, person.id, grant)
    return person.id


async def cast(
    session: AsyncSession, building_name: str, *staff: str
) -> tuple[Building, int, int, int, list[int]]:
    """The building, two residents (amy, bob), its grid's worker (gus), and staff members."""
    building = await community.building_by_name(session, building_name)
    assert building is not None
    amy = await someone(session, "amy", Grant(Role.RESIDENT))
    bob = await someone(session, "bob", Grant(Role.RESIDENT))
    gus = await someone(session, "gus", Grant(Role.GRID_WORKER, grid_id=building.grid_id))
    return building, amy, bob, gus, [await someone(session, s, Grant(Role.STAFF)) for s in staff]


async def test_a_report_from_submission_to_closing(linli: Linli, clock: FakeClock) -> None:
    policy: ReportPolicy = report_rules(linli.settings).policy
    garbage = policy.category("garbage")
    assert garbage is not None
    async with linli.transaction() as session:
        building, amy, bob, gus, (sam, sue) = await cast(session, "Building 2", "sam", "sue")

    # Submit: dispatched to the grid worker of the building's grid, who gets a fresh card.
    async with linli.transaction() as session:
        new = store.NewReport(
            reporter_id=amy,
            category=garbage,
            description="Bags piled up for three days",
            building_id=building.id,
            grid_id=building.grid_id,
        )
        done = await submission.submit(session, new, clock(), policy)
        report_id = done.report.id
        assert done.to is not None and done.to.person.id == gus
        assert said(done.notices) == [(gus, notices.CARD, "new", NEW)]
        followed = await submission.follow(session, bob, report_id, clock())
        assert isinstance(followed, submission.Followed) and followed.new

    # Overdue: the tick escalates it one rung up, to the least busy staff member.
    clock.advance(hours=25)
    async with linli.transaction() as session:
        (due,) = await queries.due_escalations(session, clock())
        told = await ticks.escalate_overdue(session, due, clock(), policy)
        assert told is not None and said(told) == [
            (sam, notices.CARD, "escalated", NEW),
            (gus, notices.CARD, "escalated_away", ()),
            (amy, notices.OVERDUE, None, ()),
            (bob, notices.OVERDUE, None, ()),
        ]

    # The grid worker's old card can no longer do anything.
    async with linli.transaction() as session:
        refused = await moves.accept(session, gus, report_id, clock(), policy)
        assert isinstance(refused, moves.Refused) and refused.reason == "not_your_role"

    # Accept: the residents hear it, the reporter's points wait for the ledger.
    async with linli.transaction() as session:
        accepted = await moves.accept(session, sam, report_id, clock(), policy)
        assert isinstance(accepted, moves.Moved)
        assert said(accepted.notices) == [
            (amy, notices.ACCEPTED, None, ()),
            (bob, notices.ACCEPTED, None, ()),
            (sam, notices.CARD, "accepted", WORKING),
        ]
        award = await session.scalar(select(PendingAward))
        assert award is not None and (award.person_id, award.points) == (amy, 3)

    # Reassign to a colleague: their card, the old card gone, the residents told why.
    async with linli.transaction() as session:
        passed = await moves.reassign(
            session, sam, report_id, sue, 1, "Sue has the key to the bin room", clock(), policy
        )
        assert isinstance(passed, moves.Moved) and passed.to is not None
        assert said(passed.notices) == [
            (sue, notices.CARD, "passed", NEW),
            (sam, notices.CARD, "moved_on", ()),
            (amy, notices.PASSED, None, ()),
            (bob, notices.PASSED, None, ()),
        ]
        assert passed.notices[0].params["note"] == "Sue has the key to the bin room"

    # Accept and resolve: only the reporter is asked to rate, with the stars as actions.
    async with linli.transaction() as session:
        assert isinstance(await moves.accept(session, sue, report_id, clock(), policy), moves.Moved)
        resolved = await moves.resolve(session, sue, report_id, "Collected", clock(), after=None)
        assert isinstance(resolved, moves.Moved)
        assert said(resolved.notices) == [
            (amy, notices.RATE, None, ("1", "2", "3", "4", "5", "notfixed")),
            (bob, notices.RESOLVED, None, ()),
            (sue, notices.CARD, "resolved", ()),
        ]

    # A follower can't rate; "not fixed" from the reporter reopens it, one rung up (the top):
    # the least busy staff member gets it with a new deadline.
    async with linli.transaction() as session:
        wrong = await verdict.rate(session, bob, report_id, 5, clock(), policy, note="5")
        assert isinstance(wrong, moves.Refused) and wrong.reason == "not_your_role"
        reopened = await verdict.rate(session, amy, report_id, None, clock(), policy, note="no")
        assert isinstance(reopened, moves.Moved)
        assert said(reopened.notices) == [
            (sue, notices.VERDICT, None, ()),
            (sam, notices.CARD, "escalated", ("accept", "reassign")),
            (sue, notices.CARD, "moved_on", ()),
        ]
        assert reopened.report.state == State.REOPENED
        assert reopened.report.due_at == clock() + timedelta(hours=24)

    # Fixed for good: four stars close it; the handler hears the verdict, and a comment.
    async with linli.transaction() as session:
        assert isinstance(await moves.accept(session, sam, report_id, clock(), policy), moves.Moved)
        assert isinstance(
            await moves.resolve(session, sam, report_id, "Bin room cleared", clock(), after=None),
            moves.Moved,
        )
        closed = await verdict.rate(session, amy, report_id, 4, clock(), policy, note="4")
        assert isinstance(closed, moves.Moved) and closed.report.state == State.CLOSED
        assert said(closed.notices) == [(sam, notices.VERDICT, None, ())]
        assert closed.notices[0].params == {"stars": 4}
        commented = await verdict.comment(session, amy, report_id, "Thanks!", clock())
        assert isinstance(commented, moves.Moved)
        assert said(commented.notices) == [(sam, notices.COMMENT, None, ())]
        timeline = [e.action for e in await store.timeline(session, report_id)]
    assert timeline == [
        "submit",
        "assign",
        "escalate",
        "accept",
        "reassign",
        "accept",
        "resolve",
        "reopen",
        "escalate",
        "accept",
        "resolve",
        "confirm",
    ]


async def test_rejected_duplicate_and_unrated_reports(linli: Linli, clock: FakeClock) -> None:
    policy = report_rules(linli.settings).policy
    other = policy.category("other")
    assert other is not None
    async with linli.transaction() as session:
        building, amy, bob, gus, _ = await cast(session, "Building 1")

        def new(who: int, text: str) -> store.NewReport:
            return store.NewReport(who, other, text, building.id, building.grid_id)

        first = (await submission.submit(session, new(amy, "Broken bench"), clock(), policy)).report
        second = (
            await submission.submit(session, new(bob, "Bench broken"), clock(), policy)
        ).report
        third = (await submission.submit(session, new(bob, "A ghost"), clock(), policy)).report

    async with linli.transaction() as session:
        # Nobody is told anything by a refusal; an unrelated report can't be the original.
        unrelated = await moves.mark_duplicate(session, gus, second.id, 999_999, clock(), policy)
        assert isinstance(unrelated, moves.Refused)
        assert unrelated.reason == moves.NOT_AN_ORIGINAL
        dup = await moves.mark_duplicate(session, gus, second.id, first.id, clock(), policy)
        assert isinstance(dup, moves.Moved)
        assert said(dup.notices) == [
            (bob, notices.DUPLICATE, None, ()),
            (gus, notices.CARD, "duplicate", ()),
        ]
        assert dup.notices[0].params == {"original": first.number}
        assert bob in {p.id for p in await store.followers(session, first.id)}
        rejected = await moves.reject(session, gus, third.id, "Nothing there", clock())
        assert isinstance(rejected, moves.Moved)
        assert said(rejected.notices) == [
            (bob, notices.REJECTED, None, ()),
            (gus, notices.CARD, "rejected", ()),
        ]
        # A report with its reason is final: a second move is refused with its state.
        again = await moves.reject(session, gus, third.id, "Twice", clock())
        assert isinstance(again, moves.Refused) and again.reason == "not_allowed_now"

    async with linli.transaction() as session:
        assert isinstance(await moves.accept(session, gus, first.id, clock(), policy), moves.Moved)
        await moves.resolve(session, gus, first.id, "Repaired", clock(), after=None)
    clock.advance(days=8)
    async with linli.transaction() as session:
        (unrated,) = await queries.unrated_since(session, clock() - policy.autoclose_after)
        told = await ticks.auto_close(session, unrated, clock(), policy)
        assert told is not None and said(told) == [
            (amy, notices.AUTO_CLOSED, None, ()),
            (bob, notices.AUTO_CLOSED, None, ()),
        ]
        assert told[0].params == {"days": 7}
        # The rating buttons are gone with it.
        late = await verdict.rate(session, amy, first.id, 5, clock(), policy, note="5")
        assert isinstance(late, moves.Refused) and late.reason == "not_allowed_now"
