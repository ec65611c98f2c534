"""Platform access tokens shared by every process through the database.

WeChat allows one valid access token per account: fetching a new one soon invalidates the
old. So processes must not each fetch their own. One of them refreshes, holding a short lease
on the token's row (taken by a conditional UPDATE, so two can't both take it); the others wait
for what it writes. No lock is held across the network call: on SQLite a write transaction
open during a fetch would stop every other writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import PlatformToken
from services.sql import insert_ignoring_conflict

_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime

    def usable(self, now: datetime, *, not_this: str | None = None) -> bool:
        """Valid now, and not the one a platform has just refused."""
        return bool(self.value) and self.expires_at > now and self.value != not_this


_READ = select(PlatformToken.value, PlatformToken.expires_at)


async def read(session: AsyncSession, name: str) -> Token | None:
    row = (await session.execute(_READ.where(PlatformToken.name == name))).first()
    return Token(row.value, row.expires_at) if row else None


async def lease(
    session: AsyncSession,
    name: str,
    now: datetime,
    lasting: timedelta,
    *,
    refused: str | None = None,
) -> bool:
    """Become the one refresher for `lasting`, if the stored token needs a refresh (missing,
    due, or the one just refused) and nobody else holds the lease. True: fetch and `store`."""
    await insert_ignoring_conflict(
        session,
        PlatformToken.__table__,  # type: ignore[arg-type]
        {
            "name": name,
            "value": "",
            "expires_at": _NEVER,
            "updated_at": _NEVER,
            "refreshing_until": _NEVER,
        },
    )
    t = PlatformToken
    needs_refresh = or_(t.value == "", t.expires_at <= now)
    if refused is not None:
        needs_refresh = or_(needs_refresh, t.value == refused)
    taken = await session.execute(
        update(t)
        .where(t.name == name, needs_refresh, t.refreshing_until <= now)
        .values(refreshing_until=now + lasting)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


async def store(session: AsyncSession, name: str, token: Token, now: datetime) -> None:
    """The new token, and the lease given back."""
    await session.execute(
        update(PlatformToken)
        .where(PlatformToken.name == name)
        .values(
            value=token.value,
            expires_at=token.expires_at,
            updated_at=now,
            refreshing_until=_NEVER,
        )
    )


async def give_up(session: AsyncSession, name: str) -> None:
    """The fetch failed: someone else may try at once."""
    await session.execute(
        update(PlatformToken).where(PlatformToken.name == name).values(refreshing_until=_NEVER)
    )
