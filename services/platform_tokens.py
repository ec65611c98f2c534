"""Platform access tokens shared by every process through the database.

WeChat allows one valid access token per account: fetching a new one soon invalidates the
old. So processes must not each fetch their own. One refreshes, with the token's row locked
(`FOR UPDATE` on PostgreSQL; SQLite's write transactions already run one at a time), and
everyone else reads what it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import PlatformToken
from services.sql import insert_ignoring_conflict, is_postgres

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


async def lock(session: AsyncSession, name: str) -> Token:
    """The stored token with its row locked until the transaction ends: the caller is now
    the one refresher. The row is created empty the first time."""
    await insert_ignoring_conflict(
        session,
        PlatformToken.__table__,  # type: ignore[arg-type]
        {"name": name, "value": "", "expires_at": _NEVER, "updated_at": _NEVER},
    )
    query = _READ.where(PlatformToken.name == name)
    if is_postgres(session):
        query = query.with_for_update()
    row = (await session.execute(query)).one()
    return Token(row.value, row.expires_at)


async def store(session: AsyncSession, name: str, token: Token, now: datetime) -> None:
    await session.execute(
        update(PlatformToken)
        .where(PlatformToken.name == name)
        .values(value=token.value, expires_at=token.expires_at, updated_at=now)
    )
