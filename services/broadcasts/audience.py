"""Who a broadcast reaches: parts of the community (`community`, `grid:ID`, `building:ID`), a
role (`role:building_head`) or the followers of open reports in a category
(`category:repair`), as keys kept on the broadcast; and where: each person's private chat (the
app they wrote from last), and for parts of the community their linked group chats."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Building,
    GroupChat,
    Household,
    Identity,
    Person,
    Report,
    ReportFollower,
    Role,
    RoleAssignment,
)
from services import groups, scopes
from services.reports.lifecycle import OPEN_STATES
from services.scopes import BUILDING, COMMUNITY, GRID, Scope

ROLE, CATEGORY = "role", "category"
# Roles a broadcast may address, as `role:NAME`.
ROLES = (Role.BUILDING_HEAD, Role.GRID_WORKER, Role.STAFF, Role.PROPERTY, Role.DEPARTMENT)


@dataclass(frozen=True)
class Recipient:
    person_id: int
    locale: str | None
    channel: str
    chat_id: str


@dataclass(frozen=True)
class GroupTarget:
    group_id: int
    channel: str
    chat_id: str


async def parse(session: AsyncSession, spelled: str, categories: Iterable[str]) -> str | None:
    """A key from the command line's spelling: `community`, `grid:NAME`, `building:NAME`,
    `role:ROLE` or `category:CODE`; None when it names nothing."""
    kind, _, name = spelled.strip().partition(":")
    kind, name = kind.strip().lower(), name.strip()
    if kind == ROLE:
        return f"{ROLE}:{name}" if name in {r.value for r in ROLES} else None
    if kind == CATEGORY:
        return f"{CATEGORY}:{name}" if name in set(categories) else None
    scope = await scopes.parse(session, spelled)
    return scope.key if scope is not None else None


async def scope_of(session: AsyncSession, key: str) -> Scope | None:
    """The part of the community a key names; None for a role or a category."""
    return None if key.partition(":")[0] in (ROLE, CATEGORY) else await scopes.by_key(session, key)


def _people(key_kind: str, value: str) -> Select[tuple[int]]:
    if key_kind == ROLE:
        return select(RoleAssignment.person_id).where(RoleAssignment.role == value)
    if key_kind == CATEGORY:
        open_states = [s.value for s in OPEN_STATES]
        reporters = select(Report.reporter_id).where(
            Report.category == value, Report.state.in_(open_states)
        )
        followers = (
            select(ReportFollower.person_id)
            .join(Report, Report.id == ReportFollower.report_id)
            .where(Report.category == value, Report.state.in_(open_states))
        )
        return reporters.union(followers)  # type: ignore[return-value]
    residents = (
        select(Person.id)
        .join(Household, Household.id == Person.household_id)
        .join(Building, Building.id == Household.building_id)
        .where(Person.status == "active")
    )
    if key_kind == BUILDING:
        return residents.where(Building.id == int(value))
    if key_kind == GRID:
        return residents.where(Building.grid_id == int(value))
    return residents


def _split(key: str) -> tuple[str, str]:
    kind, _, value = key.partition(":")
    return kind, value


async def recipients(session: AsyncSession, audience: Sequence[str]) -> list[Recipient]:
    """Everyone the keys name, once, each at their best private chat; people we have no
    private chat with (never wrote, or blocked us) are left out, and counted by the caller."""
    return await chats_of(session, await people_in(session, audience))


async def chats_of(session: AsyncSession, wanted: set[int]) -> list[Recipient]:
    """These people at their best private chat: the app they wrote from last first; those
    with none are left out."""
    if not wanted:
        return []
    rows = (
        await session.execute(
            select(
                Person.id,
                Person.locale,
                Person.last_channel,
                Identity.channel,
                Identity.private_chat_id,
                Identity.id,
            )
            .join(Identity, Identity.person_id == Person.id)
            .where(Person.id.in_(sorted(wanted)), Identity.private_chat_id.is_not(None))
            .order_by(Person.id)
        )
    ).all()
    best: dict[int, tuple[tuple[bool, int], Recipient]] = {}
    for person_id, locale, last, channel, chat_id, identity_id in rows:
        rank = (channel != last, identity_id)  # the app they wrote from last first
        if person_id not in best or rank < best[person_id][0]:
            best[person_id] = (rank, Recipient(person_id, locale, channel, chat_id))
    return [recipient for _, recipient in best.values()]


async def people_in(session: AsyncSession, audience: Sequence[str]) -> set[int]:
    """Everyone the keys name, reachable or not (the door-knock list needs those too)."""
    wanted: set[int] = set()
    for key in audience:
        wanted.update(await session.scalars(_people(*_split(key))))
    return wanted


async def group_targets(session: AsyncSession, audience: Sequence[str]) -> list[GroupTarget]:
    """The linked group chats serving the parts of the community named (roles and categories
    have no groups of their own)."""
    ids: set[int] = set()
    for key in audience:
        kind, value = _split(key)
        if kind == COMMUNITY:
            ids.update(await groups.serving(session, COMMUNITY))
        elif kind == GRID:
            ids.update(await groups.serving(session, GRID, grid_id=int(value)))
        elif kind == BUILDING:
            ids.update(await groups.serving(session, BUILDING, building_id=int(value)))
    if not ids:
        return []
    found = await session.execute(
        select(GroupChat.id, GroupChat.channel, GroupChat.chat_id)
        .where(GroupChat.id.in_(sorted(ids)), GroupChat.left_at.is_(None))
        .order_by(GroupChat.id)
    )
    return [GroupTarget(*row) for row in found.all()]


def within_buildings(audience: Sequence[str], buildings: set[int]) -> bool:
    """A building head may address only their own buildings."""
    return all(
        _split(key)[0] == BUILDING and int(_split(key)[1]) in buildings for key in audience
    ) and bool(audience)
