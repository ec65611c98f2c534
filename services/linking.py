"""`/link`: one person across two apps, joined by a one-time code.

The code is asked for in one app and typed in the other. One of the two people behind them
must be new (not registered, no roles): their identities, and anything else that names them,
move to the other, and they are gone. Two registered people are not merged here: each has a
home, roles and history, and which of them wins is the staff's call, not a code's.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import AuditEntry, Base, Identity, LinkCode, Person, RoleAssignment
from services import audit
from services.sql import is_postgres

CODE_DIGITS = 8
LIFETIME = timedelta(minutes=10)
# Guessing codes: this many wrong ones an hour, then the person waits.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(hours=1)
# Who counts as new: nothing but a first hello to lose.
_UNREGISTERED = ("visitor", "rejected")


class Refusal(enum.StrEnum):
    UNKNOWN = "unknown"  # no such code, or it ran out
    TOO_MANY = "too_many"  # too many wrong codes lately
    SAME_PERSON = "same_person"  # already one person
    SAME_APP = "same_app"  # typed in the app that asked for it
    BOTH_REGISTERED = "both_registered"
    SHARED_APP = "shared_app"  # both already use one app with different accounts


@dataclass(frozen=True)
class Linked:
    person_id: int  # the one person they are now
    merged_id: int  # the one who is gone
    channels: tuple[str, ...]  # the apps that person now uses


def normalise(typed: str) -> str:
    """ "1234 5678", "1234-5678" and full-width digits all read as 12345678."""
    digits = "".join(str(int(c)) for c in typed if c.isdigit())
    return digits if len(digits) == CODE_DIGITS else ""


async def issue(session: AsyncSession, person_id: int, channel: str, now: datetime) -> str:
    """A new code for this person, the only one they hold."""
    await session.execute(delete(LinkCode).where(LinkCode.person_id == person_id))
    while True:
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        if await session.get(LinkCode, code) is None:
            break
    session.add(
        LinkCode(
            code=code,
            person_id=person_id,
            channel=channel,
            created_at=now,
            expires_at=now + LIFETIME,
        )
    )
    return code


async def redeem(
    session: AsyncSession, code: str, person_id: int, channel: str, now: datetime
) -> Linked | Refusal:
    """Join the code's owner and `person_id` (who typed it in `channel`) into one person."""
    if await _failures(session, person_id, now) >= MAX_FAILURES:
        return Refusal.TOO_MANY
    query = select(LinkCode).where(LinkCode.code == code)
    if is_postgres(session):
        query = query.with_for_update()
    found = await session.scalar(query)
    if found is None or found.expires_at <= now:
        # Counted, so that nobody can try every code.
        await audit.record(session, "person.link", actor_id=person_id, outcome="refused", at=now)
        return Refusal.UNKNOWN
    if found.channel == channel:
        return Refusal.SAME_APP
    if found.person_id == person_id:
        return Refusal.SAME_PERSON
    owner, typist = found.person_id, person_id
    if await _is_new(session, typist):
        keep, gone = owner, typist
    elif await _is_new(session, owner):
        keep, gone = typist, owner
    else:
        return Refusal.BOTH_REGISTERED
    kept_apps = set(await _channels(session, keep))
    gone_apps = set(await _channels(session, gone))
    if kept_apps & gone_apps:
        return Refusal.SHARED_APP
    await session.delete(found)
    await session.execute(delete(LinkCode).where(LinkCode.person_id.in_((keep, gone))))
    await _move_everything(session, gone, keep)
    await session.execute(update(Person).where(Person.id == keep).values(last_channel=channel))
    await session.execute(delete(Person).where(Person.id == gone))
    await audit.record(
        session,
        "person.link",
        actor_id=keep,
        at=now,
        merged=gone,
        channels=sorted(kept_apps | gone_apps),
    )
    return Linked(keep, gone, tuple(sorted(kept_apps | gone_apps)))


async def _failures(session: AsyncSession, person_id: int, now: datetime) -> int:
    counted = await session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(
            AuditEntry.action == "person.link",
            AuditEntry.actor_id == person_id,
            AuditEntry.outcome == "refused",
            AuditEntry.at > now - FAILURE_WINDOW,
        )
    )
    return int(counted or 0)


async def _is_new(session: AsyncSession, person_id: int) -> bool:
    person = await session.get(Person, person_id, populate_existing=True)
    if person is None or person.status not in _UNREGISTERED or person.household_id is not None:
        return False
    has_roles = await session.scalar(select(exists().where(RoleAssignment.person_id == person_id)))
    return not has_roles


async def _channels(session: AsyncSession, person_id: int) -> list[str]:
    return list(
        await session.scalars(select(Identity.channel).where(Identity.person_id == person_id))
    )


async def _move_everything(session: AsyncSession, gone: int, keep: int) -> None:
    """Every row that names the person who goes now names the one who stays: identities,
    open conversations, queued messages, tickets, and whatever later features add, found
    through the foreign keys rather than listed by hand."""
    person_id = Person.__table__.c.id
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if table.name == "person" or not any(
                fk.column is person_id for fk in column.foreign_keys
            ):
                continue
            await session.execute(update(table).where(column == gone).values({column: keep}))
