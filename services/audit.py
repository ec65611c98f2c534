"""Every staff action and every refusal is written here, in the caller's transaction."""

from __future__ import annotations

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
    **detail: Any,
) -> None:
    session.add(
        AuditEntry(
            action=action,
            actor_id=actor_id,
            actor_label=actor_label,
            outcome=outcome,
            detail=detail,
        )
    )
