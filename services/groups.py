"""Group chats and the scope each serves (issue 11, "Group chats and their scope")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update
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
    if group.left_at is not None:
        # The bot hears from the group again: it is back in it.
        group.left_at = None
    return group


async def link(
    session: AsyncSession,
    group_id: int,
    scope: Scope,
    now: datetime,
    *,
    by: int | None = None,
) -> bool:
    """Whether the group serves this scope anew (it was unlinked, had left, or served
    another): then it is owed what it missed (services/group_catch_up.py)."""
    before = await session.get(GroupChat, group_id)
    anew = (
        before is None
        or before.left_at is not None
        or before.scope != scope.kind
        or (
            (before.building_id, before.grid_id)
            != (
                scope.id if scope.kind == BUILDING else None,
                scope.id if scope.kind == GRID else None,
            )
        )
    )
    await session.execute(
        update(GroupChat)
        .where(GroupChat.id == group_id)
        .values(
            scope=scope.kind,
            grid_id=scope.id if scope.kind == GRID else None,
            building_id=scope.id if scope.kind == BUILDING else None,
            linked_by=by,
            linked_at=now,
            left_at=None,
        )
    )
    await audit.record(
        session, "group.link", actor_id=by, at=now, group=group_id, scope=scope.spelled
    )
    return anew


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


async def removed(session: AsyncSession, channel: str, chat_id: str, now: datetime) -> None:
    """The bot was removed from the group: it serves nothing, and gets nothing more."""
    await unlink(session, channel, chat_id, now)
    await session.execute(
        update(GroupChat)
        .where(GroupChat.channel == channel, GroupChat.chat_id == chat_id)
        .values(left_at=now)
    )


async def moved(
    session: AsyncSession, channel: str, old_chat_id: str, new_chat_id: str, now: datetime
) -> None:
    """The platform gave the group a new id (Telegram: a group upgraded to a supergroup). Its
    link, and what waits to be sent to it, follow it to the new id; when the bot already knew
    the new chat, that row takes the link, if it had none, and the old one serves nothing.
    Both service messages (in the old chat and the new) land here: the second finds nothing
    left to move."""
    # Locked: the two service messages are handled at once, and the second must find the
    # group moved (no row with the old id any more), not move it again over itself.
    old = await session.scalar(
        select(GroupChat)
        .where(GroupChat.channel == channel, GroupChat.chat_id == old_chat_id)
        .with_for_update()
    )
    if old is None:
        return
    new = await session.scalar(
        select(GroupChat).where(GroupChat.channel == channel, GroupChat.chat_id == new_chat_id)
    )
    if new is None:
        old.chat_id = new_chat_id
    else:
        if new.scope is None and old.scope is not None:
            new.scope, new.building_id, new.grid_id = old.scope, old.building_id, old.grid_id
            new.linked_by, new.linked_at, new.left_at = old.linked_by, old.linked_at, None
        old.scope = old.building_id = old.grid_id = old.linked_by = old.linked_at = None
        old.left_at = now
    await session.flush()
    await audit.record(
        session, "group.moved", at=now, group=old.id, chat=old_chat_id, to=new_chat_id
    )


async def gone(session: AsyncSession, group_id: int, now: datetime) -> None:
    """The platform refused a message to the group for good (Telegram's 403: the bot was
    kicked, or is no longer a member): as if the bot had been removed."""
    group = await session.get(GroupChat, group_id)
    if group is not None and group.left_at is None:
        await removed(session, group.channel, group.chat_id, now)


def _within(kind: str, building_id: int | None, grid_id: int | None) -> ColumnElement[bool]:
    """Groups whose scope lies within this one: their members are (mostly) its people."""
    if kind == COMMUNITY:
        return GroupChat.scope.is_not(None)
    if kind == GRID:
        buildings = select(Building.id).where(Building.grid_id == grid_id)
        return or_(
            and_(GroupChat.scope == GRID, GroupChat.grid_id == grid_id),
            and_(GroupChat.scope == BUILDING, GroupChat.building_id.in_(buildings)),
        )
    return and_(GroupChat.scope == BUILDING, GroupChat.building_id == building_id)


async def serving(
    session: AsyncSession, kind: str, *, building_id: int | None = None, grid_id: int | None = None
) -> list[int]:
    """The linked groups (ids) a poll or an announcement for this scope goes to: those whose
    own scope lies within it. A building's groups for a building; a grid's and its buildings'
    for a grid; every linked group for the community. Not the other way round: a grid's group
    does not get a building's poll, since most of its members could not vote in it."""
    return list(
        (
            await session.scalars(
                select(GroupChat.id)
                .where(_within(kind, building_id, grid_id), GroupChat.left_at.is_(None))
                .order_by(GroupChat.id)
            )
        ).all()
    )


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
