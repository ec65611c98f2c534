"""`linli audit points`: every balance recomputed from the entries, every transfer checked to
sum to zero per unit (with two entries at least), no person below zero, every entry in its
account's unit, and every settled pending award paid by the transfer with its key. A list of
findings, empty when the ledger checks out; the command exits 1 on any."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import PendingAward, PointsAccount, PointsEntry, PointsTransfer


@dataclass(frozen=True)
class Summary:
    transfers: int
    entries: int
    accounts: int


async def summary(session: AsyncSession) -> Summary:
    transfers = await session.scalar(select(func.count()).select_from(PointsTransfer))
    entries = await session.scalar(select(func.count()).select_from(PointsEntry))
    accounts = await session.scalar(select(func.count()).select_from(PointsAccount))
    return Summary(int(transfers or 0), int(entries or 0), int(accounts or 0))


async def audit_points(session: AsyncSession, *, limit: int = 50) -> list[str]:
    """At most `limit` findings of each kind (a tampered table could hold millions)."""
    findings: list[str] = []
    unit = PointsAccount.unit
    sums = (
        select(PointsEntry.transfer_id, unit, func.sum(PointsEntry.amount).label("total"))
        .join(PointsAccount, PointsAccount.id == PointsEntry.account_id)
        .group_by(PointsEntry.transfer_id, unit)
        .having(func.sum(PointsEntry.amount) != 0)
        .order_by(PointsEntry.transfer_id)
        .limit(limit)
    )
    for transfer_id, in_unit, total in (await session.execute(sums)).all():
        findings.append(f"transfer {transfer_id}: its {in_unit} entries sum to {total}, not 0")
    counts = (
        select(PointsEntry.transfer_id, func.count().label("n"))
        .group_by(PointsEntry.transfer_id)
        .subquery()
    )
    thin = (
        select(PointsTransfer.id, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.transfer_id == PointsTransfer.id)
        .where(func.coalesce(counts.c.n, 0) < 2)
        .order_by(PointsTransfer.id)
        .limit(limit)
    )
    for transfer_id, n in (await session.execute(thin)).all():
        findings.append(f"transfer {transfer_id}: {n} entries, a transfer has two at least")
    stray = (
        select(PointsEntry.id)
        .outerjoin(PointsTransfer, PointsTransfer.id == PointsEntry.transfer_id)
        .where(PointsTransfer.id.is_(None))
        .limit(limit)
    )
    for (entry_id,) in (await session.execute(stray)).all():
        findings.append(f"entry {entry_id}: no transfer holds it")
    totals = (
        select(PointsEntry.account_id, func.sum(PointsEntry.amount).label("total"))
        .group_by(PointsEntry.account_id)
        .subquery()
    )
    recomputed = func.coalesce(totals.c.total, 0)
    balances = (
        select(PointsAccount.id, PointsAccount.person_id, unit, PointsAccount.balance, recomputed)
        .outerjoin(totals, totals.c.account_id == PointsAccount.id)
        .where(
            PointsAccount.system.is_(None),
            (PointsAccount.balance != recomputed) | (recomputed < 0),
        )
        .order_by(PointsAccount.id)
        .limit(limit)
    )
    for account_id, person_id, in_unit, stored, total in (await session.execute(balances)).all():
        if stored != total:
            findings.append(
                f"account {account_id} (person {person_id}, {in_unit}): balance {stored}, "
                f"its entries sum to {total}"
            )
        if total < 0:
            findings.append(
                f"account {account_id} (person {person_id}, {in_unit}): below zero ({total})"
            )
    unpaid = (
        select(PendingAward.id, PendingAward.idempotency_key)
        .outerjoin(PointsTransfer, PointsTransfer.idempotency_key == PendingAward.idempotency_key)
        .where(PendingAward.settled_at.is_not(None), PointsTransfer.id.is_(None))
        .order_by(PendingAward.id)
        .limit(limit)
    )
    for award_id, key in (await session.execute(unpaid)).all():
        findings.append(f"pending award {award_id} ({key}): settled, but no transfer pays it")
    return findings
