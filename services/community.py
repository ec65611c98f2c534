"""The community's structure, loaded from the configuration and looked up by the flows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Building, Community, Grid, Household

ROOM_PATTERN = re.compile(r"^\s*(\d{3,4})\s*$")


@dataclass(frozen=True)
class GridSpec:
    name: str
    buildings: tuple[str, ...]


@dataclass(frozen=True)
class CommunitySpec:
    name: str
    timezone: str
    grids: tuple[GridSpec, ...]
    floors: int
    homes_per_floor: int

    def rooms(self) -> list[str]:
        return [
            f"{floor}{home:02d}"
            for floor in range(1, self.floors + 1)
            for home in range(1, self.homes_per_floor + 1)
        ]


@dataclass(frozen=True)
class LoadSummary:
    created: int

    @property
    def changed(self) -> bool:
        return self.created > 0


async def load_structure(session: AsyncSession, spec: CommunitySpec) -> LoadSummary:
    """Create what is missing and nothing else, so running `linli init` twice changes nothing.

    Buildings dropped from the configuration are kept: people and history still point at them.
    """
    created = 0
    community = await session.scalar(select(Community).where(Community.name == spec.name))
    if community is None:
        community = Community(name=spec.name, timezone=spec.timezone)
        session.add(community)
        await session.flush()
        created += 1
    elif community.timezone != spec.timezone:
        community.timezone = spec.timezone
        created += 1
    rooms = spec.rooms()
    for grid_spec in spec.grids:
        grid = await session.scalar(
            select(Grid).where(Grid.community_id == community.id, Grid.name == grid_spec.name)
        )
        if grid is None:
            grid = Grid(community_id=community.id, name=grid_spec.name)
            session.add(grid)
            await session.flush()
            created += 1
        for name in grid_spec.buildings:
            building = await session.scalar(
                select(Building).where(Building.community_id == community.id, Building.name == name)
            )
            if building is None:
                building = Building(community_id=community.id, grid_id=grid.id, name=name)
                session.add(building)
                await session.flush()
                created += 1
            elif building.grid_id != grid.id:
                building.grid_id = grid.id
                created += 1
            existing = set(
                (
                    await session.scalars(
                        select(Household.room).where(Household.building_id == building.id)
                    )
                ).all()
            )
            for room in rooms:
                if room not in existing:
                    session.add(Household(building_id=building.id, room=room))
                    created += 1
    await session.flush()
    return LoadSummary(created=created)


async def building_by_name(session: AsyncSession, name: str) -> Building | None:
    return await session.scalar(select(Building).where(Building.name == name))


async def grid_by_name(session: AsyncSession, name: str) -> Grid | None:
    return await session.scalar(select(Grid).where(Grid.name == name))


async def buildings(session: AsyncSession) -> list[Building]:
    return list((await session.scalars(select(Building).order_by(Building.id))).all())


def normalise_room(text: str) -> str | None:
    """Residents type "302", " 302 " or "302室"; keep the digits when that is all there is."""
    cleaned = text.strip().removesuffix("室").removesuffix("号").strip()
    match = ROOM_PATTERN.match(cleaned)
    return match.group(1) if match else None


async def household(session: AsyncSession, building_id: int, room: str) -> Household | None:
    return await session.scalar(
        select(Household).where(Household.building_id == building_id, Household.room == room)
    )


async def room_range(session: AsyncSession, building_id: int) -> tuple[str, str] | None:
    rooms = (
        await session.scalars(select(Household.room).where(Household.building_id == building_id))
    ).all()
    if not rooms:
        return None
    ordered = sorted(rooms, key=lambda r: (len(r), r))
    return ordered[0], ordered[-1]


async def building_of_household(session: AsyncSession, household_id: int | None) -> Building | None:
    """The building a home is in (a resident's own building, offered as a report's place)."""
    if household_id is None:
        return None
    return await session.scalar(
        select(Building)
        .join(Household, Household.building_id == Building.id)
        .where(Household.id == household_id)
    )
