"""Joining the community and deciding registrations, as use cases (DESIGN.md "Use cases live in
services"): redeeming an invite, joining once the room and name are known, listing and deciding
registrations that wait for approval.

Each takes the session, the acting person and the time, asks `access` where roles matter, sets
the person's status by compare-and-set (two approvers pressing at once give one decision), writes
audit and returns what happened with its notification intents. The dialogue (handlers/start.py,
handlers/approvals.py) only asks, parses and words the result; the CLI and the dashboard call the
same functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Building, Household, Invite, Person, Role
from services import audit, invites, people, tickets
from services.notices import Notice
from services.people import Grant
from services.points import awards
from services.points import pending as pending_awards
from services.registration import access, scopes

# The durable buttons of an approval card, and the notices this feature sends.
REGISTRATION_TICKET = "registration"
REQUEST = "registration.request"  # to an approver: the applicant, with DECISIONS as actions
APPROVED = "registration.approved"  # to the applicant
REJECTED = "registration.rejected"  # to the applicant

Decision = Literal["approve", "reject"]
DECISIONS: tuple[Decision, ...] = ("approve", "reject")
# The community's rule (bot.toml [community] approval): "auto", or confirmed by a building head.
Approval = Literal["auto", "building_head"]

MAX_NAME_LENGTH = 50

# Reason codes of refusals, beyond access's (not_your_role, not_your_building, own_registration):
UNKNOWN = "unknown"  # no such invite code
EXPIRED = "expired"  # the invite code has expired
USED_UP = "used_up"  # the invite code has no use left
INVITE_SPENT = "invite_spent"  # its last use went to someone else since it was checked
BAD_INVITE = "bad_invite"  # the invite is gone, or names a role an invite cannot give
BAD_NAME = "bad_name"  # empty, or longer than MAX_NAME_LENGTH
NO_SUCH_ROOM = "no_such_room"  # not a room of the invite's building
ALREADY_REGISTERED = "already_registered"  # joining again while registered
GONE = "gone"  # no such registration waiting (any more)
ALREADY_DECIDED = "already_decided"  # someone approved or rejected it first


@dataclass(frozen=True)
class Refused:
    """Why nothing was done, with what the refusal's message may name: the building, and (only
    for someone who may see it) the applicant's name."""

    reason: str
    building: str = ""
    name: str = ""


@dataclass(frozen=True)
class NeedsRoom:
    """A good invite for someone not registered yet: ask their room and name, then `join`."""

    invite_id: int
    building_id: int
    building: str


@dataclass(frozen=True)
class AlreadyRegistered:
    """A registered resident redeemed a resident invite: nothing changes."""


@dataclass
class RoleTaken:
    """A registered resident redeemed a role invite and now holds the role."""

    role: Role
    building: str
    notices: list[Notice] = field(default_factory=list)


@dataclass
class Joined:
    # "active": registered now; "pending": waits for `approvers` to decide.
    status: str
    name: str
    building: str
    room: str
    household_id: int
    role: Role
    approvers: list[int] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


@dataclass(frozen=True)
class Applicant:
    id: int
    name: str
    status: str
    household_id: int
    building_id: int
    building: str
    room: str


@dataclass
class Pending:
    """The registrations someone may decide, each as the card they get for it."""

    applicants: list[Applicant]
    notices: list[Notice] = field(default_factory=list)


@dataclass
class Decided:
    decision: Decision
    applicant: Applicant
    notices: list[Notice] = field(default_factory=list)


async def redeem(
    session: AsyncSession, person_id: int, code: str, now: datetime
) -> NeedsRoom | AlreadyRegistered | RoleTaken | Refused:
    """`/start CODE`: a newcomer goes on to give their room; a registered resident gets the
    role the invite carries (staff hand out building-head and grid-worker invites)."""
    found = await invites.check(session, code, now)
    if isinstance(found, invites.InviteProblem):
        return Refused(found.reason)
    invite, building = found.invite, found.building
    role = Role(invite.role)
    grant = scopes.invite_grant(role, building)
    if isinstance(grant, scopes.ScopeProblem):
        # Refused now rather than after the newcomer has typed their room and name.
        return Refused(BAD_INVITE, building.name)
    status = await session.scalar(_STATUS, {"person_id": person_id})
    if status != "active":
        return NeedsRoom(invite.id, building.id, building.name)
    if role is Role.RESIDENT:
        return AlreadyRegistered()
    if not await invites.use(session, invite.id, now):
        return Refused(INVITE_SPENT, building.name)
    await people.grant(session, person_id, grant)
    await audit.record(
        session,
        "role.grant",
        actor_id=person_id,
        role=role.value,
        building=building.name,
        via="invite",
    )
    return RoleTaken(role, building.name)


@dataclass(frozen=True)
class _Place:
    id: int
    grid_id: int
    name: str


@dataclass(frozen=True)
class _Home:
    id: int
    room: str


_JOINING = (
    select(
        Invite.role,
        Building.id.label("building_id"),
        Building.grid_id,
        Building.name.label("building"),
        Household.id.label("household_id"),
        Household.room,
    )
    .join(Building, Building.id == Invite.building_id)
    .outerjoin(
        Household,
        (Household.building_id == Building.id) & (Household.room == bindparam("room")),
    )
    .where(Invite.id == bindparam("invite_id"))
)
_PERSON = Person.__table__
_STATUS = select(_PERSON.c.status).where(_PERSON.c.id == bindparam("person_id"))
_STATUS_FOR_UPDATE = _STATUS.with_for_update()
_JOIN_PERSON = (
    update(_PERSON)
    .where(_PERSON.c.id == bindparam("person_id"))
    .values(
        display_name=bindparam("display_name"),
        household_id=bindparam("household_id"),
        status=bindparam("status"),
    )
)


async def join(
    session: AsyncSession,
    person_id: int,
    invite_id: int,
    room: str,
    name: str,
    now: datetime,
    *,
    approval: Approval,
    welcome_points: int = 0,
) -> Joined | Refused:
    """Register `person_id` in `room` of the invite's building under `name`.

    With automatic approval, or a role invite (those come from staff, who vouch for the person),
    they are registered at once and get the invite's role. Otherwise they wait, and the
    building's heads (else staff) are asked to confirm, each with approve/reject buttons.
    """
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME_LENGTH:
        return Refused(BAD_NAME)
    # The invite, its building and the home, in one prebuilt statement: this runs for every
    # newcomer (bench/updates.py).
    row = (await session.execute(_JOINING, {"invite_id": invite_id, "room": room})).first()
    if row is None:
        return Refused(BAD_INVITE)
    building = _Place(row.building_id, row.grid_id, row.building)
    role = Role(row.role)
    grant = scopes.invite_grant(role, building)
    if isinstance(grant, scopes.ScopeProblem):
        return Refused(BAD_INVITE, building.name)
    if row.household_id is None:
        return Refused(NO_SUCH_ROOM, building.name)
    household = _Home(row.household_id, row.room)
    # Held until this commits, so an approval of an earlier registration can't land in between
    # (and be overwritten by this one).
    status = await session.scalar(_STATUS_FOR_UPDATE, {"person_id": person_id})
    if status is None:
        raise LookupError(f"no person {person_id}")
    if status == "active":
        return Refused(ALREADY_REGISTERED, building.name)
    if not await invites.use(session, invite_id, now):
        return Refused(INVITE_SPENT, building.name)
    if status == "pending":
        # A registration still waiting elsewhere is replaced by this one: its cards go stale.
        await tickets.retire_for_subject(session, REGISTRATION_TICKET, person_id, now)
    vouched = approval == "auto" or role is not Role.RESIDENT
    joined = Joined(
        status="active" if vouched else "pending",
        name=name,
        building=building.name,
        room=household.room,
        household_id=household.id,
        role=role,
    )
    await session.execute(
        _JOIN_PERSON,
        {
            "person_id": person_id,
            "display_name": name,
            "household_id": household.id,
            "status": joined.status,
        },
    )
    if vouched:
        await people.grant(session, person_id, Grant(Role.RESIDENT))
        if role is not Role.RESIDENT:
            await people.grant(session, person_id, grant)
        else:
            await _welcome(session, person_id, welcome_points, now)
        await audit.record(
            session,
            "registration.auto",
            actor_id=person_id,
            building=building.name,
            room=joined.room,
            role=role.value,
        )
        return joined
    joined.approvers = await access.approvers(session, building.id, person_id)
    joined.notices = [
        _request(approver, person_id, name, building.name, joined.room)
        for approver in joined.approvers
    ]
    await audit.record(
        session,
        "registration.requested",
        actor_id=person_id,
        building=building.name,
        room=joined.room,
        approvers=joined.approvers,
    )
    return joined


async def pending(session: AsyncSession, actor_id: int) -> Pending | Refused:
    """The registrations waiting for `actor_id`'s decision: every building's for staff, their
    own buildings' for a building head; never their own."""
    scope = access.listing(await people.roles_of(session, actor_id))
    if isinstance(scope, access.Refusal):
        return Refused(scope.reason)
    query = _APPLICANTS.where(Person.status == "pending", Person.id != actor_id)
    if scope.building_ids is not None:
        query = query.where(Household.building_id.in_(scope.building_ids))
    found = [_applicant_of(row) for row in await session.execute(query.order_by(Person.id))]
    return Pending(found, [_request(actor_id, a.id, a.name, a.building, a.room) for a in found])


async def decide(
    session: AsyncSession,
    actor_id: int,
    applicant_id: int,
    decision: Decision,
    now: datetime,
    *,
    welcome_points: int = 0,
) -> Decided | Refused:
    """Approve or reject a waiting registration.

    Roles are read now, not when the card was sent: a building head who lost the role is
    refused, and the refusal is audited. The status moves from "pending" by compare-and-set, so
    when two approvers press at once one decides and the other is told it was already decided.
    Everyone else's card for the applicant goes stale; the applicant is told.
    """
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    applicant = await _applicant(session, applicant_id)
    if applicant is None:
        return Refused(GONE)
    roles = await people.roles_of(session, actor_id)
    allowed = access.may_decide(roles, applicant.building_id, own=actor_id == applicant_id)
    if isinstance(allowed, access.Refusal):
        await audit.record(
            session,
            "registration.decide",
            actor_id=actor_id,
            outcome="refused",
            applicant=applicant.id,
            reason=allowed.reason,
        )
        return Refused(allowed.reason, applicant.building)
    if applicant.status != "pending":
        return Refused(ALREADY_DECIDED, applicant.building, applicant.name)
    values: dict[str, object] = (
        {"status": "active"}
        if decision == "approve"
        else {"status": "rejected", "household_id": None}
    )
    changed = await session.execute(
        update(Person)
        .where(
            Person.id == applicant.id,
            Person.status == "pending",
            # Joined again elsewhere since it was read: that is another registration.
            Person.household_id == applicant.household_id,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        # Someone else decided (or the person joined again) first; read what won.
        now_is = await _applicant(session, applicant.id)
        if now_is is not None and now_is.status == "pending":
            return Refused(GONE, applicant.building)
        return Refused(ALREADY_DECIDED, applicant.building, applicant.name)
    await tickets.retire_for_subject(session, REGISTRATION_TICKET, applicant.id, now)
    if decision == "approve":
        await people.grant(session, applicant.id, Grant(Role.RESIDENT))
        await _welcome(session, applicant.id, welcome_points, now)
    await audit.record(
        session,
        f"registration.{decision}",
        actor_id=actor_id,
        applicant=applicant.id,
        building=applicant.building,
        room=applicant.room,
    )
    told = Notice(
        applicant.id,
        APPROVED if decision == "approve" else REJECTED,
        subject_id=applicant.id,
        params={"building": applicant.building, "room": applicant.room},
    )
    return Decided(decision, applicant, [told])


async def _welcome(session: AsyncSession, person_id: int, points: int, now: datetime) -> None:
    """A resident's first registration earns `[points.rules] first_registration`, once per
    person however often they move (the key is theirs). Recorded pending, one statement on
    the path every newcomer takes; the tick pays it (services/points/awards.py)."""
    await pending_awards.award_pending(
        session,
        person_id,
        points,
        reason=awards.RULES["first_registration"],
        key=f"registration:{person_id}:first",
        now=now,
    )


def as_decision(value: str) -> Decision | None:
    """A ticket's choice as a decision; None for anything else."""
    return next((d for d in DECISIONS if d == value), None)


def _request(approver_id: int, applicant_id: int, name: str, building: str, room: str) -> Notice:
    return Notice(
        approver_id,
        REQUEST,
        subject_id=applicant_id,
        params={"name": name, "building": building, "room": room},
        actions=DECISIONS,
    )


# Plain columns, not Person objects: the status is compared and set with UPDATEs, and an ORM
# object loaded before one would keep the old value.
_APPLICANTS = (
    select(
        Person.id,
        Person.display_name,
        Person.status,
        Person.household_id,
        Household.building_id,
        Building.name,
        Household.room,
    )
    .join(Household, Household.id == Person.household_id)
    .join(Building, Building.id == Household.building_id)
)


def _applicant_of(row: Row[Any]) -> Applicant:
    return Applicant(*row)


async def _applicant(session: AsyncSession, person_id: int) -> Applicant | None:
    """A person with their home, as a registration; None without one (never joined, or
    rejected: a rejection clears the home)."""
    row = (await session.execute(_APPLICANTS.where(Person.id == person_id))).first()
    return _applicant_of(row) if row is not None else None
