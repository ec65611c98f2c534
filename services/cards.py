"""Which platform message shows a card in a chat (DESIGN.md step 3): a later message for the
same card edits that one. Channels call this after sending; features only name their cards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import CardMessage
from services.sql import upsert


@dataclass(frozen=True)
class Shown:
    message_id: str
    has_image: bool


async def find(
    session: AsyncSession, channel: str, chat_id: str, kind: str, subject: str
) -> Shown | None:
    row = (
        await session.execute(
            select(CardMessage.message_id, CardMessage.has_image).where(
                CardMessage.channel == channel,
                CardMessage.chat_id == chat_id,
                CardMessage.kind == kind,
                CardMessage.subject == subject,
            )
        )
    ).first()
    return Shown(row[0], row[1]) if row is not None else None


async def remember(
    session: AsyncSession,
    channel: str,
    chat_id: str,
    kind: str,
    subject: str,
    shown: Shown,
    now: datetime,
) -> None:
    values = {
        "channel": channel,
        "chat_id": chat_id,
        "kind": kind,
        "subject": subject,
        "message_id": shown.message_id,
        "has_image": shown.has_image,
        "updated_at": now,
    }
    await session.run_sync(
        lambda s: upsert(
            s.connection(),
            CardMessage.__table__,  # type: ignore[arg-type]
            values,
            ("message_id", "has_image", "updated_at"),
        )
    )


async def forget(
    session: AsyncSession, channel: str, chat_id: str, kind: str, subject: str
) -> None:
    await session.execute(
        delete(CardMessage).where(
            CardMessage.channel == channel,
            CardMessage.chat_id == chat_id,
            CardMessage.kind == kind,
            CardMessage.subject == subject,
        )
    )
