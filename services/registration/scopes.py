"""Which scope each role needs, and the grant it makes (DESIGN.md "Use cases live in services").

`linli admin grant|revoke` and invite codes both turn "a role, and what it was given" into a
`Grant`; they ask here, so a role scoped by a building can never be stored without one, and
each caller only words the refusal in its own way.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from models import Role
from services.people import Grant


class Scope(enum.StrEnum):
    """What narrows a role down; the values are the CLI's option names."""

    BUILDING = "building"
    GRID = "grid"
    DEPARTMENT = "department"


# The one scope each role needs; a role missing here takes none (it holds community-wide).
ROLE_SCOPES: dict[Role, Scope] = {
    Role.BUILDING_HEAD: Scope.BUILDING,
    Role.GRID_WORKER: Scope.GRID,
    Role.DEPARTMENT: Scope.DEPARTMENT,
    Role.DEPARTMENT_HEAD: Scope.DEPARTMENT,
}

# Reason codes of a ScopeProblem:
UNKNOWN_DEPARTMENT = "unknown_department"  # not a department the report categories name
NEEDS_SCOPE = "needs_scope"  # the role's scope is missing
TAKES_NO_SCOPE = "takes_no_scope"  # a scope the role does not take was given


@dataclass(frozen=True)
class ScopeProblem:
    reason: str
    role: Role
    # NEEDS_SCOPE: the scope the role needs; TAKES_NO_SCOPE: the one given that it does not take.
    scope: Scope | None = None


def scope_of(role: Role) -> Scope | None:
    return ROLE_SCOPES.get(role)


def grant_for(
    role: Role,
    *,
    building_id: int | None = None,
    grid_id: int | None = None,
    department: str | None = None,
    departments: Collection[str] = (),
) -> Grant | ScopeProblem:
    """The grant of `role` with the scope given, or why that scope is wrong for it.

    `departments` are the known ones (the report categories' owners). A department that is not
    one of them is refused first, whatever the role, so a typo is named as such; then a missing
    scope, then one the role does not take (a building head scoped by a grid would otherwise
    head nothing at all).
    """
    if department is not None and department not in departments:
        return ScopeProblem(UNKNOWN_DEPARTMENT, role, Scope.DEPARTMENT)
    given = {
        Scope.BUILDING: building_id,
        Scope.GRID: grid_id,
        Scope.DEPARTMENT: department,
    }
    needed = scope_of(role)
    if needed is not None and given[needed] is None:
        return ScopeProblem(NEEDS_SCOPE, role, needed)
    extra = next((s for s, value in given.items() if value is not None and s is not needed), None)
    if extra is not None:
        return ScopeProblem(TAKES_NO_SCOPE, role, extra)
    return Grant(role, building_id=building_id, grid_id=grid_id, department=department)


class Placed(Protocol):
    """A building, as far as the scope of a role is concerned."""

    @property
    def id(self) -> int: ...

    @property
    def grid_id(self) -> int: ...


def invite_grant(role: Role, building: Placed) -> Grant | ScopeProblem:
    """What an invite for `building` grants: a building head heads that building, a grid worker
    works its grid. No invite can name a department, so a department role is refused."""
    needed = scope_of(role)
    return grant_for(
        role,
        building_id=building.id if needed is Scope.BUILDING else None,
        grid_id=building.grid_id if needed is Scope.GRID else None,
    )
