"""The time bank (时间银行): neighbours help neighbours, and the time is paid in minutes.

A resident asks for help with an estimate; a volunteer takes the request; the requester
confirms the real time, and that many minutes move from the requester to the volunteer in the
ledger (services/points/ledger.py), so minutes given are minutes one can later ask for. An
elderly resident whom staff marked has what their own minutes cannot pay covered by the
time-bank pool, up to a monthly cap per person. Every change of a request's state is one
conditional UPDATE on its row, so two volunteers pressing at once, or a confirmation and a
cancellation, cannot both win; the pool's cap is taken the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import TimebankCoverage, TimebankElder, TimebankRequest
from services import audit, sql
from services.points import awards, ledger
from services.points.ledger import MINUTES, TIMEBANK_POOL, Posting

_COVERAGE: Table = TimebankCoverage.__table__  # type: ignore[assignment]
OPEN, ACCEPTED, DONE, CANCELLED = "open", "accepted", "done", "cancelled"
HELP_REASON = "timebank.help"
# The volunteer also earns points, per hour given, under this rule of `[points.rules]`.
VOLUNTEER_RULE = "volunteer_hour"
MAX_WHAT = 200
MAX_MINUTES = 12 * 60  # one request: at most a long day's help


@dataclass(frozen=True)
class Policy:
    """The configuration's part: the pool's monthly cover per elderly resident (minutes), the
    points a volunteer earns per hour, and the community's timezone (months are local)."""

    elder_monthly_minutes: int
    volunteer_hour_points: int
    timezone: str

    def month_of(self, moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m")


class Refusal(enum.Enum):
    GONE = "gone"  # no such request, or no longer in the state the action needs
    OWN = "own"  # a volunteer for their own request
    TOO_FEW_MINUTES = "too_few_minutes"
    OVERDRAWN = "overdrawn"  # the requester's minutes moved meanwhile: try again


@dataclass(frozen=True)
class Means:
    """What a person can pay help with now: their own minutes and the pool's cover left to them
    this month (0 unless marked elderly)."""

    own: int
    cover: int
    elder: bool

    @property
    def total(self) -> int:
        return self.own + self.cover


async def is_elder(session: AsyncSession, person_id: int) -> bool:
    return await session.get(TimebankElder, person_id) is not None


async def mark_elder(
    session: AsyncSession, person_id: int, elder: bool, now: datetime, *, actor_id: int | None
) -> bool:
    """Staff mark (or unmark) a resident whom the pool covers; audited. True when it changed."""
    found = await session.get(TimebankElder, person_id)
    if elder == (found is not None):
        return False
    if elder:
        session.add(TimebankElder(person_id=person_id, marked_by=actor_id, marked_at=now))
    else:
        await session.execute(delete(TimebankElder).where(TimebankElder.person_id == person_id))
    await session.flush()
    await audit.staff_action(
        session,
        "timebank.elder" if elder else "timebank.elder_removed",
        actor_id,
        now,
        person=person_id,
    )
    return True


async def means(session: AsyncSession, person_id: int, now: datetime, policy: Policy) -> Means:
    own = await ledger.balance(session, person_id, MINUTES)
    if not await is_elder(session, person_id):
        return Means(own, 0, False)
    used = await session.scalar(
        select(TimebankCoverage.minutes).where(
            TimebankCoverage.person_id == person_id,
            TimebankCoverage.month == policy.month_of(now),
        )
    )
    return Means(own, max(0, policy.elder_monthly_minutes - int(used or 0)), True)


async def post(
    session: AsyncSession,
    requester_id: int,
    what: str,
    estimate: int,
    now: datetime,
    policy: Policy,
) -> TimebankRequest | Refusal:
    """A request for help, if the requester could pay its estimate (their minutes, and the
    pool's cover for an elderly resident)."""
    what = " ".join(what.split())
    if not what or len(what) > MAX_WHAT or not 0 < estimate <= MAX_MINUTES:
        raise ValueError("a request says what, in 1 to 200 characters, and an estimate")
    if (await means(session, requester_id, now, policy)).total < estimate:
        return Refusal.TOO_FEW_MINUTES
    request = TimebankRequest(
        requester_id=requester_id,
        what=what,
        estimate_minutes=estimate,
        status=OPEN,
        created_at=now,
    )
    session.add(request)
    await session.flush()
    return request


async def open_requests(
    session: AsyncSession, *, leave_out: int, limit: int = 10
) -> list[TimebankRequest]:
    """Requests waiting for a volunteer, oldest first (they have waited longest), not the
    person's own."""
    return list(
        (
            await session.scalars(
                select(TimebankRequest)
                .where(TimebankRequest.status == OPEN, TimebankRequest.requester_id != leave_out)
                .order_by(TimebankRequest.id)
                .limit(limit)
            )
        ).all()
    )


async def count_open(session: AsyncSession, *, leave_out: int) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(TimebankRequest)
            .where(TimebankRequest.status == OPEN, TimebankRequest.requester_id != leave_out)
        )
        or 0
    )


async def involving(session: AsyncSession, person_id: int) -> list[TimebankRequest]:
    """The person's requests still going (as requester) and those they are helping with."""
    return list(
        (
            await session.scalars(
                select(TimebankRequest)
                .where(
                    TimebankRequest.status.in_((OPEN, ACCEPTED)),
                    or_(
                        TimebankRequest.requester_id == person_id,
                        TimebankRequest.volunteer_id == person_id,
                    ),
                )
                .order_by(TimebankRequest.id)
            )
        ).all()
    )


async def _move(
    session: AsyncSession, request_id: int, *conditions: object, **values: object
) -> TimebankRequest | None:
    """The one way a request changes state: a conditional UPDATE; None when it did not hold
    (another press, another person, got there first)."""
    return await session.scalar(
        update(TimebankRequest)
        .where(TimebankRequest.id == request_id, *conditions)  # type: ignore[arg-type]
        .values(**values)
        .returning(TimebankRequest)
        .execution_options(populate_existing=True)
    )


async def accept(
    session: AsyncSession, request_id: int, volunteer_id: int, now: datetime
) -> TimebankRequest | Refusal:
    request = await session.get(TimebankRequest, request_id)
    if request is not None and request.requester_id == volunteer_id:
        return Refusal.OWN
    taken = await _move(
        session,
        request_id,
        TimebankRequest.status == OPEN,
        TimebankRequest.requester_id != volunteer_id,
        status=ACCEPTED,
        volunteer_id=volunteer_id,
        accepted_at=now,
    )
    return taken if taken is not None else Refusal.GONE


async def withdraw(
    session: AsyncSession, request_id: int, volunteer_id: int
) -> TimebankRequest | None:
    """The volunteer cannot come after all: the request is open again for someone else."""
    return await _move(
        session,
        request_id,
        TimebankRequest.status == ACCEPTED,
        TimebankRequest.volunteer_id == volunteer_id,
        status=OPEN,
        volunteer_id=None,
        accepted_at=None,
    )


async def cancel(
    session: AsyncSession, request_id: int, requester_id: int, now: datetime
) -> tuple[TimebankRequest, int | None] | None:
    """The requester needs the help no more: the request and the volunteer it had, if any."""
    before = await session.get(TimebankRequest, request_id)
    volunteer = before.volunteer_id if before is not None else None
    done = await _move(
        session,
        request_id,
        TimebankRequest.status.in_((OPEN, ACCEPTED)),
        TimebankRequest.requester_id == requester_id,
        status=CANCELLED,
        done_at=now,
    )
    return None if done is None else (done, volunteer)


@dataclass(frozen=True)
class Completed:
    request: TimebankRequest  # done, with what paid it
    points: int  # points the volunteer earned for the time given

    @property
    def own(self) -> int:
        """Minutes the requester's own account paid."""
        return self.request.own_minutes or 0

    @property
    def pool(self) -> int:
        """Minutes the pool covered (an elderly resident's)."""
        return self.request.pool_minutes or 0

    @property
    def paid(self) -> int:
        """Minutes the volunteer received."""
        return self.own + self.pool


async def complete(
    session: AsyncSession,
    request_id: int,
    requester_id: int,
    minutes: int,
    now: datetime,
    policy: Policy,
) -> Completed | Refusal:
    """The requester confirms the help was given and how long it took: the request is done (once:
    a conditional update), and the minutes move to the volunteer, from the requester's own and,
    for an elderly resident, from the pool's cover; the volunteer's points for the time follow.
    The requester may pay less than the real time only when both run short: the volunteer is
    then paid what there is."""
    if not 0 < minutes <= MAX_MINUTES:
        raise ValueError("the help took 1 minute to 12 hours")
    before = await session.get(TimebankRequest, request_id)
    if before is None or before.requester_id != requester_id or before.status != ACCEPTED:
        return Refusal.GONE
    volunteer_id = before.volunteer_id
    assert volunteer_id is not None
    try:
        async with session.begin_nested():
            done = await _move(
                session,
                request_id,
                TimebankRequest.status == ACCEPTED,
                TimebankRequest.requester_id == requester_id,
                TimebankRequest.volunteer_id == volunteer_id,
                status=DONE,
                done_at=now,
                minutes=minutes,
            )
            if done is None:
                return Refusal.GONE
            own = min(minutes, await ledger.balance(session, requester_id, MINUTES))
            pool = 0
            if own < minutes and await is_elder(session, requester_id):
                pool = await _cover(session, requester_id, minutes - own, now, policy)
            transfer_id = None
            if own + pool:
                transfer_id = (await _pay(session, done, own, pool, volunteer_id, now)).id
            done.own_minutes, done.pool_minutes, done.transfer_id = own, pool, transfer_id
            await session.flush()
    except ledger.Overdrawn:
        return Refusal.OVERDRAWN
    points = policy.volunteer_hour_points * minutes // 60
    await awards.award(
        session, volunteer_id, VOLUNTEER_RULE, points, f"timebank:{request_id}:volunteer", now
    )
    return Completed(done, points)


async def _pay(
    session: AsyncSession,
    request: TimebankRequest,
    own: int,
    pool: int,
    volunteer_id: int,
    now: datetime,
) -> ledger.Transfer:
    postings = [Posting(await ledger.account_of(session, volunteer_id, MINUTES, now), own + pool)]
    if own:
        requester = await ledger.account_of(session, request.requester_id, MINUTES, now)
        postings.append(Posting(requester, -own))
    if pool:
        postings.append(Posting(await ledger.system(session, TIMEBANK_POOL, MINUTES), -pool))
    return await ledger.transfer(
        session,
        f"timebank:{request.id}",
        HELP_REASON,
        postings,
        now,
        reference=f"timebank:{request.id}",
        note=request.what,
    )


async def _cover(
    session: AsyncSession, person_id: int, wanted: int, now: datetime, policy: Policy
) -> int:
    """Up to `wanted` minutes of the pool's cover for this person this month. The month's row
    is read locked (FOR UPDATE; SQLite has one writer at a time) and changed only if it still
    holds what was read, so two confirmations at once take in turn and together never pass the
    cap. What was taken (0 when the month's cover is used up)."""
    month = policy.month_of(now)
    cap = policy.elder_monthly_minutes
    if cap <= 0:
        return 0
    await sql.insert_ignoring_conflict(
        session, _COVERAGE, {"person_id": person_id, "month": month, "minutes": 0}
    )
    mine = (TimebankCoverage.person_id == person_id, TimebankCoverage.month == month)
    used = int(
        await session.scalar(select(TimebankCoverage.minutes).where(*mine).with_for_update()) or 0
    )
    take = max(0, min(wanted, cap - used))
    if not take:
        return 0
    changed = await session.scalar(
        update(TimebankCoverage)
        .where(*mine, TimebankCoverage.minutes == used)
        .values(minutes=used + take)
        .returning(TimebankCoverage.minutes)
    )
    return take if changed is not None else 0
