"""Persistence of dialogue state, so that a restart or another worker picks up where we were.

Written with prebuilt Core statements rather than ORM objects: it runs for every update, and the
ORM's unit of work cost more than the SQL itself (bench/updates.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Conversation


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
)


def from_columns(values: Sequence[Any]) -> Stored | None:
    row_id, flow, step, nonce, data, choices, expires_at = values
    if row_id is None:
        return None
    return Stored(row_id, FlowState(flow, step, nonce, dict(data), dict(choices)), expires_at)


_TABLE = Conversation.__table__
_INSERT = insert(_TABLE)
_UPDATE = update(_TABLE).where(_TABLE.c.id == bindparam("row_id"))
_DELETE = delete(_TABLE).where(_TABLE.c.id == bindparam("row_id"))


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
    if state is None:
        if stored is not None:
            connection.execute(_DELETE, {"row_id": stored.id})
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
        values.update(channel=channel, chat_id=chat_id, person_id=person_id)
        connection.execute(_INSERT, values)
    else:
        connection.execute(_UPDATE, {**values, "row_id": stored.id})


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(Conversation).where(Conversation.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]
