"""Persistence of dialogue state, so that a restart or another worker picks up where we were.

Written with prebuilt Core statements rather than ORM objects: it runs for every update, and the
ORM's unit of work cost more than the SQL itself (bench/updates.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Conversation
from services.sql import insert_ignoring


class StaleConversation(Exception):
    """Another worker saved this conversation since it was loaded: this update lost the race.

    Raised inside the update's transaction, so everything the update did rolls back with it.
    """


@dataclass
class FlowState:
    flow: str
    step: str
    nonce: str
    data: dict[str, Any] = field(default_factory=dict)
    # Button index → the value the step gave it; only this step's nonce unlocks them.
    choices: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stored:
    id: int
    state: FlowState
    expires_at: datetime
    version: int = 0

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now


# Selected alongside the person (services/people.arrive) to save a round trip.
COLUMNS = (
    Conversation.id,
    Conversation.flow,
    Conversation.step,
    Conversation.nonce,
    Conversation.data,
    Conversation.choices,
    Conversation.expires_at,
    Conversation.version,
)


def from_columns(values: Sequence[Any]) -> Stored | None:
    row_id, flow, step, nonce, data, choices, expires_at, version = values
    if row_id is None:
        return None
    state = FlowState(flow, step, nonce, dict(data), dict(choices))
    return Stored(row_id, state, expires_at, version)


_TABLE = Conversation.__table__
# Compare and set: the row changes only if it is still the version this update loaded.
_UPDATE = update(_TABLE).where(
    _TABLE.c.id == bindparam("row_id"), _TABLE.c.version == bindparam("loaded_version")
)
_DELETE = delete(_TABLE).where(
    _TABLE.c.id == bindparam("row_id"), _TABLE.c.version == bindparam("loaded_version")
)


def save(
    connection: Connection,
    stored: Stored | None,
    state: FlowState | None,
    *,
    channel: str,
    chat_id: str,
    person_id: int,
    expires_at: datetime,
    now: datetime,
) -> None:
    """Save the state after one update, or raise StaleConversation if another update saved
    this conversation first (two presses of one button handled by two workers)."""
    if state is None:
        if stored is not None:
            _changed(connection.execute(_DELETE, _version(stored)).rowcount)
        return
    values = {
        "flow": state.flow,
        "step": state.step,
        "nonce": state.nonce,
        "data": dict(state.data),
        "choices": dict(state.choices),
        "expires_at": expires_at,
        "updated_at": now,
    }
    if stored is None:
        values.update(channel=channel, chat_id=chat_id, person_id=person_id, version=0)
        _changed(insert_ignoring(connection, _TABLE, values))  # type: ignore[arg-type]
    else:
        values["version"] = stored.version + 1
        _changed(connection.execute(_UPDATE, {**values, **_version(stored)}).rowcount)


def _version(stored: Stored) -> dict[str, int]:
    return {"row_id": stored.id, "loaded_version": stored.version}


def _changed(rows: int) -> None:
    if not rows:
        raise StaleConversation


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(Conversation).where(Conversation.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]
