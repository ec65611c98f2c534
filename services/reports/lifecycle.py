"""Which report state may follow which, and who may move it: one table, checked in one place.

State names follow FixMyStreet's. Every change goes through `next_state`, so a refused move is
refused the same way whether it came from a dispatch card, the dashboard or the scheduler; the
caller writes the refusal to the audit log and the accepted move to the report's timeline.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.StrEnum):
    SUBMITTED = "submitted"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    REOPENED = "reopened"


class Action(enum.StrEnum):
    ASSIGN = "assign"  # automatic dispatch, or staff picking an assignee
    ACCEPT = "accept"  # 接单
    REASSIGN = "reassign"  # 转派
    REJECT = "reject"  # not ours / not a problem; needs a reason
    MARK_DUPLICATE = "mark_duplicate"  # needs the original report
    NOTE = "note"  # a progress update from whoever handles it; the state does not change
    RESOLVE = "resolve"  # needs an "after" photo and a note
    CONFIRM = "confirm"  # the reporter rates 3–5: closed
    REOPEN = "reopen"  # the reporter rates 1–2 or says "not fixed"
    AUTO_CLOSE = "auto_close"  # no rating within the configured days
    ESCALATE = "escalate"  # overdue: one level up; the state does not change


class Capacity(enum.StrEnum):
    """In what capacity someone acts on this report; decided by the caller from roles."""

    SYSTEM = "system"  # dispatcher and scheduler
    ASSIGNEE = "assignee"  # the person or department the report is assigned to
    STAFF = "staff"  # community staff and admins: may do anything an assignee may
    REPORTER = "reporter"  # the resident who reported it (followers cannot rate)


OPEN_STATES = frozenset(
    {State.SUBMITTED, State.ASSIGNED, State.IN_PROGRESS, State.REOPENED, State.RESOLVED}
)
FINAL_STATES = frozenset({State.CLOSED, State.REJECTED, State.DUPLICATE})
# Open and still someone's job: resolved reports wait for the reporter, not the handler.
HANDLING_STATES = OPEN_STATES - {State.RESOLVED}

# (from, action) → to. Anything not listed is refused.
TRANSITIONS: dict[tuple[State, Action], State] = {
    (State.SUBMITTED, Action.ASSIGN): State.ASSIGNED,
    (State.SUBMITTED, Action.REJECT): State.REJECTED,
    (State.SUBMITTED, Action.MARK_DUPLICATE): State.DUPLICATE,
    (State.ASSIGNED, Action.ACCEPT): State.IN_PROGRESS,
    (State.ASSIGNED, Action.REASSIGN): State.ASSIGNED,
    (State.ASSIGNED, Action.REJECT): State.REJECTED,
    (State.ASSIGNED, Action.MARK_DUPLICATE): State.DUPLICATE,
    (State.ASSIGNED, Action.ESCALATE): State.ASSIGNED,
    (State.IN_PROGRESS, Action.RESOLVE): State.RESOLVED,
    (State.IN_PROGRESS, Action.NOTE): State.IN_PROGRESS,
    (State.IN_PROGRESS, Action.REASSIGN): State.ASSIGNED,
    (State.IN_PROGRESS, Action.ESCALATE): State.IN_PROGRESS,
    (State.RESOLVED, Action.CONFIRM): State.CLOSED,
    (State.RESOLVED, Action.REOPEN): State.REOPENED,
    (State.RESOLVED, Action.AUTO_CLOSE): State.CLOSED,
    (State.REOPENED, Action.ASSIGN): State.ASSIGNED,
    (State.REOPENED, Action.ACCEPT): State.IN_PROGRESS,
    (State.REOPENED, Action.REASSIGN): State.ASSIGNED,
    (State.REOPENED, Action.ESCALATE): State.REOPENED,
}

WHO_MAY: dict[Action, frozenset[Capacity]] = {
    Action.ASSIGN: frozenset({Capacity.SYSTEM, Capacity.STAFF}),
    Action.ACCEPT: frozenset({Capacity.ASSIGNEE, Capacity.STAFF}),
    # The system hands on the reports of someone whose role was revoked.
    Action.REASSIGN: frozenset({Capacity.SYSTEM, Capacity.ASSIGNEE, Capacity.STAFF}),
    Action.REJECT: frozenset({Capacity.ASSIGNEE, Capacity.STAFF}),
    Action.MARK_DUPLICATE: frozenset({Capacity.ASSIGNEE, Capacity.STAFF}),
    Action.NOTE: frozenset({Capacity.ASSIGNEE, Capacity.STAFF}),
    Action.RESOLVE: frozenset({Capacity.ASSIGNEE, Capacity.STAFF}),
    Action.CONFIRM: frozenset({Capacity.REPORTER}),
    Action.REOPEN: frozenset({Capacity.REPORTER, Capacity.STAFF}),
    Action.AUTO_CLOSE: frozenset({Capacity.SYSTEM}),
    Action.ESCALATE: frozenset({Capacity.SYSTEM, Capacity.STAFF}),
}

# Moves that must carry something, or the timeline would not explain them.
NEEDS_NOTE = frozenset({Action.REJECT, Action.RESOLVE, Action.REASSIGN, Action.NOTE})


@dataclass(frozen=True)
class Refusal:
    """Why a move was refused: `reason` is a stable code for the audit log and the message."""

    reason: str  # not_allowed_now | not_your_role | note_required | rating_out_of_range
    state: State
    action: Action


def next_state(
    state: State, action: Action, capacity: Capacity, *, note: str = ""
) -> State | Refusal:
    """The state after `action`, or why it may not happen. Pure: callers persist the result."""
    target = TRANSITIONS.get((state, action))
    if target is None:
        return Refusal("not_allowed_now", state, action)
    if capacity not in WHO_MAY[action]:
        return Refusal("not_your_role", state, action)
    if action in NEEDS_NOTE and not note.strip():
        return Refusal("note_required", state, action)
    return target


def rating_action(stars: int) -> Action:
    """A rating of 1–2 reopens the report (and escalates it); 3–5 closes it."""
    if not 1 <= stars <= 5:
        raise ValueError("a rating is 1 to 5 stars")
    return Action.REOPEN if stars <= 2 else Action.CONFIRM
