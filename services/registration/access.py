"""May this person list or decide registrations for this building now? The one place that
checks roles and scopes for registrations (DESIGN.md "Use cases live in services"); /pending,
approval cards, the CLI and the dashboard ask it, none of them checks roles itself.

Applicants' names and rooms are personal data: staff see every building's, a building head only
their own building's (DESIGN.md "Privacy"). A refusal carries a stable reason code for the audit
log and for the message the handler shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Role, RoleAssignment
from services.people import STAFF_ROLES, RoleSet

NOT_YOUR_ROLE = "not_your_role"  # no role that approves registrations
NOT_YOUR_BUILDING = "not_your_building"  # a building head, of another building
OWN_REGISTRATION = "own_registration"  # nobody vouches for themselves

STAFF = "staff"
BUILDING_HEAD = "building_head"

# Who is offered /pending at all (the command menu, and the engine's refusal of the command);
# which buildings each of them may see is `listing`'s answer.
APPROVER_ROLES = frozenset({Role.BUILDING_HEAD, Role.STAFF})


@dataclass(frozen=True)
class Allowed:
    # In what capacity: "staff" (every building) or "building_head" (their own).
    capacity: str


@dataclass(frozen=True)
class Refusal:
    reason: str


@dataclass(frozen=True)
class Listing:
    """Whose registrations someone may list: None is every building (staff)."""

    building_ids: frozenset[int] | None


def listing(roles: RoleSet) -> Listing | Refusal:
    """Which buildings' pending registrations these roles may list."""
    if roles.is_staff:
        return Listing(None)
    headed = roles.headed_buildings()
    if headed:
        return Listing(headed)
    return Refusal(NOT_YOUR_ROLE)


def may_list(roles: RoleSet, building_id: int) -> Allowed | Refusal:
    """May these roles see the pending registrations of this building?"""
    if roles.is_staff:
        return Allowed(STAFF)
    if roles.heads_building(building_id):
        return Allowed(BUILDING_HEAD)
    if roles.headed_buildings():
        return Refusal(NOT_YOUR_BUILDING)
    return Refusal(NOT_YOUR_ROLE)


def may_decide(roles: RoleSet, building_id: int, *, own: bool = False) -> Allowed | Refusal:
    """May these roles approve or reject a registration for this building? Whoever may see it
    may decide it, except on their own (`own`): a head who is themselves waiting, or staff who
    joined with a resident invite, is confirmed by someone else."""
    decided = may_list(roles, building_id)
    if isinstance(decided, Allowed) and own:
        return Refusal(OWN_REGISTRATION)
    return decided


async def approvers(session: AsyncSession, building_id: int, applicant_id: int) -> list[int]:
    """Who is asked to confirm a registration in this building: its building heads, or staff
    when it has none; never the applicant. Oldest first, each once."""
    for wanted in (
        (RoleAssignment.role == Role.BUILDING_HEAD, RoleAssignment.building_id == building_id),
        (RoleAssignment.role.in_(STAFF_ROLES),),
    ):
        found = list(
            (
                await session.scalars(
                    select(RoleAssignment.person_id)
                    .where(*wanted, RoleAssignment.person_id != applicant_id)
                    .distinct()
                    .order_by(RoleAssignment.person_id)
                )
            ).all()
        )
        if found:
            return found
    return []
