"""Making a broadcast: what the preview counts, creating it (now, or scheduled in the
community's time), cancelling a scheduled one until it starts, and starting it, which writes
one delivery row per recipient chat in the same transaction (DESIGN.md "Broadcasts")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Broadcast, BroadcastDelivery
from services import audit
from services.broadcasts import audience

SCHEDULED, SENDING, DONE, CANCELLED = "scheduled", "sending", "done", "cancelled"
INSERT_CHUNK = 1000


@dataclass(frozen=True)
class Preview:
    """Recipient chats per channel: private chats, and group chats (with their channel)."""

    private: dict[str, int]
    groups: dict[str, int]
    # People the audience names who have no private chat with the bot (never wrote, or blocked
    # it): nobody can reach them but a neighbour (the door-knock list).
    unreachable: int

    @property
    def total(self) -> int:
        return sum(self.private.values()) + sum(self.groups.values())


async def preview(
    session: AsyncSession, keys: Sequence[str], *, private: bool, groups: bool
) -> Preview:
    named = await audience.people_in(session, keys) if private else set()
    people = await audience.chats_of(session, named)
    chats = await audience.group_targets(session, keys) if groups else []
    return Preview(
        dict(Counter(r.channel for r in people)),
        dict(Counter(g.channel for g in chats)),
        len(named) - len(people),
    )


async def create(
    session: AsyncSession,
    *,
    author_id: int | None,
    text: str,
    keys: Sequence[str],
    private: bool,
    groups: bool,
    ack: bool,
    send_at: datetime,
    now: datetime,
    media_key: str | None = None,
    media_kind: str = "photo",
    media_name: str | None = None,
    resend_after: timedelta | None = None,
) -> tuple[Broadcast, int]:
    """The broadcast, and how many chats it went to (0 while it waits for its time); audited."""
    if not keys or not (private or groups):
        raise ValueError("a broadcast has an audience and somewhere to go")
    broadcast = Broadcast(
        author_id=author_id,
        text=text,
        media_key=media_key,
        media_kind=media_kind if media_key else None,
        media_name=media_name if media_key else None,
        audience=list(keys),
        private=private,
        groups=groups,
        ack=ack,
        status=SCHEDULED,
        send_at=max(send_at, now),
        created_at=now,
    )
    session.add(broadcast)
    await session.flush()
    await audit.staff_action(
        session,
        "broadcast.create",
        author_id,
        now,
        broadcast=broadcast.id,
        audience=",".join(keys),
        ack=ack,
    )
    queued = 0
    if broadcast.send_at <= now:
        queued = await start(session, broadcast, now, resend_after=resend_after)
    return broadcast, queued


async def start(
    session: AsyncSession,
    broadcast: Broadcast,
    now: datetime,
    *,
    resend_after: timedelta | None = None,
) -> int:
    """One delivery row per recipient chat, the audience as it is now; how many."""
    rows: list[dict[str, object]] = []
    if broadcast.private:
        for person in await audience.recipients(session, broadcast.audience):
            rows.append(
                {
                    "person_id": person.person_id,
                    "group_chat_id": None,
                    "channel": person.channel,
                    "chat_id": person.chat_id,
                    "locale": person.locale or "",
                }
            )
    if broadcast.groups:
        for group in await audience.group_targets(session, broadcast.audience):
            rows.append(
                {
                    "person_id": None,
                    "group_chat_id": group.group_id,
                    "channel": group.channel,
                    "chat_id": group.chat_id,
                    "locale": "",
                }
            )
    await queue_rows(session, broadcast.id, rows, round_=0)
    broadcast.status, broadcast.started_at = SENDING, now
    if broadcast.ack and resend_after is not None:
        broadcast.next_resend_at = now + resend_after
    if not rows:
        broadcast.status, broadcast.finished_at = DONE, now
    await session.flush()
    return len(rows)


async def queue_rows(
    session: AsyncSession, broadcast_id: int, rows: list[dict[str, object]], *, round_: int
) -> None:
    for at in range(0, len(rows), INSERT_CHUNK):
        chunk = [
            {
                **row,
                "broadcast_id": broadcast_id,
                "round": round_,
                "status": "queued",
                "attempts": 0,
            }
            for row in rows[at : at + INSERT_CHUNK]
        ]
        await session.execute(insert(BroadcastDelivery), chunk)


async def start_due(
    session: AsyncSession, now: datetime, *, resend_after: timedelta | None = None
) -> list[int]:
    """The tick: scheduled broadcasts whose time has come start, each once (the status moves
    by a conditional update, so a second tick or worker finds nothing)."""
    started = []
    due = (
        await session.scalars(
            select(Broadcast.id).where(Broadcast.status == SCHEDULED, Broadcast.send_at <= now)
        )
    ).all()
    for broadcast_id in due:
        claimed = await session.scalar(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.status == SCHEDULED)
            .values(status=SENDING)
            .returning(Broadcast.id)
        )
        if claimed is None:
            continue
        broadcast = await session.get(Broadcast, broadcast_id, populate_existing=True)
        assert broadcast is not None
        await start(session, broadcast, now, resend_after=resend_after)
        started.append(broadcast_id)
    return started


async def scheduled(session: AsyncSession, author_id: int | None = None) -> list[Broadcast]:
    """Broadcasts waiting for their time, soonest first; one author's, or everyone's."""
    query = select(Broadcast).where(Broadcast.status == SCHEDULED).order_by(Broadcast.send_at)
    if author_id is not None:
        query = query.where(Broadcast.author_id == author_id)
    return list((await session.scalars(query)).all())


async def cancel(
    session: AsyncSession, broadcast_id: int, now: datetime, *, actor_id: int | None
) -> bool:
    """Until it starts; audited. False when it had started (or was cancelled) already."""
    done = await session.scalar(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == SCHEDULED)
        .values(status=CANCELLED, finished_at=now)
        .returning(Broadcast.id)
    )
    if done is not None:
        await audit.staff_action(
            session,
            "broadcast.cancel",
            actor_id,
            now,
            broadcast=broadcast_id,
        )
    return done is not None
