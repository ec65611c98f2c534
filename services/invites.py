"""Invite codes: created by staff, redeemed by residents, each use counted by the database."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Invite, Role

# No 0/O/1/I/L: codes are read off a notice board and typed by hand.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def deep_link(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username}?start={code}"


@dataclass(frozen=True)
class InviteProblem:
    reason: str  # unknown | expired | used_up


async def create(
    session: AsyncSession,
    building_id: int,
    *,
    role: Role = Role.RESIDENT,
    uses: int = 1,
    expires_in: timedelta | None = None,
    now: datetime,
) -> Invite:
    invite = Invite(
        code=new_code(),
        building_id=building_id,
        role=role.value,
        max_uses=uses,
        expires_at=now + expires_in if expires_in else None,
        created_at=now,
    )
    session.add(invite)
    await session.flush()
    return invite


async def check(session: AsyncSession, code: str, now: datetime) -> Invite | InviteProblem:
    invite = await session.scalar(select(Invite).where(Invite.code == code.strip().upper()))
    if invite is None:
        return InviteProblem("unknown")
    if invite.expires_at is not None and invite.expires_at <= now:
        return InviteProblem("expired")
    if invite.uses >= invite.max_uses:
        return InviteProblem("used_up")
    return invite


async def use(session: AsyncSession, invite_id: int, now: datetime) -> bool:
    """Count one use; False when the last use went to someone else a moment earlier."""
    result = await session.execute(
        update(Invite)
        .where(
            Invite.id == invite_id,
            Invite.uses < Invite.max_uses,
            or_(Invite.expires_at.is_(None), Invite.expires_at > now),
        )
        .values(uses=Invite.uses + 1)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
