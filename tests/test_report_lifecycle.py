"""The report lifecycle table: every allowed move, and every other move refused."""

from __future__ import annotations

import itertools

import pytest

from services.reports.lifecycle import (
    FINAL_STATES,
    TRANSITIONS,
    WHO_MAY,
    Action,
    Capacity,
    Refusal,
    State,
    next_state,
    rating_action,
)


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
    assert rating_action(2) is Action.REOPEN and rating_action(3) is Action.CONFIRM
    assert next_state(State.RESOLVED, Action.REOPEN, Capacity.REPORTER) is State.REOPENED
    assert next_state(State.REOPENED, Action.ASSIGN, Capacity.SYSTEM) is State.ASSIGNED
    with pytest.raises(ValueError):
        rating_action(6)


@pytest.mark.parametrize(("state", "action"), list(itertools.product(State, Action)))
def test_every_move_not_in_the_table_is_refused(state: State, action: Action) -> None:
    allowed = (state, action) in TRANSITIONS
    capacity = next(iter(WHO_MAY[action]))
    result = next_state(state, action, capacity, note="a note")
    if allowed:
        assert result == TRANSITIONS[(state, action)]
    else:
        assert result == Refusal("not_allowed_now", state, action)


def test_final_states_have_no_way_out() -> None:
    for state in FINAL_STATES:
        assert not [a for (s, a) in TRANSITIONS if s is state]


@pytest.mark.parametrize(
    ("state", "action", "capacity"),
    [
        (State.ASSIGNED, Action.ACCEPT, Capacity.REPORTER),  # a resident trying worker actions
        (State.IN_PROGRESS, Action.RESOLVE, Capacity.REPORTER),
        (State.RESOLVED, Action.CONFIRM, Capacity.ASSIGNEE),  # workers cannot rate their own work
        (State.RESOLVED, Action.AUTO_CLOSE, Capacity.STAFF),
        (State.SUBMITTED, Action.ASSIGN, Capacity.REPORTER),
    ],
)
def test_wrong_capacity_is_refused(state: State, action: Action, capacity: Capacity) -> None:
    assert next_state(state, action, capacity, note="x") == Refusal("not_your_role", state, action)


def test_rejecting_and_resolving_need_a_note() -> None:
    assert next_state(State.ASSIGNED, Action.REJECT, Capacity.ASSIGNEE, note="  ") == Refusal(
        "note_required", State.ASSIGNED, Action.REJECT
    )
    assert next_state(State.ASSIGNED, Action.REJECT, Capacity.ASSIGNEE, note="not ours") is (
        State.REJECTED
    )
