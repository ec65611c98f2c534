"""Proxy votes: an elderly resident without a phone asks someone (their building head) to vote
for them. Staff record the grant, for one poll or for a month; it can be revoked; both are
audited, and both the resident and the proxy are told. A ballot cast by proxy is marked so, and
counts once for its unit like any other.

Who may record or end a grant: staff (in chat, `by` is the staff member), or the operator at the
command line (`by` None). A refusal is a `ProxyProblem` with a reason code."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Household, Person, Poll, ProxyGrant
from services import audit, people
from services.notices import Notice, to
from services.voting import polls

# The notices of a grant and of its end, to the resident and to the proxy (each reads its own:
# handlers/proxy_grants.py), about the grant (subject_id).
GRANTED, REVOKED = "proxy.granted", "proxy.revoked"

# Reason codes of a ProxyProblem:
NOT_STAFF = "not_staff"  # only staff record or end proxies (the command line is the operator)
OWN_PROXY = "own_proxy"  # a resident can't be their own proxy
WHICH_VOTE = "which_vote"  # neither or both of a poll and a month
BAD_MONTH = "bad_month"  # not a month like 2026-12
NO_POLL = "no_poll"  # no such poll
POLL_CLOSED = "poll_closed"  # the poll is closed
NOT_ELIGIBLE = "not_eligible"  # the resident can't vote in that poll
NO_PERSON = "no_person"  # no such resident or proxy
ALREADY = "already"  # the same grant is live already


class ProxyProblem(Exception):
    def __init__(self, message: str, reason: str = WHICH_VOTE) -> None:
        super().__init__(message)
        self.reason = reason


async def may_manage(session: AsyncSession, by: int | None) -> bool:
    """May `by` record or end proxies? Staff may; None is the operator (the command line)."""
    return by is None or (await people.roles_of(session, by)).is_staff


async def _refuse(
    session: AsyncSession, action: str, by: int | None, now: datetime, problem: ProxyProblem
) -> ProxyProblem:
    """A refusal in chat is audited (the caller's transaction goes on); the operator's just
    stops the command."""
    if by is not None:
        await audit.record(
            session, action, actor_id=by, at=now, outcome="refused", reason=problem.reason
        )
    return problem


async def grant(
    session: AsyncSession,
    resident_id: int,
    proxy_id: int,
    now: datetime,
    *,
    poll_id: int | None = None,
    month: str | None = None,
    by: int | None = None,
) -> ProxyGrant:
    problem = await _grant_problem(session, resident_id, proxy_id, now, poll_id, month, by)
    if problem is not None:
        raise await _refuse(session, "proxy.grant", by, now, problem)
    made = ProxyGrant(
        resident_id=resident_id, proxy_id=proxy_id, poll_id=poll_id, month=month, granted_at=now
    )
    session.add(made)
    await session.flush()
    await audit.record(
        session,
        "proxy.grant",
        actor_id=by,
        at=now,
        grant=made.id,
        resident=resident_id,
        proxy=proxy_id,
        poll=poll_id,
        month=month,
    )
    return made


async def _grant_problem(
    session: AsyncSession,
    resident_id: int,
    proxy_id: int,
    now: datetime,
    poll_id: int | None,
    month: str | None,
    by: int | None,
) -> ProxyProblem | None:
    if not await may_manage(session, by):
        return ProxyProblem("only staff record proxies", NOT_STAFF)
    if resident_id == proxy_id:
        return ProxyProblem("a resident can't be their own proxy", OWN_PROXY)
    if (poll_id is None) == (month is None):
        return ProxyProblem("a proxy is for one poll (--poll) or one month (--month)", WHICH_VOTE)
    if month is not None and not _is_month(month):
        return ProxyProblem(f"--month {month!r} is not a month like 2026-12", BAD_MONTH)
    if (
        await session.get(Person, resident_id) is None
        or await session.get(Person, proxy_id) is None
    ):
        return ProxyProblem("no such person", NO_PERSON)
    if poll_id is not None:
        poll = await session.get(Poll, poll_id)
        if poll is None:
            return ProxyProblem(f"no poll {poll_id}", NO_POLL)
        if poll.status != "open" or poll.deadline <= now:
            return ProxyProblem(f"poll {poll_id} is closed", POLL_CLOSED)
        eligible = await session.execute(
            polls.eligible_people(poll).where(Person.id == resident_id)
        )
        if eligible.first() is None:
            return ProxyProblem(f"person {resident_id} can't vote in poll {poll_id}", NOT_ELIGIBLE)
    same = await session.scalar(
        select(ProxyGrant.id).where(
            ProxyGrant.resident_id == resident_id,
            ProxyGrant.proxy_id == proxy_id,
            ProxyGrant.revoked_at.is_(None),
            ProxyGrant.poll_id == poll_id if poll_id is not None else ProxyGrant.month == month,
        )
    )
    if same is not None:
        return ProxyProblem("that proxy is already recorded", ALREADY)
    return None


async def revoke(
    session: AsyncSession,
    resident_id: int,
    proxy_id: int,
    now: datetime,
    *,
    by: int | None = None,
    grant_id: int | None = None,
) -> int:
    """Every live grant from the resident to the proxy (or only `grant_id`, one of them) ends
    now; how many there were."""
    if not await may_manage(session, by):
        raise await _refuse(
            session, "proxy.revoke", by, now, ProxyProblem("only staff end proxies", NOT_STAFF)
        )
    query = update(ProxyGrant).where(
        ProxyGrant.resident_id == resident_id,
        ProxyGrant.proxy_id == proxy_id,
        ProxyGrant.revoked_at.is_(None),
    )
    if grant_id is not None:
        query = query.where(ProxyGrant.id == grant_id)
    result = await session.execute(query.values(revoked_at=now))
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    await audit.record(
        session,
        "proxy.revoke",
        actor_id=by,
        at=now,
        resident=resident_id,
        proxy=proxy_id,
        grant=grant_id,
        ended=count,
    )
    return count


async def live(
    session: AsyncSession, *, resident_id: int | None = None, proxy_id: int | None = None
) -> list[ProxyGrant]:
    """Grants not revoked (those of a resident, or a proxy), the newest first. A grant for a
    poll that has closed, or a month that is over, has nothing left to vote in but is listed
    until it is revoked."""
    query = select(ProxyGrant).where(ProxyGrant.revoked_at.is_(None))
    if resident_id is not None:
        query = query.where(ProxyGrant.resident_id == resident_id)
    if proxy_id is not None:
        query = query.where(ProxyGrant.proxy_id == proxy_id)
    return list((await session.scalars(query.order_by(ProxyGrant.id.desc()))).all())


def told(made: ProxyGrant, kind: str) -> list[Notice]:
    """The resident and the proxy hear of a grant (GRANTED) or of its end (REVOKED)."""
    return to([made.resident_id, made.proxy_id], kind, subject_id=made.id)


async def residents_for(
    session: AsyncSession, proxy_id: int, poll: Poll, timezone: str
) -> list[int]:
    """Whom `proxy_id` may vote for in this poll: grants for it, or for its deadline's month."""
    month = poll.deadline.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")
    rows = await session.scalars(
        select(ProxyGrant.resident_id)
        .where(
            ProxyGrant.proxy_id == proxy_id,
            ProxyGrant.revoked_at.is_(None),
            or_(ProxyGrant.poll_id == poll.id, ProxyGrant.month == month),
        )
        .distinct()
    )
    return list(rows.all())


def _is_month(text: str) -> bool:
    year, dash, month = text.partition("-")
    return (
        bool(dash)
        and year.isdigit()
        and len(year) == 4
        and month.isdigit()
        and len(month) == 2
        and 1 <= int(month) <= 12
    )


async def residents_in(session: AsyncSession, building_id: int) -> list[tuple[Person, str]]:
    """The registered residents of a building with their rooms, by room then name: whom staff
    choose from (someone who asked for a proxy, or a neighbour who votes for them)."""
    rows = (
        await session.execute(
            select(Person, Household.room)
            .join(Household, Household.id == Person.household_id)
            .where(Household.building_id == building_id, Person.status == "active")
        )
    ).all()
    found = [(person, room) for person, room in rows]
    found.sort(key=lambda pair: (len(pair[1]), pair[1], pair[0].display_name, pair[0].id))
    return found


async def open_polls_for(session: AsyncSession, resident_id: int, now: datetime) -> list[Poll]:
    """The open polls (a month's agenda ballot included) this resident may vote in."""
    open_polls = await session.scalars(
        select(Poll).where(Poll.status == "open", Poll.deadline > now).order_by(Poll.id)
    )
    return [
        poll
        for poll in open_polls.all()
        if (
            await session.execute(polls.eligible_people(poll).where(Person.id == resident_id))
        ).first()
        is not None
    ]
