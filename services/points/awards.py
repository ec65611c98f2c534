"""Earning points: the one use case features call, `award`, and the settling of pending awards.

An award is first a pending row with its idempotency key, written in the feature's own
transaction (the ballot path writes it inside its one statement, services/voting/ballots.py);
settling turns it into the ledger transfer with the same key, from the community's issuing
account, and marks it settled, in one transaction. `award` settles at once; what is left
pending (ballots, rows from before the ledger, a settling interrupted) the scheduler's tick
settles. The key makes each award paid once whoever settles it and however often; a withdrawn
award (its row deleted before it was settled) is never paid, and one already paid is reversed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from models import PendingAward, PointsTransfer
from services import audit
from services.points import ledger, pending
from services.points.ledger import ISSUING, POINTS, Posting

# Rules (`[points.rules]`) and the reason codes their awards carry.
RULES = {
    "report_accepted": "report.accepted",
    "vote_cast": "poll.vote",
    "proposal_selected": "agenda.selected",
    "volunteer_hour": "timebank.volunteer",
    "sorting_day": "sorting.day",
    "first_registration": "registration.first",
}
MANUAL = "staff.award"
SETTLE_BATCH = 2000

_PENDING: Table = PendingAward.__table__  # type: ignore[assignment]
_UNSETTLED = (
    select(_PENDING.c.person_id, _PENDING.c.points, _PENDING.c.reason, _PENDING.c.idempotency_key)
    .where(_PENDING.c.settled_at.is_(None))
    .order_by(_PENDING.c.id)
    .limit(bindparam("limit"))
)
_SETTLED = (
    update(_PENDING)
    .where(_PENDING.c.idempotency_key == bindparam("key"), _PENDING.c.settled_at.is_(None))
    .values(settled_at=bindparam("now"))
)


def reference_of(key: str) -> str:
    """What an award is for, from its key: "report:12:accepted" → "report:12"."""
    kind, _, rest = key.partition(":")
    number = rest.split(":", 1)[0]
    return f"{kind}:{number}" if number.isdigit() else ""


def _pay(
    connection: Connection,
    person_id: int,
    amount: int,
    reason: str,
    key: str,
    now: datetime,
) -> ledger.Transfer | None:
    """Marked settled first: the row stays locked until the commit, so a withdrawal at the same
    moment waits, then finds it paid and reverses it rather than deleting a row being paid.
    None when another settler or a withdrawal got there first."""
    if not connection.execute(_SETTLED, {"key": key, "now": now}).rowcount:
        return None
    account = ledger.person_account(connection, person_id, POINTS, now)
    issuing = ledger.system_account(connection, ISSUING, POINTS)
    return ledger.record(
        connection,
        key,
        reason,
        [Posting(account, amount), Posting(issuing, -amount)],
        now,
        reference=reference_of(key),
    )


async def award(
    session: AsyncSession,
    person_id: int,
    rule: str,
    amount: int,
    key: str,
    now: datetime,
) -> ledger.Transfer | None:
    """`person_id` earns `amount` under `rule` for the thing `key` names, once per key: None
    when nothing is new (0 points, or the key awarded before)."""
    reason = RULES.get(rule, rule)
    if amount <= 0:
        return None

    def run(sync: Session) -> ledger.Transfer | None:
        sync.flush()
        connection = sync.connection()
        if not pending.record_pending(
            connection, person_id, amount, reason=reason, key=key, now=now
        ):
            return None
        return _pay(connection, person_id, amount, reason, key, now)

    return await session.run_sync(run)


@dataclass(frozen=True)
class Settled:
    paid: int  # awards turned into transfers now
    already: int  # found paid already (by the same key): marked settled, nothing paid again
    skipped: int  # settled or withdrawn meanwhile by someone else


async def settle_pending(
    session: AsyncSession, now: datetime, *, limit: int = SETTLE_BATCH
) -> Settled:
    """Up to `limit` pending awards, oldest first, paid in the caller's transaction."""

    def run(sync: Session) -> Settled:
        connection = sync.connection()
        paid = already = skipped = 0
        for row in connection.execute(_UNSETTLED, {"limit": limit}).all():
            transfer = _pay(
                connection,
                row.person_id,
                row.points,
                row.reason,
                row.idempotency_key,
                now,
            )
            if transfer is None:
                skipped += 1
            elif transfer.replayed:
                already += 1
            else:
                paid += 1
        return Settled(paid, already, skipped)

    return await session.run_sync(run)


async def withdraw(session: AsyncSession, key: str, now: datetime) -> bool:
    """Take an award back: not yet paid, it is deleted (never paid); paid, it is reversed, if
    the person still has the points (spent, they keep them: the reversal is refused and the
    caller's transaction goes on). True when something was taken back."""
    if await pending.withdraw_pending(session, key):
        return True
    paid = await session.scalar(
        select(PointsTransfer.id).where(PointsTransfer.idempotency_key == key)
    )
    if paid is None:
        return False
    try:
        async with session.begin_nested():
            await ledger.reverse(session, paid, now, reason="award.withdrawn")
    except ledger.Overdrawn:
        return False
    return True


async def settle_job(session: AsyncSession, now: datetime) -> int:
    """The scheduler's tick: what is still pending is paid, a batch a tick."""
    return (await settle_pending(session, now)).paid


async def award_by_staff(
    session: AsyncSession,
    person_id: int,
    amount: int,
    note: str,
    now: datetime,
    *,
    rule: str | None = None,
    actor_id: int | None = None,
    key: str | None = None,
) -> ledger.Transfer:
    """Staff (or the operator, `actor_id` None) award points by hand, under a rule or as a
    custom amount, always with a note saying why; audited. Each call is a new award unless
    `key` names one made before."""
    if amount <= 0:
        raise ValueError("an award is of 1 point or more")
    if not note.strip():
        raise ValueError("an award by hand carries a note")
    reason = RULES.get(rule, MANUAL) if rule is not None else MANUAL

    def run(sync: Session) -> ledger.Transfer:
        sync.flush()
        connection = sync.connection()
        account = ledger.person_account(connection, person_id, POINTS, now)
        issuing = ledger.system_account(connection, ISSUING, POINTS)
        return ledger.record(
            connection,
            key or f"staff:{secrets.token_hex(12)}",
            reason,
            [Posting(account, amount), Posting(issuing, -amount)],
            now,
            reference="note",
            note=note.strip(),
            actor_id=actor_id,
        )

    paid = await session.run_sync(run)
    if not paid.replayed:
        await audit.staff_action(
            session,
            "points.award",
            actor_id,
            now,
            person=person_id,
            amount=amount,
            rule=rule or "",
            transfer=paid.id,
        )
    return paid
