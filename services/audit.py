"""Every staff action and every refusal is written here, in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models import AuditEntry


async def record(
    session: AsyncSession,
    action: str,
    *,
    actor_id: int | None = None,
    actor_label: str = "",
    outcome: str = "ok",
    at: datetime | None = None,
    **detail: Any,
) -> None:
    """`at`: the caller's clock, where the entry is counted against it later (by default the
    time of writing)."""
    session.add(
        AuditEntry(
            at=at or datetime.now(UTC),
            action=action,
            actor_id=actor_id,
            actor_label=actor_label,
            outcome=outcome,
            detail=detail,
        )
    )


OPERATOR = "operator"


async def staff_action(
    session: AsyncSession, action: str, actor_id: int | None, at: datetime, **detail: Any
) -> None:
    """A change staff make in chat (`actor_id`), or the operator on the command line (None)."""
    await record(
        session,
        action,
        actor_id=actor_id,
        actor_label="" if actor_id is not None else OPERATOR,
        at=at,
        **detail,
    )
