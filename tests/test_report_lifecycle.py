"""The report lifecycle: every allowed move, who may make it, and every other move refused.

The expectations are written out here by hand, not read from services/reports/lifecycle.py:
a change to the lifecycle's table has to be made in both places, on purpose.
"""

from __future__ import annotations

import itertools

import pytest

from services.reports.lifecycle import (
    FINAL_STATES,
    Action,
    Capacity,
    Refusal,
    State,
    next_state,
    rating_action,
)

S, A = State, Action
SYSTEM, ASSIGNEE, STAFF, REPORTER = (
    Capacity.SYSTEM,
    Capacity.ASSIGNEE,
    Capacity.STAFF,
    Capacity.REPORTER,
)

# (from, action) → to. Every pair not listed here must be refused as "not_allowed_now".
EXPECTED_MOVES: dict[tuple[State, Action], State] = {
    (S.SUBMITTED, A.ASSIGN): S.ASSIGNED,
    (S.SUBMITTED, A.REJECT): S.REJECTED,
    (S.SUBMITTED, A.MARK_DUPLICATE): S.DUPLICATE,
    (S.ASSIGNED, A.ACCEPT): S.IN_PROGRESS,
    (S.ASSIGNED, A.REASSIGN): S.ASSIGNED,
    (S.ASSIGNED, A.REJECT): S.REJECTED,
    (S.ASSIGNED, A.MARK_DUPLICATE): S.DUPLICATE,
    (S.ASSIGNED, A.ESCALATE): S.ASSIGNED,
    (S.IN_PROGRESS, A.RESOLVE): S.RESOLVED,
    (S.IN_PROGRESS, A.NOTE): S.IN_PROGRESS,
    (S.IN_PROGRESS, A.REASSIGN): S.ASSIGNED,
    (S.IN_PROGRESS, A.ESCALATE): S.IN_PROGRESS,
    (S.RESOLVED, A.CONFIRM): S.CLOSED,
    (S.RESOLVED, A.REOPEN): S.REOPENED,
    (S.RESOLVED, A.AUTO_CLOSE): S.CLOSED,
    (S.REOPENED, A.ASSIGN): S.ASSIGNED,
    (S.REOPENED, A.ACCEPT): S.IN_PROGRESS,
    (S.REOPENED, A.REASSIGN): S.ASSIGNED,
    (S.REOPENED, A.ESCALATE): S.REOPENED,
}

# Who may make each move (in any state where the move exists); everyone else: "not_your_role".
EXPECTED_WHO: dict[Action, frozenset[Capacity]] = {
    A.ASSIGN: frozenset({SYSTEM, STAFF}),
    A.ACCEPT: frozenset({ASSIGNEE, STAFF}),
    A.REASSIGN: frozenset({SYSTEM, ASSIGNEE, STAFF}),  # the system hands on a revoked worker's
    A.REJECT: frozenset({ASSIGNEE, STAFF}),
    A.MARK_DUPLICATE: frozenset({ASSIGNEE, STAFF}),
    A.NOTE: frozenset({ASSIGNEE, STAFF}),
    A.RESOLVE: frozenset({ASSIGNEE, STAFF}),
    A.CONFIRM: frozenset({REPORTER}),  # workers cannot rate their own work
    A.REOPEN: frozenset({REPORTER, STAFF}),
    A.AUTO_CLOSE: frozenset({SYSTEM}),
    A.ESCALATE: frozenset({SYSTEM, STAFF}),
}

# Moves refused without a note ("" or only spaces), or the timeline would not explain them.
EXPECTED_NEEDS_NOTE = frozenset({A.REJECT, A.RESOLVE, A.REASSIGN, A.NOTE})

NOTES = ("", "   ", "a note")


def expected(state: State, action: Action, capacity: Capacity, note: str) -> State | Refusal:
    target = EXPECTED_MOVES.get((state, action))
    if target is None:
        return Refusal("not_allowed_now", state, action)
    if capacity not in EXPECTED_WHO[action]:
        return Refusal("not_your_role", state, action)
    if action in EXPECTED_NEEDS_NOTE and not note.strip():
        return Refusal("note_required", state, action)
    return target


def test_every_action_has_a_written_expectation() -> None:
    """A new action must be added to the tables above before the next test can pass for it."""
    assert set(EXPECTED_WHO) == set(Action)


@pytest.mark.parametrize(
    ("state", "action", "capacity"), list(itertools.product(State, Action, Capacity))
)
def test_every_move_by_everyone(state: State, action: Action, capacity: Capacity) -> None:
    for note in NOTES:
        assert next_state(state, action, capacity, note=note) == expected(
            state, action, capacity, note
        ), (state, action, capacity, note)


def test_the_table_allows_what_it_says() -> None:
    """A spot check that the cross product above is not vacuous: each listed move happens."""
    for (state, action), target in EXPECTED_MOVES.items():
        for capacity in EXPECTED_WHO[action]:
            assert next_state(state, action, capacity, note="done") is target


def test_the_closed_loop() -> None:
    state = State.SUBMITTED
    for action, capacity, note in [
        (Action.ASSIGN, Capacity.SYSTEM, ""),
        (Action.ACCEPT, Capacity.ASSIGNEE, ""),
        (Action.RESOLVE, Capacity.ASSIGNEE, "replaced the bulb"),
        (rating_action(4), Capacity.REPORTER, ""),
    ]:
        result = next_state(state, action, capacity, note=note)
        assert isinstance(result, State), result
        state = result
    assert state is State.CLOSED


def test_low_rating_reopens_and_the_loop_goes_round_again() -> None:
    assert [rating_action(stars) for stars in (1, 2, 3, 4, 5)] == [
        Action.REOPEN,
        Action.REOPEN,
        Action.CONFIRM,
        Action.CONFIRM,
        Action.CONFIRM,
    ]
    assert next_state(State.RESOLVED, Action.REOPEN, Capacity.REPORTER) is State.REOPENED
    assert next_state(State.REOPENED, Action.ASSIGN, Capacity.SYSTEM) is State.ASSIGNED
    for stars in (0, 6):
        with pytest.raises(ValueError):
            rating_action(stars)


def test_final_states_have_no_way_out() -> None:
    assert FINAL_STATES == {State.CLOSED, State.REJECTED, State.DUPLICATE}
    for state, action, capacity in itertools.product(
        (State.CLOSED, State.REJECTED, State.DUPLICATE), Action, Capacity
    ):
        assert next_state(state, action, capacity, note="x") == Refusal(
            "not_allowed_now", state, action
        )


def test_rejecting_needs_a_note() -> None:
    assert next_state(State.ASSIGNED, Action.REJECT, Capacity.ASSIGNEE, note="  ") == Refusal(
        "note_required", State.ASSIGNED, Action.REJECT
    )
    assert next_state(State.ASSIGNED, Action.REJECT, Capacity.ASSIGNEE, note="not ours") is (
        State.REJECTED
    )
