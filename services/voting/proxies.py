"""Proxy votes: an elderly resident without a phone asks someone (their building head) to vote
for them. Staff record the grant, for one poll or for a month; it can be revoked; both are
audited. A ballot cast by proxy is marked so, and counts once for its unit like any other."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Poll, ProxyGrant
from services import audit


class ProxyProblem(Exception):
    pass


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
    if resident_id == proxy_id:
        raise ProxyProblem("a resident can't be their own proxy")
    if (poll_id is None) == (month is None):
        raise ProxyProblem("a proxy is for one poll (--poll) or one month (--month)")
    if month is not None and not _is_month(month):
        raise ProxyProblem(f"--month {month!r} is not a month like 2026-12")
    if poll_id is not None and await session.get(Poll, poll_id) is None:
        raise ProxyProblem(f"no poll {poll_id}")
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
        resident=resident_id,
        proxy=proxy_id,
        poll=poll_id,
        month=month,
    )
    return made


async def revoke(
    session: AsyncSession,
    resident_id: int,
    proxy_id: int,
    now: datetime,
    *,
    by: int | None = None,
) -> int:
    """Every live grant from the resident to the proxy ends now; how many there were."""
    result = await session.execute(
        update(ProxyGrant)
        .where(
            ProxyGrant.resident_id == resident_id,
            ProxyGrant.proxy_id == proxy_id,
            ProxyGrant.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    await audit.record(
        session, "proxy.revoke", actor_id=by, at=now, resident=resident_id, proxy=proxy_id
    )
    return count


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
        and 1 <= int(month) <= 12
    )
