"""Invite codes: created by staff, redeemed by residents, each use counted by the database."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Building, Invite, Role

# No 0/O/1/I/L: codes are read off a notice board and typed by hand.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


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


@dataclass(frozen=True)
class Redeemable:
    invite: Invite
    building: Building


async def check(session: AsyncSession, code: str, now: datetime) -> Redeemable | InviteProblem:
    row = (
        await session.execute(
            select(Invite, Building)
            .join(Building, Building.id == Invite.building_id)
            .where(Invite.code == code.strip().upper())
        )
    ).first()
    if row is None:
        return InviteProblem("unknown")
    invite, building = row
    if invite.expires_at is not None and invite.expires_at <= now:
        return InviteProblem("expired")
    if invite.uses >= invite.max_uses:
        return InviteProblem("used_up")
    return Redeemable(invite, building)


_USE = (
    update(Invite)
    .where(
        Invite.id == bindparam("invite_id"),
        Invite.uses < Invite.max_uses,
        or_(Invite.expires_at.is_(None), Invite.expires_at > bindparam("now")),
    )
    .values(uses=Invite.uses + 1)
    .execution_options(synchronize_session=False)
)


async def use(session: AsyncSession, invite_id: int, now: datetime) -> bool:
    """Count one use; False when the last use went to someone else a moment earlier."""
    result = await session.execute(_USE, {"invite_id": invite_id, "now": now})
    return bool(result.rowcount)  # type: ignore[attr-defined]
