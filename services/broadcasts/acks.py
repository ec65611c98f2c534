"""Acknowledgement of urgent notices: [Got it] (or "1" on WeChat) recorded once per person;
after N hours the notice goes again to those who have not acknowledged (once or twice), and then
each building head gets the list of their residents who still have not, with rooms, to knock
on their doors — the offline path for residents without phones or who do not read them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Broadcast, BroadcastAck, BroadcastDelivery, Building, Household, Person
from services import people
from services.broadcasts import audience
from services.broadcasts.compose import CANCELLED, SCHEDULED, queue_rows
from services.broadcasts.deliveries import SENT
from services.sql import insert_ignoring_conflict

ACK_TICKET = "broadcast.ack"


async def acknowledge(
    session: AsyncSession, broadcast_id: int, person_id: int, channel: str, now: datetime
) -> bool:
    """True the first time; pressing again changes nothing."""
    return await insert_ignoring_conflict(
        session,
        BroadcastAck.__table__,  # type: ignore[arg-type]
        {"broadcast_id": broadcast_id, "person_id": person_id, "at": now, "channel": channel},
    )


async def asking(session: AsyncSession, author_id: int | None, *, limit: int) -> list[Broadcast]:
    """The latest broadcasts under way or done that asked for acknowledgement, newest first;
    one author's, or everyone's (None)."""
    query = select(Broadcast).where(Broadcast.ack, Broadcast.status.not_in((SCHEDULED, CANCELLED)))
    if author_id is not None:
        query = query.where(Broadcast.author_id == author_id)
    return list((await session.scalars(query.order_by(Broadcast.id.desc()).limit(limit))).all())


async def acknowledged(session: AsyncSession, broadcast_id: int) -> set[int]:
    return set(
        await session.scalars(
            select(BroadcastAck.person_id).where(BroadcastAck.broadcast_id == broadcast_id)
        )
    )


@dataclass(frozen=True)
class Policy:
    resend_after: timedelta
    resends: int  # 0, 1 or 2
    doorknock_after: timedelta


async def resend_due(session: AsyncSession, now: datetime, policy: Policy) -> list[int]:
    """Broadcasts whose re-send is due go again, privately, to those who had it and have not
    acknowledged, each re-send once (claimed by a conditional update)."""
    due = (
        await session.scalars(
            select(Broadcast.id).where(
                Broadcast.ack,
                Broadcast.status.not_in((SCHEDULED, CANCELLED)),
                Broadcast.resends < policy.resends,
                Broadcast.next_resend_at <= now,
            )
        )
    ).all()
    resent = []
    for broadcast_id in due:
        last = await session.scalar(select(Broadcast.resends).where(Broadcast.id == broadcast_id))
        assert last is not None
        final = last + 1 >= policy.resends
        claimed = await session.scalar(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.resends == last)
            .values(
                resends=last + 1,
                status="sending",
                finished_at=None,
                # After the last re-send, the same wait before the door-knock lists.
                next_resend_at=now + (policy.doorknock_after if final else policy.resend_after),
            )
            .returning(Broadcast.id)
        )
        if claimed is None:
            continue
        done = await acknowledged(session, broadcast_id)
        reached = (
            await session.execute(
                select(
                    BroadcastDelivery.person_id,
                    BroadcastDelivery.channel,
                    BroadcastDelivery.chat_id,
                    BroadcastDelivery.locale,
                ).where(
                    BroadcastDelivery.broadcast_id == broadcast_id,
                    BroadcastDelivery.round == 0,
                    BroadcastDelivery.status == SENT,
                    BroadcastDelivery.person_id.is_not(None),
                )
            )
        ).all()
        rows: list[dict[str, object]] = [
            {
                "person_id": person_id,
                "group_chat_id": None,
                "channel": channel,
                "chat_id": chat_id,
                "locale": locale,
            }
            for person_id, channel, chat_id, locale in reached
            if person_id not in done
        ]
        await queue_rows(session, broadcast_id, rows, round_=last + 1)
        resent.append(broadcast_id)
    return resent


@dataclass(frozen=True)
class Unacknowledged:
    person_id: int
    name: str
    room: str
    reachable: bool  # False: no private chat with the bot at all


async def still_unacknowledged(
    session: AsyncSession, broadcast_id: int
) -> dict[int, list[Unacknowledged]]:
    """By building id: the residents the broadcast is for who have not acknowledged it, by room."""
    broadcast = await session.get(Broadcast, broadcast_id)
    assert broadcast is not None
    wanted = await audience.people_in(session, broadcast.audience)
    missing = wanted - await acknowledged(session, broadcast_id)
    if not missing:
        return {}
    reachable = {r.person_id for r in await audience.chats_of(session, missing)}
    rows = await session.execute(
        select(Person.id, Person.display_name, Household.room, Household.building_id)
        .join(Household, Household.id == Person.household_id)
        .where(Person.id.in_(sorted(missing)))
        .order_by(Household.building_id, Household.room, Person.id)
    )
    found: dict[int, list[Unacknowledged]] = {}
    for person_id, name, room, building_id in rows.all():
        found.setdefault(building_id, []).append(
            Unacknowledged(person_id, name, room, person_id in reachable)
        )
    return found


@dataclass(frozen=True)
class DoorKnock:
    broadcast_id: int
    head_id: int
    building: Building
    residents: list[Unacknowledged]


async def doorknock_due(session: AsyncSession, now: datetime, policy: Policy) -> list[DoorKnock]:
    """After the last re-send and its wait, each building head gets their list, once."""
    due = (
        await session.scalars(
            select(Broadcast.id).where(
                Broadcast.ack,
                Broadcast.status.not_in((SCHEDULED, CANCELLED)),
                Broadcast.resends >= policy.resends,
                Broadcast.doorknock_at.is_(None),
                Broadcast.next_resend_at <= now,
            )
        )
    ).all()
    lists = []
    for broadcast_id in due:
        claimed = await session.scalar(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.doorknock_at.is_(None))
            .values(doorknock_at=now)
            .returning(Broadcast.id)
        )
        if claimed is None:
            continue
        for building_id, residents in (await still_unacknowledged(session, broadcast_id)).items():
            building = await session.get(Building, building_id)
            assert building is not None
            for head in await people.building_heads(session, building_id):
                lists.append(DoorKnock(broadcast_id, head.id, building, residents))
    return lists
