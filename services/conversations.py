"""Persistence of dialogue state, so that a restart or another worker picks up where we were."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete
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


def state_of(row: Conversation | None) -> FlowState | None:
    if row is None:
        return None
    return FlowState(row.flow, row.step, row.nonce, dict(row.data), dict(row.choices))


def is_expired(row: Conversation, now: datetime) -> bool:
    return row.expires_at <= now


async def save(
    session: AsyncSession,
    row: Conversation | None,
    state: FlowState | None,
    *,
    channel: str,
    chat_id: str,
    person_id: int,
    expires_at: datetime,
    now: datetime,
) -> None:
    if state is None:
        if row is not None:
            await session.delete(row)
        return
    if row is None:
        row = Conversation(channel=channel, chat_id=chat_id, person_id=person_id)
        session.add(row)
    row.flow, row.step, row.nonce = state.flow, state.step, state.nonce
    row.data, row.choices = dict(state.data), dict(state.choices)
    row.expires_at, row.updated_at = expires_at, now


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(Conversation).where(Conversation.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]
