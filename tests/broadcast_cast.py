"""Many residents at once, for broadcasts (tests and bench/broadcast.py): plain bulk inserts of
people, homes and private chats on one channel, and group chats linked to scopes. Setup, not
what is tested."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from bot.app import Linli
from models import Building, GroupChat, Household, Identity, Person


async def residents_with_chats(
    linli: Linli,
    count: int,
    now: datetime,
    *,
    channel: str = "telegram",
    first_id: int = 700_000,
    building: str | None = None,
    locale: str = "en",
) -> list[str]:
    """`count` active residents spread over the homes (of one building, if named), each with a
    private chat on `channel` whose id is `first_id + n`; their chat ids."""
    async with linli.transaction() as session:
        query = select(Household.id).order_by(Household.id)
        if building is not None:
            query = query.join(Building, Building.id == Household.building_id).where(
                Building.name == building
            )
        homes = list((await session.scalars(query)).all())
        people = await session.execute(
            insert(Person).returning(Person.id),
            [
                {
                    "display_name": f"Resident {n}",
                    "household_id": homes[n % len(homes)],
                    "status": "active",
                    "locale": locale,
                    "last_channel": channel,
                    "created_at": now,
                }
                for n in range(count)
            ],
        )
        ids = sorted(people.scalars().all())
        chats = [str(first_id + n) for n in range(count)]
        await session.execute(
            insert(Identity),
            [
                {
                    "person_id": person,
                    "channel": channel,
                    "external_id": chat,
                    "private_chat_id": chat,
                }
                for person, chat in zip(ids, chats, strict=True)
            ],
        )
    return chats


async def linked_groups(
    linli: Linli, count: int, now: datetime, *, first_id: int = -100_700_000
) -> list[str]:
    """`count` Telegram group chats linked to the whole community; their chat ids."""
    chats = [str(first_id - n) for n in range(count)]
    async with linli.transaction() as session:
        await session.execute(
            insert(GroupChat),
            [
                {
                    "channel": "telegram",
                    "chat_id": chat,
                    "title": f"Group {n}",
                    "scope": "community",
                    "linked_at": now,
                    "seen_at": now,
                }
                for n, chat in enumerate(chats)
            ],
        )
    return chats
