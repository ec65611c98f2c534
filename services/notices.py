"""Notification intents: what a use case wants people to hear (DESIGN.md "Use cases live in
services").

A use case decides who is told what, and which durable actions they get, but not how it reads:
that depends on the person's language and channel, which are the handlers' business. A `Notice`
is therefore plain data; one writer (handlers/notices.py) renders each in its reader's language
and puts it in the outbox, in the use case's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Notice:
    person_id: int
    # What happened, as the renderers know it: "report.accepted", "registration.approved", …
    kind: str
    # The object it is about (a report, an applicant), and what else the text needs: plain
    # values only (numbers, strings), so a test can assert them and a queue could carry them.
    subject_id: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    # Durable choices the person gets as buttons, checked again by a use case when pressed.
    actions: tuple[str, ...] = ()
    # The person's card for the subject, which this notice replaces (an edit where possible).
    card: str | None = None


def to(person_ids: list[int], kind: str, **kw: Any) -> list[Notice]:
    """The same notice for several people (a reporter and their followers), each once."""
    seen: set[int] = set()
    out = []
    for person_id in person_ids:
        if person_id not in seen:
            seen.add(person_id)
            out.append(Notice(person_id, kind, **kw))
    return out


@dataclass(frozen=True)
class GroupNotice:
    """A notice to a group chat linked to a scope (a poll's shared card, its results, later an
    announcement): read in the community's language, since a group has many readers. Its
    buttons, if any, are the feature's shared ones, which anyone there may press."""

    group_chat_id: int
    kind: str
    subject_id: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    # The group's card for the subject, which this notice replaces (an edit where possible;
    # while an earlier version waits to be sent, this one replaces it).
    card: str | None = None
