"""The authorization matrix of reports: every action a person can ask for, by every role, in
scope and out of scope, decided by `services.reports.access` alone. The expected answers are
written out by hand, one line per action.

Each report here belongs to the grid worker's ladder of grid 10 (or, for the property and
department columns, to their own owners) and was reported by person 1."""

from __future__ import annotations

import pytest

from models import Report, Role
from services.people import Grant, RoleSet
from services.reports import access
from services.reports.lifecycle import Action, Capacity, Refusal, State

REPORTER = 1

# Who asks: (their id, their roles, whether the report is assigned to them, the report's owner).
PEOPLE: dict[str, tuple[int, RoleSet, bool, str]] = {
    "reporter": (REPORTER, RoleSet((Grant(Role.RESIDENT),)), False, "grid_worker"),
    "assignee": (2, RoleSet((Grant(Role.GRID_WORKER, grid_id=10),)), True, "grid_worker"),
    # Assigned to them, but their grid is another one now: nothing covers it.
    "uncovered": (3, RoleSet((Grant(Role.GRID_WORKER, grid_id=20),)), True, "grid_worker"),
    # Same grid, but the report is someone else's.
    "colleague": (4, RoleSet((Grant(Role.GRID_WORKER, grid_id=10),)), False, "grid_worker"),
    "building_head": (
        5,
        RoleSet((Grant(Role.BUILDING_HEAD, building_id=7),)),
        False,
        "grid_worker",
    ),
    "property": (6, RoleSet((Grant(Role.PROPERTY),)), True, "property"),
    "property_other": (6, RoleSet((Grant(Role.PROPERTY),)), True, "grid_worker"),
    "department": (
        7,
        RoleSet((Grant(Role.DEPARTMENT, department="Works"),)),
        True,
        "department:Works",
    ),
    "department_other": (
        7,
        RoleSet((Grant(Role.DEPARTMENT, department="Works"),)),
        True,
        "department:Parks",
    ),
    "staff": (8, RoleSet((Grant(Role.STAFF),)), False, "grid_worker"),
    "admin": (9, RoleSet((Grant(Role.ADMIN),)), False, "grid_worker"),
    "nobody": (10, RoleSet(()), False, "grid_worker"),
}
COLUMNS = list(PEOPLE)

# In which state each action is asked for (one where the lifecycle allows it).
ASKED_IN = {
    Action.ASSIGN: State.SUBMITTED,
    Action.ACCEPT: State.ASSIGNED,
    Action.REASSIGN: State.ASSIGNED,
    Action.REJECT: State.ASSIGNED,
    Action.MARK_DUPLICATE: State.ASSIGNED,
    Action.NOTE: State.IN_PROGRESS,
    Action.RESOLVE: State.IN_PROGRESS,
    Action.CONFIRM: State.RESOLVED,
    Action.REOPEN: State.RESOLVED,
    Action.AUTO_CLOSE: State.RESOLVED,
    Action.ESCALATE: State.ASSIGNED,
}

A, S, R = "assignee", "staff", "reporter"
OWN, NO, OUT = "own_report", "not_your_role", "not_covered"
HANDLING = [OWN, A, OUT, NO, NO, A, OUT, A, OUT, S, S, NO]
# action → the answer for each column of PEOPLE, in order.
EXPECTED: dict[Action, list[str]] = {
    Action.ACCEPT: HANDLING,
    Action.REASSIGN: HANDLING,
    Action.REJECT: HANDLING,
    Action.MARK_DUPLICATE: HANDLING,
    Action.NOTE: HANDLING,
    Action.RESOLVE: HANDLING,
    # Only the reporter rates; staff can't rate for them.
    Action.CONFIRM: [R, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO],
    Action.REOPEN: [R, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO],
    # Assigning and escalating by hand are for staff (the scheduler does them as the system).
    Action.ASSIGN: [NO, NO, NO, NO, NO, NO, NO, NO, NO, S, S, NO],
    Action.ESCALATE: [NO, NO, NO, NO, NO, NO, NO, NO, NO, S, S, NO],
    # Only the scheduler closes an unrated report.
    Action.AUTO_CLOSE: [NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO],
}


def asked_by(who: str, state: State) -> tuple[int, RoleSet, Report]:
    """The person in column `who`, and the report they ask about, in `state`."""
    person_id, roles, assigned, owner = PEOPLE[who]
    report = Report(
        reporter_id=REPORTER,
        assignee_id=person_id if assigned else 99,
        state=state.value,
        owner=owner,
        grid_id=10,
    )
    return person_id, roles, report


def test_the_matrix_covers_every_action() -> None:
    assert set(EXPECTED) == set(Action) and set(ASKED_IN) == set(Action)
    assert all(len(row) == len(COLUMNS) for row in EXPECTED.values())


@pytest.mark.parametrize("action", list(EXPECTED), ids=str)
@pytest.mark.parametrize("who", COLUMNS)
def test_who_may_do_what(who: str, action: Action) -> None:
    state = ASKED_IN[action]
    person_id, roles, report = asked_by(who, state)
    expected = EXPECTED[action][COLUMNS.index(who)]
    decided = access.decide(roles, person_id, report, action, note="a note")
    if expected in (A, S, R):
        assert decided is Capacity(expected)
    else:
        assert decided == Refusal(expected, state, action)


@pytest.mark.parametrize("who", COLUMNS)
def test_a_report_that_moved_on_is_refused_as_such_whoever_asks(who: str) -> None:
    person_id, roles, report = asked_by(who, State.CLOSED)
    for action in Action:
        decided = access.decide(roles, person_id, report, action, note="a note")
        assert decided == Refusal("not_allowed_now", State.CLOSED, action)


@pytest.mark.parametrize(
    ("who", "choices"),
    [
        ("assignee", ("accept", "reassign", "reject", "duplicate")),
        ("staff", ("accept", "reassign", "reject", "duplicate")),
        ("uncovered", ()),
        ("colleague", ()),
        ("reporter", ()),
        ("nobody", ()),
    ],
)
def test_a_card_offers_only_the_moves_its_reader_may_make(
    who: str, choices: tuple[str, ...]
) -> None:
    person_id, roles, report = asked_by(who, State.ASSIGNED)
    assert access.card_actions(roles, person_id, report) == choices


@pytest.mark.parametrize(
    ("who", "everything", "grids", "owners"),
    [
        ("staff", True, set(), set()),
        ("admin", True, set(), set()),
        ("assignee", False, {10}, set()),
        ("property", False, set(), {"property"}),
        ("department", False, set(), {"department:Works"}),
        ("building_head", False, set(), set()),
        ("nobody", False, set(), set()),
    ],
)
def test_which_queue_each_role_sees(
    who: str, everything: bool, grids: set[int], owners: set[str]
) -> None:
    person_id, roles, _, _ = PEOPLE[who]
    scope = access.queue_scope(roles, person_id)
    assert (scope.everything, set(scope.grid_ids), set(scope.owners)) == (
        everything,
        grids,
        owners,
    )
