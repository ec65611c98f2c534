"""People, their platform identities and their scoped roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Connection, and_, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from models import Building, Conversation, Household, Identity, Person, Role, RoleAssignment
from services import conversations, updates
from services.sql import insert_ignoring, insert_ignoring_conflict

STAFF_ROLES = frozenset({Role.STAFF, Role.ADMIN})


@dataclass(frozen=True)
class Grant:
    role: Role
    building_id: int | None = None
    grid_id: int | None = None
    department: str | None = None


@dataclass(frozen=True)
class RoleSet:
    """A person's roles with their scopes; the one place that answers "may they?"."""

    grants: tuple[Grant, ...]

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(g.role for g in self.grants)

    def any_of(self, wanted: frozenset[Role]) -> bool:
        return bool(self.roles & wanted)

    @property
    def is_staff(self) -> bool:
        return self.any_of(STAFF_ROLES)

    def may_use(self, audience: frozenset[Role] | None) -> bool:
        """May someone with these roles use a command meant for `audience` (None: anyone)?
        Administrators may use every command."""
        return audience is None or Role.ADMIN in self.roles or self.any_of(audience)

    def heads_building(self, building_id: int) -> bool:
        return any(
            g.role is Role.BUILDING_HEAD and g.building_id == building_id for g in self.grants
        )

    def grids(self, role: Role) -> frozenset[int]:
        return frozenset(g.grid_id for g in self.grants if g.role is role and g.grid_id is not None)

    def departments(self, *roles: Role) -> frozenset[str]:
        return frozenset(
            g.department for g in self.grants if g.role in roles and g.department is not None
        )

    def headed_buildings(self) -> frozenset[int]:
        return frozenset(
            g.building_id
            for g in self.grants
            if g.role is Role.BUILDING_HEAD and g.building_id is not None
        )


_FIELDS = ("id", "display_name", "locale", "status", "household_id", "last_channel")


class PersonRecord:
    """A person as the dialogue engine holds them: plain fields, changes kept for one UPDATE.

    Loading an ORM object and flushing it cost more than everything else the engine does for an
    update (bench/updates.py), and most updates only read these five fields.
    """

    __slots__ = ("_changes", *_FIELDS)
    id: int
    display_name: str
    locale: str | None
    status: str
    household_id: int | None
    last_channel: str | None

    def __init__(
        self,
        id: int,
        display_name: str,
        locale: str | None,
        status: str,
        household_id: int | None,
        last_channel: str | None = None,
    ) -> None:
        for name, value in zip(
            _FIELDS, (id, display_name, locale, status, household_id, last_channel), strict=True
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_changes", {})

    def __setattr__(self, name: str, value: object) -> None:
        if name == "id" or name not in _FIELDS:
            raise AttributeError(f"{name} cannot be changed on a PersonRecord")
        if getattr(self, name) != value:
            self._changes[name] = value
            object.__setattr__(self, name, value)

    def saved(self, **fields: object) -> None:
        """Values a use case has already written to the row: known now, not written again."""
        for name, value in fields.items():
            if name == "id" or name not in _FIELDS:
                raise AttributeError(f"{name} is not a field of a PersonRecord")
            object.__setattr__(self, name, value)
            self._changes.pop(name, None)

    def save(self, connection: Connection) -> None:
        """Write what changed since loading, once, at the end of the update."""
        if self._changes:
            connection.execute(_UPDATE_PERSON, {**self._changes, "person_id": self.id})
            self._changes.clear()


_PERSON_COLUMNS = (
    Person.id,
    Person.display_name,
    Person.locale,
    Person.status,
    Person.household_id,
    Person.last_channel,
)
_PERSON_TABLE = Person.__table__
_UPDATE_PERSON = update(_PERSON_TABLE).where(_PERSON_TABLE.c.id == bindparam("person_id"))
_INSERT_PERSON = insert(_PERSON_TABLE).returning(*_PERSON_TABLE.c)


async def identify(
    session: AsyncSession,
    channel: str,
    external_id: str,
    *,
    display_name: str = "",
    username: str | None = None,
    private_chat_id: str | None = None,
) -> PersonRecord:
    """Find or create the person behind a platform identity, in the caller's transaction."""
    profile = Profile(display_name, username, private_chat_id)

    def run(sync: Session) -> PersonRecord:
        connection = sync.connection()
        found = _find(connection, channel, external_id, None, profile)
        if found is None:
            return _create(connection, channel, external_id, profile)
        found[0].save(connection)  # what _find filled in from the profile
        return found[0]

    return await session.run_sync(run)


@dataclass(frozen=True)
class Arrival:
    person: PersonRecord
    conversation: conversations.Stored | None


async def arrive(
    session: AsyncSession,
    channel: str,
    external_id: str,
    chat_id: str,
    *,
    update_key: str | None,
    display_name: str = "",
    username: str | None = None,
    private: bool = True,
    locale: str | None = None,
) -> Arrival | None:
    """Load the update's sender with their conversation in that chat; None means the update
    was handled before (it is claimed when its transaction ends: services/updates.py).

    This is the prologue of every update, so it runs as one synchronous block on the session's
    connection: two statements, no ORM round trips.
    """
    profile = Profile(display_name, username, chat_id if private else None, locale)

    def run(sync: Session) -> Arrival | None:
        connection = sync.connection()
        if update_key is not None and updates.handled(connection, channel, update_key):
            return None
        found = _find(connection, channel, external_id, chat_id, profile)
        if found is None:
            return Arrival(_create(connection, channel, external_id, profile), None)
        # Notices go to the app written from last (services/outbox.py), for people with two;
        # written only when it changes.
        found[0].last_channel = channel
        return Arrival(*found)

    return await session.run_sync(run)


async def peek(
    session: AsyncSession, channel: str, external_id: str, chat_id: str
) -> tuple[int, conversations.Stored | None] | None:
    """Who this is and where they stand in this chat, changing nothing: (person id,
    conversation), or None for someone we have never met."""
    params = {"channel": channel, "external_id": external_id, "chat_id": chat_id}
    row = (await session.execute(_ARRIVAL, params)).first()
    if row is None:
        return None
    return row[0], conversations.from_columns(row[_CONVERSATION_AT:])


# Built once: this runs for every update, and building a select costs more than running it.
_ARRIVAL = (
    select(
        *_PERSON_COLUMNS,
        Identity.id,
        Identity.private_chat_id,
        Identity.username,
        *conversations.COLUMNS,
    )
    .select_from(Identity)
    .join(Person, Person.id == Identity.person_id)
    .outerjoin(
        Conversation,
        and_(
            Conversation.person_id == Identity.person_id,
            Conversation.channel == bindparam("channel"),
            Conversation.chat_id == bindparam("chat_id"),
        ),
    )
    .where(
        Identity.channel == bindparam("channel"), Identity.external_id == bindparam("external_id")
    )
)


# Where the identity's and the conversation's columns start in an _ARRIVAL row.
_IDENTITY_AT = len(_PERSON_COLUMNS)
_CONVERSATION_AT = _IDENTITY_AT + 3


@dataclass(frozen=True)
class Profile:
    """What a platform tells us about someone, kept when we first meet them."""

    display_name: str = ""
    username: str | None = None
    private_chat_id: str | None = None
    locale: str | None = None


def _find(
    connection: Connection, channel: str, external_id: str, chat_id: str | None, profile: Profile
) -> tuple[PersonRecord, conversations.Stored | None] | None:
    params = {"channel": channel, "external_id": external_id, "chat_id": chat_id}
    row = connection.execute(_ARRIVAL, params).first()
    if row is None:
        return None
    person = PersonRecord(*row[:_IDENTITY_AT])
    identity_id, known_chat, known_username = row[_IDENTITY_AT:_CONVERSATION_AT]
    changes: dict[str, str] = {}
    if profile.private_chat_id and known_chat != profile.private_chat_id:
        changes["private_chat_id"] = profile.private_chat_id
    if profile.username is not None and known_username != profile.username:
        changes["username"] = profile.username
    if changes:
        connection.execute(update(Identity).where(Identity.id == identity_id).values(**changes))
    if profile.display_name and not person.display_name:
        person.display_name = profile.display_name[:200]
    # Someone `linli admin grant` created before they ever wrote has no language yet.
    if profile.locale and person.locale is None:
        person.locale = profile.locale
    return person, conversations.from_columns(row[_CONVERSATION_AT:])


def _create(
    connection: Connection, channel: str, external_id: str, profile: Profile
) -> PersonRecord:
    row = connection.execute(
        _INSERT_PERSON,
        {
            "display_name": profile.display_name[:200],
            "locale": profile.locale,
            "status": "visitor",
            "last_channel": channel,
            "created_at": datetime.now(UTC),
        },
    ).one()
    person = PersonRecord(
        row.id, row.display_name, row.locale, row.status, row.household_id, row.last_channel
    )
    inserted = insert_ignoring(
        connection,
        Identity.__table__,  # type: ignore[arg-type]
        {
            "person_id": person.id,
            "channel": channel,
            "external_id": external_id,
            "username": profile.username,
            "private_chat_id": profile.private_chat_id,
        },
    )
    if not inserted:
        # Another worker registered the same identity a moment ago; use theirs.
        connection.execute(delete(_PERSON_TABLE).where(_PERSON_TABLE.c.id == person.id))
        found = _find(connection, channel, external_id, None, Profile())
        assert found is not None
        return found[0]
    return person


_ROLES = select(
    RoleAssignment.role,
    RoleAssignment.building_id,
    RoleAssignment.grid_id,
    RoleAssignment.department,
).where(RoleAssignment.person_id == bindparam("person_id"))


async def roles_of(session: AsyncSession, person_id: int) -> RoleSet:
    rows = (await session.execute(_ROLES, {"person_id": person_id})).all()
    return RoleSet(tuple(Grant(Role(r.role), r.building_id, r.grid_id, r.department) for r in rows))


async def grant(session: AsyncSession, person_id: int, grant: Grant) -> bool:
    """True when the role is new; granting twice is harmless."""
    return await insert_ignoring_conflict(
        session,
        RoleAssignment.__table__,  # type: ignore[arg-type]
        {
            "person_id": person_id,
            "role": grant.role.value,
            "building_id": grant.building_id,
            "grid_id": grant.grid_id,
            "department": grant.department,
        },
    )


async def revoke(session: AsyncSession, person_id: int, grant: Grant) -> bool:
    conditions = [RoleAssignment.person_id == person_id, RoleAssignment.role == grant.role]
    if grant.building_id is not None:
        conditions.append(RoleAssignment.building_id == grant.building_id)
    if grant.grid_id is not None:
        conditions.append(RoleAssignment.grid_id == grant.grid_id)
    if grant.department is not None:
        conditions.append(RoleAssignment.department == grant.department)
    result = await session.execute(delete(RoleAssignment).where(and_(*conditions)))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def has_private_chat(session: AsyncSession, person_id: int, channel: str) -> bool:
    """Can we write to them privately on this channel (have they ever written to us there)?"""
    found = await session.scalar(
        select(Identity.id).where(
            Identity.person_id == person_id,
            Identity.channel == channel,
            Identity.private_chat_id.is_not(None),
        )
    )
    return found is not None


async def unreachable(session: AsyncSession, channel: str, external_id: str) -> None:
    """The platform says we can't write to them any more (they unfollowed a WeChat account)."""
    await session.execute(
        update(Identity)
        .where(Identity.channel == channel, Identity.external_id == external_id)
        .values(private_chat_id=None)
    )


async def by_identity(session: AsyncSession, channel: str, external_id: str) -> Person | None:
    return await session.scalar(
        select(Person)
        .join(Identity)
        .where(Identity.channel == channel, Identity.external_id == external_id)
    )


async def building_heads(session: AsyncSession, building_id: int) -> list[Person]:
    return await _holding(
        session,
        RoleAssignment.role == Role.BUILDING_HEAD,
        RoleAssignment.building_id == building_id,
    )


async def staff_members(session: AsyncSession) -> list[Person]:
    return await _holding(session, RoleAssignment.role.in_(STAFF_ROLES))


async def holding(
    session: AsyncSession,
    role: Role,
    *,
    grid_id: int | None = None,
    department: str | None = None,
) -> list[Person]:
    """Everyone with `role`, within a grid or a department when the role is scoped by one."""
    conditions = [RoleAssignment.role == role]
    if grid_id is not None:
        conditions.append(RoleAssignment.grid_id == grid_id)
    if department is not None:
        conditions.append(RoleAssignment.department == department)
    return await _holding(session, *conditions)


async def _holding(session: AsyncSession, *conditions: ColumnElement[bool]) -> list[Person]:
    """People with a role assignment matching the conditions, oldest first, each once."""
    query = select(Person).join(RoleAssignment).where(*conditions).distinct().order_by(Person.id)
    return list((await session.scalars(query)).all())


async def everyone(session: AsyncSession) -> list[Person]:
    """For `linli admin list`: everything needed for one line a person, in three queries."""
    return list(
        (
            await session.scalars(
                select(Person)
                .options(
                    selectinload(Person.identities),
                    selectinload(Person.roles).selectinload(RoleAssignment.building),
                    selectinload(Person.roles).selectinload(RoleAssignment.grid),
                    selectinload(Person.household).selectinload(Household.building),
                )
                .order_by(Person.id)
            )
        ).all()
    )


async def pending_in(session: AsyncSession, building_ids: frozenset[int] | None) -> list[Person]:
    """Registrations waiting for approval; None means every building (staff)."""
    query = (
        select(Person)
        .join(Household, Person.household_id == Household.id)
        .where(Person.status == "pending")
        .options(selectinload(Person.household).selectinload(Household.building))
        .order_by(Person.id)
    )
    if building_ids is not None:
        query = query.where(Household.building_id.in_(building_ids))
    return list((await session.scalars(query)).all())


async def with_household(session: AsyncSession, person_id: int) -> Person | None:
    return await session.scalar(
        select(Person)
        .where(Person.id == person_id)
        .options(selectinload(Person.household).selectinload(Household.building))
    )


def building_of(person: Person) -> Building | None:
    return person.household.building if person.household is not None else None


async def someone(session: AsyncSession, person_id: int) -> Person | None:
    return await session.get(Person, person_id)
