"""Parts of the community that a group chat, a poll or a broadcast is for: the whole
community, a grid or a building. Written `community`, `grid:NAME` or `building:NAME` on the
command line (DESIGN.md "The public interface")."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Building, Grid
from services.people import RoleSet

COMMUNITY, GRID, BUILDING = "community", "grid", "building"


@dataclass(frozen=True)
class Scope:
    kind: str  # community | grid | building
    id: int | None = None  # the grid's or building's
    name: str = ""  # the grid's or building's, as bot.toml spells it

    @property
    def key(self) -> str:
        """A button's value: `community`, `grid:3`, `building:7`."""
        return self.kind if self.id is None else f"{self.kind}:{self.id}"

    @property
    def spelled(self) -> str:
        """As the command line writes it: `community`, `grid:Grid 1`, `building:Building 2`."""
        return self.kind if self.kind == COMMUNITY else f"{self.kind}:{self.name}"


async def parse(session: AsyncSession, text: str) -> Scope | None:
    """`community`, `grid:NAME` or `building:NAME`; None when it names nothing."""
    kind, _, name = text.strip().partition(":")
    kind, name = kind.strip().lower(), name.strip()
    if kind == COMMUNITY and not name:
        return Scope(COMMUNITY)
    if kind == GRID and name:
        grid = await session.scalar(select(Grid).where(Grid.name == name))
        return Scope(GRID, grid.id, grid.name) if grid is not None else None
    if kind == BUILDING and name:
        building = await session.scalar(select(Building).where(Building.name == name))
        return Scope(BUILDING, building.id, building.name) if building is not None else None
    return None


async def by_key(session: AsyncSession, key: str) -> Scope | None:
    """The scope a button's value names, as it is now (None if it is gone)."""
    kind, _, raw_id = key.partition(":")
    if kind == COMMUNITY and not raw_id:
        return Scope(COMMUNITY)
    if not raw_id.isdigit():
        return None
    table = {GRID: Grid, BUILDING: Building}.get(kind)
    if table is None:
        return None
    found = await session.get(table, int(raw_id))
    return Scope(kind, found.id, found.name) if found is not None else None


async def choosable(session: AsyncSession, roles: RoleSet) -> list[Scope]:
    """What this person may link a group to: staff any building or grid, or the community; a
    building head the buildings they head."""
    buildings = list((await session.scalars(select(Building).order_by(Building.id))).all())
    if roles.is_staff:
        grids = list((await session.scalars(select(Grid).order_by(Grid.id))).all())
        return [
            Scope(COMMUNITY),
            *(Scope(GRID, g.id, g.name) for g in grids),
            *(Scope(BUILDING, b.id, b.name) for b in buildings),
        ]
    headed = roles.headed_buildings()
    return [Scope(BUILDING, b.id, b.name) for b in buildings if b.id in headed]
