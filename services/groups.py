"""Group chats and the scope each serves (issue 11, "Group chats and their scope")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Building, Grid, GroupChat
from services import audit
from services.scopes import BUILDING, COMMUNITY, GRID, Scope
from services.sql import insert_ignoring_conflict


@dataclass(frozen=True)
class Group:
    id: int
    channel: str
    chat_id: str
    title: str
    scope: Scope | None


async def seen(
    session: AsyncSession, channel: str, chat_id: str, title: str, now: datetime
) -> GroupChat:
    """The group's row, made the first time the bot hears of it (by whichever worker comes
    first); its title kept current."""
    await insert_ignoring_conflict(
        session,
        GroupChat.__table__,  # type: ignore[arg-type]
        {"channel": channel, "chat_id": chat_id, "title": title[:255], "seen_at": now},
    )
    group = await session.scalar(
        select(GroupChat).where(GroupChat.channel == channel, GroupChat.chat_id == chat_id)
    )
    assert group is not None
    if title and group.title != title[:255]:
        group.title = title[:255]
    return group


async def link(
    session: AsyncSession,
    group_id: int,
    scope: Scope,
    now: datetime,
    *,
    by: int | None = None,
) -> None:
    await session.execute(
        update(GroupChat)
        .where(GroupChat.id == group_id)
        .values(
            scope=scope.kind,
            grid_id=scope.id if scope.kind == GRID else None,
            building_id=scope.id if scope.kind == BUILDING else None,
            linked_by=by,
            linked_at=now,
        )
    )
    await audit.record(
        session, "group.link", actor_id=by, at=now, group=group_id, scope=scope.spelled
    )


async def unlink(
    session: AsyncSession, channel: str, chat_id: str, now: datetime, *, by: int | None = None
) -> bool:
    """True when the group served a scope and now serves none."""
    result = await session.execute(
        update(GroupChat)
        .where(
            GroupChat.channel == channel,
            GroupChat.chat_id == chat_id,
            GroupChat.scope.is_not(None),
        )
        .values(scope=None, grid_id=None, building_id=None, linked_by=None, linked_at=None)
    )
    done = bool(result.rowcount)  # type: ignore[attr-defined]
    if done:
        await audit.record(
            session, "group.unlink", actor_id=by, at=now, channel=channel, chat=chat_id
        )
    return done


async def find(session: AsyncSession, channel: str, chat_id: str) -> Group | None:
    groups = await _groups(session, GroupChat.channel == channel, GroupChat.chat_id == chat_id)
    return groups[0] if groups else None


async def find_chat(session: AsyncSession, chat_id: str) -> Group | None:
    """By chat id alone, as an operator names a group (group chats are Telegram's)."""
    groups = await _groups(session, GroupChat.chat_id == chat_id)
    return groups[0] if groups else None


async def by_id(session: AsyncSession, group_id: int) -> Group | None:
    groups = await _groups(session, GroupChat.id == group_id)
    return groups[0] if groups else None


async def listing(session: AsyncSession) -> list[Group]:
    return await _groups(session)


async def _groups(session: AsyncSession, *where: object) -> list[Group]:
    rows = (
        await session.execute(
            select(GroupChat, Grid.name, Building.name)
            .outerjoin(Grid, Grid.id == GroupChat.grid_id)
            .outerjoin(Building, Building.id == GroupChat.building_id)
            .where(*where)  # type: ignore[arg-type]
            .order_by(GroupChat.id)
        )
    ).all()
    out = []
    for group, grid_name, building_name in rows:
        scope = None
        if group.scope == COMMUNITY:
            scope = Scope(COMMUNITY)
        elif group.scope == GRID and group.grid_id is not None:
            scope = Scope(GRID, group.grid_id, grid_name or "")
        elif group.scope == BUILDING and group.building_id is not None:
            scope = Scope(BUILDING, group.building_id, building_name or "")
        out.append(Group(group.id, group.channel, group.chat_id, group.title, scope))
    return out
