"""May this person make this move on this report now? The one place that checks roles and scopes
for reports (DESIGN.md "Use cases live in services"). A refusal carries a stable reason code for
the audit log and for the message the handler shows.

Ask it after loading the report with `store.lock`, so the answer holds until the move commits:
roles are read at that moment, not when the card was sent, so a revoked role stops at once.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from models import Report, Role
from services import people
from services.people import RoleSet
from services.reports import routing
from services.reports.lifecycle import (
    TRANSITIONS,
    Action,
    Capacity,
    Refusal,
    State,
    next_state,
)
from services.reports.queries import QueueScope

# Reason codes beyond the lifecycle's own (not_allowed_now, not_your_role, note_required):
OWN_REPORT = "own_report"  # the reporter may not handle (accept, fix, pass on) their own report
NOT_COVERED = "not_covered"  # assigned to them, but none of their roles covers it any more

# Moves of whoever handles the report, as opposed to the reporter's verdict and the system's.
HANDLING_ACTIONS = frozenset(
    {
        Action.ACCEPT,
        Action.REASSIGN,
        Action.REJECT,
        Action.MARK_DUPLICATE,
        Action.NOTE,
        Action.RESOLVE,
    }
)
RATING_ACTIONS = frozenset({Action.CONFIRM, Action.REOPEN})

_PROPERTY_ROLES = frozenset({Role.PROPERTY, Role.PROPERTY_HEAD})


# The buttons of a handler's card in each state, as ticket choices: each is offered only to
# someone who may make that move now.
CARD_ACTIONS: dict[State, tuple[tuple[str, Action], ...]] = {
    State.ASSIGNED: (
        ("accept", Action.ACCEPT),
        ("reassign", Action.REASSIGN),
        ("reject", Action.REJECT),
        ("duplicate", Action.MARK_DUPLICATE),
    ),
    State.REOPENED: (("accept", Action.ACCEPT), ("reassign", Action.REASSIGN)),
    State.IN_PROGRESS: (
        ("progress", Action.NOTE),
        ("resolve", Action.RESOLVE),
        ("reassign", Action.REASSIGN),
    ),
}
CARD_CHOICES = {choice: action for pairs in CARD_ACTIONS.values() for choice, action in pairs}


def covers(roles: RoleSet, report: Report) -> bool:
    """Does one of these roles make the report theirs to handle? Staff cover every report; the
    others cover reports of their owner, within their grid or department."""
    if roles.is_staff:
        return True
    kind, _, department = report.owner.partition(":")
    if kind == routing.GRID_WORKER:
        return report.grid_id is not None and report.grid_id in roles.grids(Role.GRID_WORKER)
    if kind == routing.PROPERTY:
        return roles.any_of(_PROPERTY_ROLES)
    if kind == routing.DEPARTMENT:
        return department in roles.departments(Role.DEPARTMENT, Role.DEPARTMENT_HEAD)
    return False


def handling_capacity(roles: RoleSet, person_id: int, report: Report) -> Capacity | Refusal:
    """In what capacity this person may handle the report, whatever its state."""
    state = State(report.state)
    if report.reporter_id == person_id:
        return Refusal(OWN_REPORT, state, Action.ACCEPT)
    if roles.is_staff:
        return Capacity.STAFF
    if report.assignee_id != person_id:
        return Refusal("not_your_role", state, Action.ACCEPT)
    if not covers(roles, report):
        return Refusal(NOT_COVERED, state, Action.ACCEPT)
    return Capacity.ASSIGNEE


def decide(
    roles: RoleSet, person_id: int, report: Report, action: Action, *, note: str = "-"
) -> Capacity | Refusal:
    """The capacity in which `person_id` may make `action` on `report` as it is now, or why not.

    The state comes first: a report that moved on is refused as such ("it is now closed"), even
    for someone who could not have made the move anyway. `note` defaults to a placeholder for
    asking before the person has written one.
    """
    state = State(report.state)
    if (state, action) not in TRANSITIONS:
        return Refusal("not_allowed_now", state, action)
    capacity: Capacity | Refusal
    if action in RATING_ACTIONS:
        capacity = (
            Capacity.REPORTER
            if report.reporter_id == person_id
            else Refusal("not_your_role", state, action)
        )
    elif action in HANDLING_ACTIONS:
        capacity = handling_capacity(roles, person_id, report)
    else:
        # Assigning and escalating by hand are for staff; the system's moves never come here.
        capacity = Capacity.STAFF if roles.is_staff else Refusal("not_your_role", state, action)
    if isinstance(capacity, Refusal):
        return Refusal(capacity.reason, state, action)
    moved = next_state(state, action, capacity, note=note)
    return moved if isinstance(moved, Refusal) else capacity


def card_actions(roles: RoleSet, person_id: int, report: Report) -> tuple[str, ...]:
    """The moves this person may make on the report now, as the choices of their card."""
    return tuple(
        choice
        for choice, action in CARD_ACTIONS.get(State(report.state), ())
        if isinstance(decide(roles, person_id, report, action), Capacity)
    )


def may_see_reporter(roles: RoleSet) -> bool:
    """Real names and rooms are for staff (DESIGN.md "Privacy"): handlers see the problem."""
    return roles.is_staff


def queue_scope(roles: RoleSet, person_id: int) -> QueueScope:
    """Which reports someone who handles them may list: what their roles cover, and their own."""
    if roles.is_staff:
        return QueueScope(person_id, everything=True)
    owners: set[str] = set()
    if roles.any_of(_PROPERTY_ROLES):
        owners.add(routing.PROPERTY)
    owners |= {
        f"{routing.DEPARTMENT}:{d}"
        for d in roles.departments(Role.DEPARTMENT, Role.DEPARTMENT_HEAD)
    }
    return QueueScope(person_id, grid_ids=roles.grids(Role.GRID_WORKER), owners=frozenset(owners))


async def may(
    session: AsyncSession, person_id: int, report: Report, action: Action, *, note: str = "-"
) -> Capacity | Refusal:
    """`decide`, with the person's roles as they are in the database right now."""
    return decide(await people.roles_of(session, person_id), person_id, report, action, note=note)


__all__ = [
    "CARD_ACTIONS",
    "HANDLING_ACTIONS",
    "NOT_COVERED",
    "OWN_REPORT",
    "card_actions",
    "covers",
    "decide",
    "may",
    "queue_scope",
]
