"""The cycle's phases: opening a month, opening its vote, publishing it. `advance` is the one use
case: `linli agenda advance` calls it at once, the tick when a phase is due (DESIGN.md "Time")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import AgendaCycle, AgendaItem
from services import audit
from services.agenda import items, notices, publication
from services.agenda.rules import NONE, PROPOSALS, PUBLISHED, VOTING, AgendaRules, next_month
from services.notices import GroupNotice, Notice
from services.scopes import COMMUNITY, Scope
from services.sql import is_postgres
from services.voting import polls

# Non-voters are reminded this long before the vote closes.
REMIND_BEFORE = timedelta(hours=24)
# Options are bits of a ballot's 64-bit mask (services/voting/ballots.py).
MAX_BALLOT_ITEMS = 60


@dataclass(frozen=True)
class Moved:
    cycle: AgendaCycle
    phase: str
    notices: list[Notice | GroupNotice] = field(default_factory=list)
    # At publication: the items in their order, for the results card.
    results: publication.Published | None = None


async def current(session: AsyncSession) -> AgendaCycle | None:
    """The latest month's cycle (a month opened early by an operator counts)."""
    return await session.scalar(select(AgendaCycle).order_by(AgendaCycle.month.desc()).limit(1))


async def _locked(session: AsyncSession, cycle_id: int) -> AgendaCycle:
    query = (
        select(AgendaCycle)
        .where(AgendaCycle.id == cycle_id)
        .execution_options(populate_existing=True)
    )
    if is_postgres(session):
        query = query.with_for_update()
    cycle = await session.scalar(query)
    assert cycle is not None
    return cycle


async def advance(
    session: AsyncSession,
    rules: AgendaRules,
    now: datetime,
    key: bytes,
    *,
    expected: str | None = None,
    actor_id: int | None = None,
    actor_label: str = "",
) -> Moved | None:
    """Move the current cycle to its next phase: proposals → voting → published, then the next
    month's proposals. `expected`: the phase the caller saw (the tick; NONE: no cycle yet);
    the result is None when another process moved it meanwhile, so a double fire changes
    nothing."""
    cycle = await current(session)
    if cycle is not None:
        cycle = await _locked(session, cycle.id)
    seen = cycle.phase if cycle is not None else NONE
    if expected is not None and seen != expected:
        return None
    if cycle is None or cycle.phase == PUBLISHED:
        month = rules.month_of(now)
        if cycle is not None and cycle.month >= month:
            month = next_month(cycle.month)
        moved = await open_month(session, rules, month, now)
    elif cycle.phase == PROPOSALS:
        moved = await open_voting(session, cycle, now)
    else:
        published = await publication.publish(session, cycle, now, rules.selected_points, key)
        moved = Moved(cycle, PUBLISHED, published.notices, published)
    await audit.record(
        session,
        "agenda.advance",
        actor_id=actor_id,
        actor_label=actor_label,
        at=now,
        cycle=moved.cycle.id,
        month=moved.cycle.month,
        phase=moved.phase,
    )
    return moved


async def open_month(session: AsyncSession, rules: AgendaRules, month: str, now: datetime) -> Moved:
    calendar = rules.calendar(month)
    cycle = AgendaCycle(
        month=month,
        phase=PROPOSALS,
        opened_at=now,
        proposals_close_at=calendar.proposals_close_at,
        voting_at=calendar.voting_at,
        publish_at=calendar.publish_at,
        votes_per_voter=rules.votes_per_voter,
        council_items=rules.council_items,
        per_household=rules.per_household,
    )
    session.add(cycle)
    await session.flush()
    # Proposals nobody moderated before the last vote opened are this month's.
    await session.execute(
        update(AgendaItem)
        .where(AgendaItem.status == "pending", AgendaItem.cycle_id != cycle.id)
        .values(cycle_id=cycle.id)
    )
    return Moved(cycle, PROPOSALS)


async def open_voting(session: AsyncSession, cycle: AgendaCycle, now: datetime) -> Moved:
    """The ballot: a community poll of the voting service, one option per accepted item (the
    most supported first when there are more than a ballot holds), anonymous, up to K."""
    on_ballot = await ballot_items(session, cycle.id)
    cycle.phase, cycle.voting_opened_at = VOTING, now
    if on_ballot:
        deadline = max(cycle.publish_at, now + timedelta(minutes=1))
        poll = await polls.open_poll(
            session,
            Scope(COMMUNITY),
            f"议事厅 Agenda {cycle.month}",
            [f"#{item.id} {item.title}" for item in on_ballot],
            deadline=deadline,
            now=now,
            max_choices=min(cycle.votes_per_voter, len(on_ballot)),
            anonymous=True,
            per_household=cycle.per_household,
            purpose="agenda",
        )
        cycle.poll_id = poll.id
        for number, item in enumerate(on_ballot):
            item.option = number
        return Moved(cycle, VOTING, await notices.voting_opened(session, poll))
    return Moved(cycle, VOTING)


async def ballot_items(session: AsyncSession, cycle_id: int) -> list[AgendaItem]:
    ranked = await items.with_support(session, cycle_id, ("accepted",))
    chosen = sorted(ranked[:MAX_BALLOT_ITEMS], key=lambda pair: pair[0].id)
    return [item for item, _ in chosen]


@dataclass(frozen=True)
class Due:
    phase: str  # what the tick expects to find (NONE: no cycle yet)


async def due(session: AsyncSession, rules: AgendaRules, now: datetime) -> Due | None:
    """The phase change that is due now, if any. A month opens by itself only while its proposal
    window runs: a bot started (or back) after it waits for the next month rather than hold a
    vote on nothing; `linli agenda advance` still opens it."""
    cycle = await current(session)
    if cycle is None or cycle.phase == PUBLISHED:
        month = rules.month_of(now)
        calendar = rules.calendar(month)
        if (cycle is None or cycle.month < month) and calendar.opens_at <= now < calendar.voting_at:
            return Due(cycle.phase if cycle else NONE)
        return None
    if cycle.phase == PROPOSALS and now >= cycle.voting_at:
        return Due(PROPOSALS)
    if cycle.phase == VOTING and now >= cycle.publish_at:
        return Due(VOTING)
    return None


async def due_reminder(session: AsyncSession, now: datetime) -> AgendaCycle | None:
    cycle = await current(session)
    if (
        cycle is not None
        and cycle.phase == VOTING
        and cycle.poll_id is not None
        and cycle.reminded_at is None
        and cycle.publish_at - REMIND_BEFORE <= now < cycle.publish_at
    ):
        return cycle
    return None
