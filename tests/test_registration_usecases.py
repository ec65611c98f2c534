"""Registrations through the use cases alone: no handler, no channel, no dialogue. Each step
asserts what happened and the notification intents returned (who is told what, with which
actions), written out by hand; the authorization matrix is written out by hand too. SQLite and
PostgreSQL; the race of two approvers on PostgreSQL only."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import Linli
from models import ActionTicket, AuditEntry, Building, Invite, Person, Role
from services import community, invites, people, tickets
from services.notices import Notice
from services.people import Grant, RoleSet
from services.registration import access, scopes, usecases
from services.registration.usecases import APPROVED, REGISTRATION_TICKET, REJECTED, REQUEST
from tests.conftest import FakeClock
from tests.races import Blocker

BOTH = ("approve", "reject")


def said(items: list[Notice]) -> list[tuple[int, str, int | None, tuple[str, ...], dict[str, Any]]]:
    """Who hears which kind, about whom, with which actions and values."""
    return [(n.person_id, n.kind, n.subject_id, n.actions, dict(n.params)) for n in items]


async def someone(session: AsyncSession, name: str, *grants: Grant) -> int:
    person = await people.identify(session, "console", name, display_name=name.title())
    for grant in grants:
        await people.grant(session, person.id, grant)
    return person.id


async def building(session: AsyncSession, name: str) -> Building:
    found = await community.building_by_name(session, name)
    assert found is not None
    return found


async def invite(
    session: AsyncSession, where: Building, clock: FakeClock, role: Role = Role.RESIDENT
) -> int:
    made = await invites.create(session, where.id, role=role, uses=20, now=clock())
    return made.id


class Cast:
    """Building 3 with two heads (Hana, Dev); Building 1 with its own head (Olga); Sam is
    staff and Ada an administrator. Building 4 has no head."""

    def __init__(self, b3: Building, b4: Building, ids: dict[str, int]) -> None:
        self.b3, self.b4 = b3, b4
        self.hana, self.dev, self.olga = ids["hana"], ids["dev"], ids["olga"]
        self.sam, self.ada = ids["sam"], ids["ada"]


async def cast(linli: Linli) -> Cast:
    async with linli.transaction() as session:
        b1, b3, b4 = [await building(session, f"Building {n}") for n in (1, 3, 4)]
        ids = {
            "hana": await someone(session, "hana", Grant(Role.BUILDING_HEAD, building_id=b3.id)),
            "dev": await someone(session, "dev", Grant(Role.BUILDING_HEAD, building_id=b3.id)),
            "olga": await someone(session, "olga", Grant(Role.BUILDING_HEAD, building_id=b1.id)),
            "sam": await someone(session, "sam", Grant(Role.STAFF)),
            "ada": await someone(session, "ada", Grant(Role.ADMIN)),
        }
        return Cast(b3, b4, ids)


async def apply(
    linli: Linli, clock: FakeClock, who: str, room: str, where: Building
) -> tuple[int, usecases.Joined]:
    """`who` joins `room` of `where` in a community whose building heads confirm residents."""
    async with linli.transaction() as session:
        person = await someone(session, who)
        invite_id = await invite(session, where, clock)
        joined = await usecases.join(
            session, person, invite_id, room, who.title(), clock(), approval="building_head"
        )
        assert isinstance(joined, usecases.Joined), joined
        return person, joined


async def person_row(linli: Linli, person_id: int) -> tuple[str, int | None, str]:
    async with linli.sessions() as session:
        found = await session.get(Person, person_id)
        assert found is not None
        return found.status, found.household_id, found.display_name


async def roles(linli: Linli, person_id: int) -> set[Role]:
    async with linli.sessions() as session:
        return set((await people.roles_of(session, person_id)).roles)


async def audited(linli: Linli, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    async with linli.sessions() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id)
        )
        return [(e.action, e.outcome, dict(e.detail)) for e in rows]


async def test_join_with_auto_approval(linli: Linli, clock: FakeClock) -> None:
    the = await cast(linli)
    async with linli.transaction() as session:
        amy = await someone(session, "amy")
        invite_id = await invite(session, the.b3, clock)
        joined = await usecases.join(
            session, amy, invite_id, "302", "  Amy   Wu ", clock(), approval="auto"
        )
    assert isinstance(joined, usecases.Joined)
    assert (joined.status, joined.name, joined.building, joined.room) == (
        "active",
        "Amy Wu",
        "Building 3",
        "302",
    )
    assert joined.approvers == [] and joined.notices == []
    status, household_id, name = await person_row(linli, amy)
    assert (status, household_id, name) == ("active", joined.household_id, "Amy Wu")
    assert await roles(linli, amy) == {Role.RESIDENT}
    assert await audited(linli, "registration.") == [
        (
            "registration.auto",
            "ok",
            {"building": "Building 3", "room": "302", "role": "resident"},
        )
    ]
    # Registered people don't join again; the invite's use is not spent on them.
    async with linli.transaction() as session:
        again = await usecases.join(session, amy, invite_id, "303", "Amy", clock(), approval="auto")
        assert again == usecases.Refused(usecases.ALREADY_REGISTERED, "Building 3")
        spent = await session.get(Invite, invite_id)
        assert spent is not None and spent.uses == 1


async def test_a_role_invite_vouches_for_the_person(linli: Linli, clock: FakeClock) -> None:
    """Role invites come from staff: registered at once even where heads confirm residents."""
    the = await cast(linli)
    async with linli.transaction() as session:
        gus = await someone(session, "gus")
        invite_id = await invite(session, the.b3, clock, Role.GRID_WORKER)
        joined = await usecases.join(
            session, gus, invite_id, "101", "Gus", clock(), approval="building_head"
        )
        assert isinstance(joined, usecases.Joined)
        assert (joined.status, joined.role, joined.notices) == ("active", Role.GRID_WORKER, [])
        held = await people.roles_of(session, gus)
    assert set(held.grants) == {
        Grant(Role.RESIDENT),
        Grant(Role.GRID_WORKER, grid_id=the.b3.grid_id),
    }


async def test_redeeming_invites(linli: Linli, clock: FakeClock) -> None:
    """A newcomer is asked their room; a registered resident gets a role invite's role (and a
    resident invite changes nothing for them)."""
    the = await cast(linli)
    async with linli.transaction() as session:
        amy = await someone(session, "amy")
        head_code = (
            await invites.create(session, the.b4.id, role=Role.BUILDING_HEAD, now=clock())
        ).code
        resident_code = (await invites.create(session, the.b4.id, now=clock())).code
    async with linli.transaction() as session:
        asked = await usecases.redeem(session, amy, resident_code.lower(), clock())
        assert isinstance(asked, usecases.NeedsRoom)
        assert (asked.building_id, asked.building) == (the.b4.id, "Building 4")
        joined = await usecases.join(
            session, amy, asked.invite_id, "101", "Amy", clock(), approval="auto"
        )
        assert isinstance(joined, usecases.Joined) and joined.status == "active"
    async with linli.transaction() as session:
        assert await usecases.redeem(session, amy, "NOPE2345", clock()) == usecases.Refused(
            "unknown"
        )
        assert await usecases.redeem(session, amy, resident_code, clock()) == usecases.Refused(
            "used_up"
        )
        taken = await usecases.redeem(session, amy, head_code, clock())
        assert taken == usecases.RoleTaken(Role.BUILDING_HEAD, "Building 4")
        assert await usecases.redeem(session, amy, head_code, clock()) == usecases.Refused(
            "used_up"
        )
    assert await roles(linli, amy) == {Role.RESIDENT, Role.BUILDING_HEAD}
    assert (await audited(linli, "role.grant"))[-1] == (
        "role.grant",
        "ok",
        {"role": "building_head", "building": "Building 4", "via": "invite"},
    )


async def test_join_waits_for_the_building_heads(linli: Linli, clock: FakeClock) -> None:
    the = await cast(linli)
    carol, joined = await apply(linli, clock, "carol", "204", the.b3)
    assert (joined.status, joined.approvers) == ("pending", [the.hana, the.dev])
    card = {"name": "Carol", "building": "Building 3", "room": "204"}
    assert said(joined.notices) == [
        (the.hana, REQUEST, carol, BOTH, card),
        (the.dev, REQUEST, carol, BOTH, card),
    ]
    assert await person_row(linli, carol) == ("pending", joined.household_id, "Carol")
    assert await roles(linli, carol) == set()
    assert await audited(linli, "registration.") == [
        (
            "registration.requested",
            "ok",
            {"building": "Building 3", "room": "204", "approvers": [the.hana, the.dev]},
        )
    ]


async def test_no_head_falls_back_to_staff(linli: Linli, clock: FakeClock) -> None:
    the = await cast(linli)
    fay, joined = await apply(linli, clock, "fay", "601", the.b4)
    assert joined.approvers == [the.sam, the.ada]
    card = {"name": "Fay", "building": "Building 4", "room": "601"}
    assert said(joined.notices) == [
        (the.sam, REQUEST, fay, BOTH, card),
        (the.ada, REQUEST, fay, BOTH, card),
    ]


async def test_nobody_approves_their_own_registration(linli: Linli, clock: FakeClock) -> None:
    """Sam (staff) joins Building 4, which has no head: only Ada is asked, Sam can't decide."""
    the = await cast(linli)
    async with linli.transaction() as session:
        invite_id = await invite(session, the.b4, clock)
        joined = await usecases.join(
            session, the.sam, invite_id, "402", "Sam", clock(), approval="building_head"
        )
        assert isinstance(joined, usecases.Joined) and joined.approvers == [the.ada]
        listed = await usecases.pending(session, the.sam)
        assert isinstance(listed, usecases.Pending) and listed.applicants == []
        refused = await usecases.decide(session, the.sam, the.sam, "approve", clock())
        assert refused == usecases.Refused(access.OWN_REGISTRATION, "Building 4")
    assert (await person_row(linli, the.sam))[0] == "pending"


async def test_approve(linli: Linli, clock: FakeClock) -> None:
    the = await cast(linli)
    carol, _ = await apply(linli, clock, "carol", "204", the.b3)
    async with linli.transaction() as session:
        # The cards the heads hold, as the one writer would have issued them.
        for head in (the.hana, the.dev):
            await tickets.issue(
                session,
                person_id=head,
                kind=REGISTRATION_TICKET,
                subject_id=carol,
                choices=list(BOTH),
                now=clock(),
            )
    async with linli.transaction() as session:
        decided = await usecases.decide(session, the.hana, carol, "approve", clock())
    assert isinstance(decided, usecases.Decided) and decided.decision == "approve"
    assert (decided.applicant.name, decided.applicant.building, decided.applicant.room) == (
        "Carol",
        "Building 3",
        "204",
    )
    assert said(decided.notices) == [
        (carol, APPROVED, carol, (), {"building": "Building 3", "room": "204"})
    ]
    status, household_id, _ = await person_row(linli, carol)
    assert status == "active" and household_id is not None
    assert await roles(linli, carol) == {Role.RESIDENT}
    async with linli.sessions() as session:
        cards = (await session.scalars(select(ActionTicket.used_at))).all()
    assert cards == [clock(), clock()]  # Dev's card is stale now
    assert (await audited(linli, "registration.approve")) == [
        (
            "registration.approve",
            "ok",
            {"applicant": carol, "building": "Building 3", "room": "204"},
        )
    ]
    # A second decision on the same applicant changes nothing.
    async with linli.transaction() as session:
        again = await usecases.decide(session, the.dev, carol, "reject", clock())
    assert again == usecases.Refused(usecases.ALREADY_DECIDED, "Building 3", "Carol")
    assert (await person_row(linli, carol))[0] == "active"


async def test_reject(linli: Linli, clock: FakeClock) -> None:
    the = await cast(linli)
    eve, _ = await apply(linli, clock, "eve", "102", the.b3)
    async with linli.transaction() as session:
        decided = await usecases.decide(session, the.dev, eve, "reject", clock())
    assert isinstance(decided, usecases.Decided) and decided.decision == "reject"
    assert said(decided.notices) == [
        (eve, REJECTED, eve, (), {"building": "Building 3", "room": "102"})
    ]
    assert await person_row(linli, eve) == ("rejected", None, "Eve")
    assert await roles(linli, eve) == set()
    assert (await audited(linli, "registration.reject")) == [
        ("registration.reject", "ok", {"applicant": eve, "building": "Building 3", "room": "102"})
    ]
    # A rejection clears the home, so there is no registration left to decide.
    async with linli.transaction() as session:
        again = await usecases.decide(session, the.hana, eve, "approve", clock())
    assert again == usecases.Refused(usecases.GONE)
    assert await person_row(linli, eve) == ("rejected", None, "Eve")


async def test_a_head_who_lost_the_role_is_refused(linli: Linli, clock: FakeClock) -> None:
    the = await cast(linli)
    jo, _ = await apply(linli, clock, "jo", "501", the.b3)
    async with linli.transaction() as session:
        await people.revoke(session, the.hana, Grant(Role.BUILDING_HEAD, building_id=the.b3.id))
        # Dev now heads Building 1 instead of Building 3.
        await people.revoke(session, the.dev, Grant(Role.BUILDING_HEAD, building_id=the.b3.id))
        b1 = await building(session, "Building 1")
        await people.grant(session, the.dev, Grant(Role.BUILDING_HEAD, building_id=b1.id))
    async with linli.transaction() as session:
        lost = await usecases.decide(session, the.hana, jo, "approve", clock())
        moved = await usecases.decide(session, the.dev, jo, "reject", clock())
    assert lost == usecases.Refused(access.NOT_YOUR_ROLE, "Building 3")
    assert moved == usecases.Refused(access.NOT_YOUR_BUILDING, "Building 3")
    assert (await person_row(linli, jo))[0] == "pending"
    assert await audited(linli, "registration.decide") == [
        ("registration.decide", "refused", {"applicant": jo, "reason": "not_your_role"}),
        ("registration.decide", "refused", {"applicant": jo, "reason": "not_your_building"}),
    ]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("first", ["approve", "reject"])
async def test_two_approvers_at_once(
    two_workers: tuple[Linli, Linli], db_url: str, clock: FakeClock, first: str
) -> None:
    """Hana approves and Dev rejects at the same moment, on two workers: both wait for the
    applicant's row (held by a third connection), `first` gets it first and decides; the other
    is told it was already decided. Nothing deadlocks."""
    one, two = two_workers
    the = await cast(one)
    kim, _ = await apply(one, clock, "kim", "303", the.b3)

    async def press(worker: Linli, who: int, decision: usecases.Decision) -> object:
        async with worker.transaction() as session:
            return await usecases.decide(session, who, kim, decision, clock())

    contenders = {
        "approve": press(one, the.hana, "approve"),
        "reject": press(two, the.dev, "reject"),
    }
    second = "reject" if first == "approve" else "approve"
    async with Blocker(db_url) as blocker:
        await blocker.hold_row("person", kim)
        started = await blocker.queue(contenders[first], contenders[second])
        await blocker.release()
        won, lost = await started[0], await started[1]

    assert isinstance(won, usecases.Decided) and won.decision == first
    assert lost == usecases.Refused(usecases.ALREADY_DECIDED, "Building 3", "Kim")
    status, household_id, _ = await person_row(one, kim)
    if first == "approve":
        assert status == "active" and household_id is not None
        assert said(won.notices)[0][:2] == (kim, APPROVED)
    else:
        assert (status, household_id) == ("rejected", None)
        assert said(won.notices)[0][:2] == (kim, REJECTED)
    decisions = [
        a for a, _, _ in await audited(one, "registration.") if a != "registration.requested"
    ]
    assert decisions == [f"registration.{first}"]


# The authorization matrix, for a registration in building B = 3 (grid 7); building 1 is another.
B, OTHER, GRID = 3, 1, 7
ROLES: dict[str, RoleSet] = {
    "resident": RoleSet((Grant(Role.RESIDENT),)),
    "head_of_b": RoleSet((Grant(Role.RESIDENT), Grant(Role.BUILDING_HEAD, building_id=B))),
    "head_of_other": RoleSet((Grant(Role.BUILDING_HEAD, building_id=OTHER),)),
    "grid_worker": RoleSet((Grant(Role.GRID_WORKER, grid_id=GRID),)),
    "property": RoleSet((Grant(Role.PROPERTY),)),
    "staff": RoleSet((Grant(Role.STAFF),)),
    "admin": RoleSet((Grant(Role.ADMIN),)),
    "nobody": RoleSet(()),
}
HEAD = access.Allowed("building_head")
STAFF = access.Allowed("staff")
NOT_ROLE = access.Refusal("not_your_role")
NOT_BUILDING = access.Refusal("not_your_building")
# role: (list pending for B, decide for B, which buildings' registrations they list at all)
MATRIX: dict[str, tuple[object, object, object]] = {
    "resident": (NOT_ROLE, NOT_ROLE, NOT_ROLE),
    "head_of_b": (HEAD, HEAD, access.Listing(frozenset({B}))),
    "head_of_other": (NOT_BUILDING, NOT_BUILDING, access.Listing(frozenset({OTHER}))),
    "grid_worker": (NOT_ROLE, NOT_ROLE, NOT_ROLE),
    "property": (NOT_ROLE, NOT_ROLE, NOT_ROLE),
    "staff": (STAFF, STAFF, access.Listing(None)),
    "admin": (STAFF, STAFF, access.Listing(None)),
    "nobody": (NOT_ROLE, NOT_ROLE, NOT_ROLE),
}


@pytest.mark.parametrize("who", list(MATRIX))
def test_authorization_matrix(who: str) -> None:
    roles_held = ROLES[who]
    expected_list, expected_decide, expected_listing = MATRIX[who]
    assert access.may_list(roles_held, B) == expected_list
    assert access.may_decide(roles_held, B) == expected_decide
    assert access.listing(roles_held) == expected_listing


# The same matrix through the use cases and the database: each role lists while all are still
# waiting, then decides on an applicant of Building 3 of their own (rooms 101-104, 201-204), so
# that one decision does not answer the next.
USECASE_MATRIX: dict[str, tuple[str, str]] = {
    # role: (what `pending` gives: "all" / "none" / a refusal reason, what `decide` gives)
    "resident": ("not_your_role", "not_your_role"),
    "head_of_b": ("all", "approve"),
    "head_of_other": ("none", "not_your_building"),
    "grid_worker": ("not_your_role", "not_your_role"),
    "property": ("not_your_role", "not_your_role"),
    "staff": ("all", "approve"),
    "admin": ("all", "approve"),
    "nobody": ("not_your_role", "not_your_role"),
}


async def test_authorization_matrix_through_the_use_cases(linli: Linli, clock: FakeClock) -> None:
    async with linli.transaction() as session:
        b1, b3 = await building(session, "Building 1"), await building(session, "Building 3")
        grants = {
            "resident": (Grant(Role.RESIDENT),),
            "head_of_b": (Grant(Role.RESIDENT), Grant(Role.BUILDING_HEAD, building_id=b3.id)),
            "head_of_other": (Grant(Role.BUILDING_HEAD, building_id=b1.id),),
            "grid_worker": (Grant(Role.GRID_WORKER, grid_id=b3.grid_id),),
            "property": (Grant(Role.PROPERTY),),
            "staff": (Grant(Role.STAFF),),
            "admin": (Grant(Role.ADMIN),),
            "nobody": (),
        }
        actors = {role: await someone(session, f"actor-{role}", *g) for role, g in grants.items()}
    applicants = {
        role: (await apply(linli, clock, f"applicant-{n}", f"{n // 4 + 1}0{n % 4 + 1}", b3))[0]
        for n, role in enumerate(USECASE_MATRIX)
    }
    everyone = sorted(applicants.values())
    listings: dict[str, str] = {}
    async with linli.transaction() as session:
        for role, actor in actors.items():
            listed = await usecases.pending(session, actor)
            if isinstance(listed, usecases.Refused):
                listings[role] = listed.reason
                continue
            ids = [a.id for a in listed.applicants]
            assert ids in ([], everyone), ids
            assert [n.person_id for n in listed.notices] == [actor] * len(ids)
            listings[role] = "all" if ids else "none"
    seen: dict[str, tuple[str, str]] = {}
    for role, actor in actors.items():
        async with linli.transaction() as session:
            decided = await usecases.decide(session, actor, applicants[role], "approve", clock())
        seen[role] = (
            listings[role],
            decided.reason if isinstance(decided, usecases.Refused) else decided.decision,
        )
    assert seen == USECASE_MATRIX


def test_which_scope_each_role_needs() -> None:
    known = ["Works"]
    assert scopes.grant_for(Role.BUILDING_HEAD, building_id=3) == Grant(
        Role.BUILDING_HEAD, building_id=3
    )
    assert scopes.grant_for(Role.GRID_WORKER, grid_id=2) == Grant(Role.GRID_WORKER, grid_id=2)
    assert scopes.grant_for(Role.DEPARTMENT_HEAD, department="Works", departments=known) == Grant(
        Role.DEPARTMENT_HEAD, department="Works"
    )
    assert scopes.grant_for(Role.STAFF) == Grant(Role.STAFF)
    assert scopes.grant_for(Role.BUILDING_HEAD) == scopes.ScopeProblem(
        "needs_scope", Role.BUILDING_HEAD, scopes.Scope.BUILDING
    )
    assert scopes.grant_for(Role.BUILDING_HEAD, grid_id=2) == scopes.ScopeProblem(
        "needs_scope", Role.BUILDING_HEAD, scopes.Scope.BUILDING
    )
    assert scopes.grant_for(Role.DEPARTMENT, department="Parks", departments=known) == (
        scopes.ScopeProblem("unknown_department", Role.DEPARTMENT, scopes.Scope.DEPARTMENT)
    )
    assert scopes.grant_for(Role.STAFF, building_id=3) == scopes.ScopeProblem(
        "takes_no_scope", Role.STAFF, scopes.Scope.BUILDING
    )
    assert scopes.grant_for(Role.GRID_WORKER, grid_id=2, building_id=3) == scopes.ScopeProblem(
        "takes_no_scope", Role.GRID_WORKER, scopes.Scope.BUILDING
    )
    # An invite names a building: each role takes from it what it needs.
    b3 = Building(id=3, grid_id=2, name="Building 3")
    assert scopes.invite_grant(Role.BUILDING_HEAD, b3) == Grant(Role.BUILDING_HEAD, building_id=3)
    assert scopes.invite_grant(Role.GRID_WORKER, b3) == Grant(Role.GRID_WORKER, grid_id=2)
    assert scopes.invite_grant(Role.RESIDENT, b3) == Grant(Role.RESIDENT)
    assert scopes.invite_grant(Role.DEPARTMENT, b3) == scopes.ScopeProblem(
        "needs_scope", Role.DEPARTMENT, scopes.Scope.DEPARTMENT
    )
