"""What whoever handles a report does with it: accept, reassign, reject, mark a duplicate, post
progress, resolve. Each use case locks the report, asks `access` whether this person may make
the move now, applies the lifecycle (timeline, audit, points) and returns who is told what.

A move that needs words is asked in two steps by the dialogue: `check` before asking (so
nobody types a note for a move they can't make), then the move itself, which decides again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from models import Report
from services import tickets
from services.notices import Notice
from services.points import awards
from services.reports import access, duplicates, notices, routing, store
from services.reports.handing import REPORT_TICKET, hand_over
from services.reports.lifecycle import OPEN_STATES, Action, Capacity, Refusal, State
from services.reports.policy import ReportPolicy

# Reason codes of refusals beyond access's and the lifecycle's own:
GONE = "gone"  # no such report
NOT_AN_ORIGINAL = "not_an_original"  # not one the duplicate search offers for this report
BUSY = "busy"  # being changed by someone else right now: try again
NOBODY = "nobody"  # the person to pass it to can no longer take it


@dataclass
class Moved:
    report: Report
    notices: list[Notice] = field(default_factory=list)
    # Reassign: who has it now.
    to: routing.Choice | None = None


@dataclass(frozen=True)
class Refused:
    """Why a move was not made; `report` is the report as it is now (None: it does not exist)."""

    reason: str
    report: Report | None = None


def accepted_key(report: Report) -> str:
    return f"report:{report.id}:accepted"


async def check(
    session: AsyncSession, actor_id: int, report_id: int, action: Action
) -> tuple[Report, Capacity] | Refused:
    """The report, locked, and the capacity in which this person may make `action` on it now;
    a refusal is audited."""
    report = await store.lock(session, report_id)
    if report is None:
        return Refused(GONE)
    decided = await access.may(session, actor_id, report, action)
    if isinstance(decided, Refusal):
        await store.record_refusal(session, report, decided, None, actor_id)
        return Refused(decided.reason, report)
    return report, decided


async def _make(
    session: AsyncSession,
    actor_id: int,
    report_id: int,
    action: Action,
    now: datetime,
    note: str = "",
) -> tuple[Report, Capacity] | Refused:
    """Check, then make the move: the report after it, and in what capacity it was made."""
    checked = await check(session, actor_id, report_id, action)
    if isinstance(checked, Refused):
        return checked
    report, capacity = checked
    return await _apply(session, actor_id, report, action, capacity, now, note) or checked


async def _apply(
    session: AsyncSession,
    actor_id: int,
    report: Report,
    action: Action,
    capacity: Capacity,
    now: datetime,
    note: str = "",
) -> Refused | None:
    moved = await store.apply(
        session, report, action, capacity, actor_id=actor_id, now=now, note=note
    )
    return Refused(moved.reason, report) if isinstance(moved, Refusal) else None


async def accept(
    session: AsyncSession, actor_id: int, report_id: int, now: datetime, policy: ReportPolicy
) -> Moved | Refused:
    made = await _make(session, actor_id, report_id, Action.ACCEPT, now)
    if isinstance(made, Refused):
        return made
    report, capacity = made
    previous = report.assignee_id
    if capacity is Capacity.STAFF and report.assignee_id != actor_id:
        report.assignee_id = actor_id
    category = policy.category(report.category)
    # Nobody earns points for a report they handle themselves: access refuses that move.
    if category is not None:
        await awards.award(
            session,
            report.reporter_id,
            "report_accepted",
            category.points,
            accepted_key(report),
            now,
        )
    await tickets.retire_for_subject(session, REPORT_TICKET, report.id, now)
    moved = Moved(report, await notices.residents(session, report, notices.ACCEPTED))
    moved.notices.append(await notices.card(session, actor_id, report, "accepted"))
    if previous is not None and previous != actor_id:
        moved.notices.append(notices.card_gone(previous, report, "moved_on"))
    return moved


async def post_note(
    session: AsyncSession, actor_id: int, report_id: int, note: str, now: datetime
) -> Moved | Refused:
    """Progress news: the residents read it, the state does not change."""
    made = await _make(session, actor_id, report_id, Action.NOTE, now, note)
    if isinstance(made, Refused):
        return made
    report, _ = made
    await tickets.retire_for_subject(session, REPORT_TICKET, report.id, now)
    moved = Moved(report, await notices.residents(session, report, notices.NEWS, note=note))
    moved.notices.append(await notices.card(session, actor_id, report, "news_sent"))
    return moved


async def _closed_unfixed(session: AsyncSession, report: Report, now: datetime) -> None:
    """Rejected or a duplicate: its cards go stale, and points are owed only for a report that
    stays accepted (accepted, passed on, then found not to be a problem: none)."""
    await awards.withdraw(session, accepted_key(report), now)
    await tickets.retire_for_subject(session, REPORT_TICKET, report.id, now)


async def reject(
    session: AsyncSession, actor_id: int, report_id: int, note: str, now: datetime
) -> Moved | Refused:
    made = await _make(session, actor_id, report_id, Action.REJECT, now, note)
    if isinstance(made, Refused):
        return made
    report, _ = made
    await _closed_unfixed(session, report, now)
    moved = Moved(report, await notices.residents(session, report, notices.REJECTED, note=note))
    moved.notices.append(notices.card_gone(actor_id, report, "rejected"))
    return moved


async def originals(session: AsyncSession, report: Report, policy: ReportPolicy) -> list[Report]:
    """What `report` may be marked a duplicate of (see duplicates.originals)."""
    return await duplicates.originals(
        session, report, window=policy.duplicate_window, max_distance=policy.phash_distance
    )


async def mark_duplicate(
    session: AsyncSession,
    actor_id: int,
    report_id: int,
    original_id: int,
    now: datetime,
    policy: ReportPolicy,
) -> Moved | Refused:
    """Only an open report that the duplicate search offers for this one can be its original;
    the reporter and followers then follow the original instead."""
    checked = await check(session, actor_id, report_id, Action.MARK_DUPLICATE)
    if isinstance(checked, Refused):
        return checked
    report, capacity = checked
    if original_id not in {r.id for r in await originals(session, report, policy)}:
        return Refused(NOT_AN_ORIGINAL, report)
    # Kept open until this commits; if someone is moving it right now, try again later.
    original = await store.hold_if_free(session, original_id)
    if original is None or State(original.state) not in OPEN_STATES:
        return Refused(BUSY, report)
    refused = await _apply(
        session, actor_id, report, Action.MARK_DUPLICATE, capacity, now, original.number or ""
    )
    if refused is not None:
        return refused
    report.duplicate_of_id = original.id
    await _closed_unfixed(session, report, now)
    moved = Moved(
        report,
        await notices.residents(session, report, notices.DUPLICATE, original=original.number),
    )
    await store.follow(session, original.id, report.reporter_id, now)
    for follower in await store.followers(session, report.id):
        await store.follow(session, original.id, follower.id, now)
    moved.notices.append(notices.card_gone(actor_id, report, "duplicate", original=original.number))
    return moved


async def reassign(
    session: AsyncSession,
    actor_id: int,
    report_id: int,
    to_person: int,
    to_level: int,
    note: str,
    now: datetime,
    policy: ReportPolicy,
) -> Moved | Refused:
    """Pass the report to someone on its rung or above (one of `routing.reassign_options`)."""
    checked = await check(session, actor_id, report_id, Action.REASSIGN)
    if isinstance(checked, Refused):
        return checked
    report, capacity = checked
    to = next(
        (
            c
            for c in await routing.reassign_options(session, report)
            if (c.level, c.person.id) == (to_level, to_person)
        ),
        None,
    )
    if to is None:
        return Refused(NOBODY, report)
    handed = await hand_over(
        session,
        policy,
        report,
        now,
        action=Action.REASSIGN,
        capacity=capacity,
        level=to.level,
        actor_id=actor_id,
        note=note,
        to=to.person,
    )
    if handed is None:
        return Refused("not_allowed_now", report)
    moved = Moved(report, handed.notices, to=handed.choice)
    moved.notices += await notices.residents(session, report, notices.PASSED, note=note)
    if not any(n.person_id == actor_id for n in handed.notices):
        # Staff passing on someone else's report: their own card says where it went.
        moved.notices.append(notices.card_gone(actor_id, report, "moved_on"))
    return moved


async def resolve(
    session: AsyncSession,
    actor_id: int,
    report_id: int,
    note: str,
    now: datetime,
    *,
    after: store.Photo | None,
) -> Moved | Refused:
    """Fixed: an "after" photo when there is one, the reporter is asked to rate the fix and the
    followers hear the news."""
    made = await _make(session, actor_id, report_id, Action.RESOLVE, now, note)
    if isinstance(made, Refused):
        return made
    report, _ = made
    if after is not None:
        await store.add_media(session, report.id, "after", after, now)
    await tickets.retire_for_subject(session, REPORT_TICKET, report.id, now)
    image = after.media_key if after is not None else None
    moved = Moved(
        report,
        [
            Notice(
                report.reporter_id,
                notices.RATE,
                report.id,
                params={"note": note, "image_key": image},
                actions=notices.RATE_ACTIONS,
            )
        ],
    )
    moved.notices += await notices.residents(
        session, report, notices.RESOLVED, skip=report.reporter_id, note=note
    )
    moved.notices.append(notices.card_gone(actor_id, report, "resolved"))
    return moved
