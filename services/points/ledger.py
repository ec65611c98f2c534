"""The double-entry ledger (issue 12; DESIGN.md "Data that must never be wrong").

A transfer moves value between accounts: its entries sum to zero per unit, all written in the
caller's transaction with the transfer. Its idempotency key makes it happen once: the same key
again returns the first transfer and changes nothing. A person's balance is a column updated
only by a conditional UPDATE (`balance + amount >= 0`) and guarded by a check constraint, so
two redemptions at once cannot overdraw it whatever their interleaving; the one that would is
refused (`Overdrawn`) and its transaction rolled back. System accounts keep no balance of their
own (see models/points.py). Entries and transfers are never updated or deleted (the database
refuses it, migration 0013): a mistake is corrected by `reverse`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, Table, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from models import PointsAccount, PointsEntry, PointsTransfer

POINTS, MINUTES = "points", "minutes"
UNITS = (POINTS, MINUTES)
# System accounts (migration 0013 makes them): where awards come from, where redeemed points
# go, and what covers time-bank help for elderly residents with no minutes.
ISSUING, STORE, TIMEBANK_POOL = "issuing", "store", "timebank_pool"
SYSTEMS = (ISSUING, STORE, TIMEBANK_POOL)

_ACCOUNT: Table = PointsAccount.__table__  # type: ignore[assignment]
_TRANSFER: Table = PointsTransfer.__table__  # type: ignore[assignment]
_ENTRY: Table = PointsEntry.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Account:
    id: int
    unit: str
    system: str | None = None


@dataclass(frozen=True)
class Posting:
    account: Account
    amount: int  # + credits the account, - debits it


@dataclass(frozen=True)
class Transfer:
    id: int
    key: str
    reason: str
    reference: str
    created_at: datetime
    postings: tuple[tuple[int, int], ...]  # (account id, amount)
    # True when the key had been used: this is the first transfer, and nothing changed now.
    replayed: bool = False
    reverses_id: int | None = None


class Unbalanced(ValueError):
    """The postings do not sum to zero per unit, or there are too few: a programming error."""


@dataclass
class Overdrawn(Exception):
    """A person's account would go below zero. Nothing of the transfer is kept once the
    caller's transaction rolls back (the use cases let it)."""

    account_id: int
    unit: str

    def __str__(self) -> str:
        return f"account {self.account_id} ({self.unit}) would go below zero"


_NEW_ACCOUNT = {
    name: insert(_ACCOUNT)
    .values(
        person_id=bindparam("person_id"),
        unit=bindparam("unit"),
        balance=0,
        created_at=bindparam("now"),
    )
    .on_conflict_do_nothing()
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_NEW_SYSTEM_ACCOUNT = {
    name: insert(_ACCOUNT)
    .values(
        system=bindparam("system"), unit=bindparam("unit"), balance=0, created_at=bindparam("now")
    )
    .on_conflict_do_nothing()
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_FIND_ACCOUNT = select(_ACCOUNT.c.id).where(
    _ACCOUNT.c.person_id == bindparam("person_id"), _ACCOUNT.c.unit == bindparam("unit")
)
_SYSTEM_ACCOUNT = select(_ACCOUNT.c.id).where(
    _ACCOUNT.c.system == bindparam("system"), _ACCOUNT.c.unit == bindparam("unit")
)
# SQLite: one writer at a time, and a statement is a call on this thread: the transfer row,
# then each balance, then the entries.
_SQLITE_NEW_TRANSFER = (
    sqlite_insert(_TRANSFER)
    .values({c: bindparam(c) for c in _TRANSFER.c.keys() if c != "id"})
    .on_conflict_do_nothing(index_elements=["idempotency_key"])
    .returning(_TRANSFER.c.id)
)
# The conditional update is the never-negative rule: no row updated means it would overdraw.
_MOVE = (
    update(_ACCOUNT)
    .where(
        _ACCOUNT.c.id == bindparam("account_id"),
        _ACCOUNT.c.system.is_(None),
        _ACCOUNT.c.balance + bindparam("amount") >= 0,
    )
    .values(balance=_ACCOUNT.c.balance + bindparam("amount"))
)
_ENTRIES = _ENTRY.insert()
_EXISTING = select(
    _TRANSFER.c.id,
    _TRANSFER.c.reason,
    _TRANSFER.c.reference,
    _TRANSFER.c.created_at,
    _TRANSFER.c.reverses_id,
).where(_TRANSFER.c.idempotency_key == bindparam("key"))
_POSTINGS = (
    select(_ENTRY.c.account_id, _ENTRY.c.amount)
    .where(_ENTRY.c.transfer_id == bindparam("transfer_id"))
    .order_by(_ENTRY.c.id)
)


def person_account(connection: Connection, person_id: int, unit: str, now: datetime) -> Account:
    """The person's account in this unit, opened on first use."""
    found = connection.execute(_FIND_ACCOUNT, {"person_id": person_id, "unit": unit}).scalar()
    if found is None:
        connection.execute(
            _NEW_ACCOUNT[connection.dialect.name],
            {"person_id": person_id, "unit": unit, "now": now},
        )
        found = connection.execute(_FIND_ACCOUNT, {"person_id": person_id, "unit": unit}).scalar()
    assert found is not None
    return Account(int(found), unit)


def system_account(connection: Connection, system: str, unit: str) -> Account:
    """A system account, opened on first use like a person's."""
    if system not in SYSTEMS:
        raise LookupError(f"no system account {system!r}")
    values = {"system": system, "unit": unit}
    found = connection.execute(_SYSTEM_ACCOUNT, values).scalar()
    if found is None:
        connection.execute(
            _NEW_SYSTEM_ACCOUNT[connection.dialect.name], {**values, "now": datetime.now(UTC)}
        )
        found = connection.execute(_SYSTEM_ACCOUNT, values).scalar()
    assert found is not None
    return Account(int(found), unit, system)


def check_balanced(postings: Sequence[Posting]) -> None:
    if len(postings) < 2:
        raise Unbalanced("a transfer has at least two entries")
    sums: dict[str, int] = defaultdict(int)
    for posting in postings:
        if posting.amount == 0:
            raise Unbalanced("an entry of zero")
        if posting.account.unit not in UNITS:
            raise Unbalanced(f"unknown unit {posting.account.unit!r}")
        sums[posting.account.unit] += posting.amount
    if any(sums.values()):
        raise Unbalanced(f"entries do not sum to zero per unit: {dict(sums)}")


def nets(postings: Sequence[Posting]) -> list[tuple[Account, int]]:
    """What the transfer does to each person's balance, in account id order: the order in
    which accounts are locked, so that two transfers between the same people never wait for
    each other in a circle. A person on both sides of a transfer is moved by the difference
    (the rule is on the balance after the transfer, not between its entries)."""
    moved: dict[int, tuple[Account, int]] = {}
    for posting in postings:
        if posting.account.system is None:
            account, net = moved.get(posting.account.id, (posting.account, 0))
            moved[account.id] = (account, net + posting.amount)
    return [moved[i] for i in sorted(moved) if moved[i][1]]


# PostgreSQL: the whole transfer in one statement, one round trip (the bench's 1,000
# transfers/s is bound by the bot's process as much as by the database): the transfer row,
# unless the key has one already; each person's balance moved if it stays at zero or more,
# each by its primary key and in account id order (the order the final SELECT reads them in,
# so that two transfers between the same people never wait for each other in a circle); the
# entries. A first version matched the accounts to an array and PostgreSQL, the account
# table's statistics saying it was small, scanned all of it: 700-840 transfers/s.
_PG_TRANSFER = """
WITH t AS (
    INSERT INTO points_transfer
        (idempotency_key, reason, reference, note, actor_id, reverses_id, created_at)
    VALUES (:idempotency_key, :reason, :reference, :note, :actor_id, :reverses_id, :created_at)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), entries AS (
    INSERT INTO points_entry (transfer_id, account_id, amount)
    SELECT t.id, e.account_id, e.amount
    FROM t, unnest(:accounts, :amounts) WITH ORDINALITY AS e(account_id, amount, n)
    ORDER BY e.n
){moves}
SELECT (SELECT id FROM t) AS id{moved}
"""
_PG_MOVE = """, m{n} AS (
    UPDATE points_account SET balance = balance + :net{n}
    WHERE id = :mover{n} AND system IS NULL AND balance + :net{n} >= 0
      AND EXISTS (SELECT 1 FROM t)
    RETURNING id
)"""
_PG_RECORDS: dict[int, Any] = {}


def _pg_record(movers: int) -> Any:
    """The statement for a transfer that moves `movers` people's balances."""
    statement = _PG_RECORDS.get(movers)
    if statement is None:
        statement = text(
            _PG_TRANSFER.format(
                moves="".join(_PG_MOVE.format(n=n) for n in range(movers)),
                moved="".join(f", (SELECT count(*) FROM m{n}) AS moved{n}" for n in range(movers)),
            )
        ).bindparams(
            bindparam("accounts", type_=ARRAY(Integer)),
            bindparam("amounts", type_=ARRAY(BigInteger)),
            *(bindparam(f"net{n}", type_=BigInteger) for n in range(movers)),
            *(bindparam(f"mover{n}", type_=Integer) for n in range(movers)),
        )
        _PG_RECORDS[movers] = statement
    return statement


def record(
    connection: Connection,
    key: str,
    reason: str,
    postings: Sequence[Posting],
    now: datetime,
    *,
    reference: str = "",
    note: str | None = None,
    actor_id: int | None = None,
    reverses_id: int | None = None,
) -> Transfer:
    """The transfer, in the caller's transaction; or the first one made with this key.
    Overdrawn leaves part of it written: the caller's transaction (or savepoint) must roll
    back, which letting the exception through does."""
    check_balanced(postings)
    movers = nets(postings)
    row = {
        "idempotency_key": key,
        "reason": reason,
        "reference": reference,
        "note": note,
        "actor_id": actor_id,
        "reverses_id": reverses_id,
        "created_at": now,
    }
    if connection.dialect.name == "postgresql":
        values: dict[str, Any] = {
            **row,
            "accounts": [p.account.id for p in postings],
            "amounts": [p.amount for p in postings],
        }
        for n, (account, net) in enumerate(movers):
            values[f"mover{n}"], values[f"net{n}"] = account.id, net
        made, *moved = connection.execute(_pg_record(len(movers)), values).one()
        if made is not None and not all(moved):
            short = movers[moved.index(0)][0]
            raise Overdrawn(short.id, short.unit)
    else:
        made = connection.execute(_SQLITE_NEW_TRANSFER, row).scalar()
        if made is not None:
            for account, net in movers:
                moving = {"account_id": account.id, "amount": net}
                if not connection.execute(_MOVE, moving).rowcount:
                    raise Overdrawn(account.id, account.unit)
            connection.execute(
                _ENTRIES,
                [
                    {"transfer_id": made, "account_id": p.account.id, "amount": p.amount}
                    for p in postings
                ],
            )
    if made is None:
        first = replay(connection, key)
        assert first is not None  # the key's row conflicted, so it exists
        return first
    return Transfer(
        int(made),
        key,
        reason,
        reference,
        now,
        tuple((p.account.id, p.amount) for p in postings),
        reverses_id=reverses_id,
    )


def replay(connection: Connection, key: str) -> Transfer | None:
    row = connection.execute(_EXISTING, {"key": key}).first()
    if row is None:
        return None
    postings = connection.execute(_POSTINGS, {"transfer_id": row.id}).all()
    return Transfer(
        row.id,
        key,
        row.reason,
        row.reference,
        row.created_at,
        tuple((a, m) for a, m in postings),
        replayed=True,
        reverses_id=row.reverses_id,
    )


async def transfer(
    session: AsyncSession,
    key: str,
    reason: str,
    postings: Sequence[Posting],
    now: datetime,
    **kw: Any,
) -> Transfer:
    def run(sync: Session) -> Transfer:
        sync.flush()
        return record(sync.connection(), key, reason, postings, now, **kw)

    return await session.run_sync(run)


async def account_of(session: AsyncSession, person_id: int, unit: str, now: datetime) -> Account:
    return await session.run_sync(lambda s: person_account(s.connection(), person_id, unit, now))


async def system(session: AsyncSession, name: str, unit: str) -> Account:
    return await session.run_sync(lambda s: system_account(s.connection(), name, unit))


async def reverse(
    session: AsyncSession,
    transfer_id: int,
    now: datetime,
    *,
    reason: str = "reversal",
    actor_id: int | None = None,
    note: str | None = None,
) -> Transfer:
    """The transfer undone by its mirror image, once (its key is the reversed one's id). Like
    any transfer it is refused if a person has spent what it would take back."""

    def run(sync: Session) -> Transfer:
        connection = sync.connection()
        rows = connection.execute(
            select(_ENTRY.c.account_id, _ENTRY.c.amount, _ACCOUNT.c.unit, _ACCOUNT.c.system)
            .join(_ACCOUNT, _ACCOUNT.c.id == _ENTRY.c.account_id)
            .where(_ENTRY.c.transfer_id == transfer_id)
            .order_by(_ENTRY.c.id)
        ).all()
        if not rows:
            raise LookupError(f"no transfer {transfer_id}")
        postings = [Posting(Account(a, unit, system), -amount) for a, amount, unit, system in rows]
        return record(
            connection,
            f"reverse:{transfer_id}",
            reason,
            postings,
            now,
            reference=f"transfer:{transfer_id}",
            note=note,
            actor_id=actor_id,
            reverses_id=transfer_id,
        )

    return await session.run_sync(run)


async def balance(session: AsyncSession, person_id: int, unit: str) -> int:
    found = await session.scalar(
        select(_ACCOUNT.c.balance).where(_ACCOUNT.c.person_id == person_id, _ACCOUNT.c.unit == unit)
    )
    return int(found or 0)


@dataclass(frozen=True)
class Line:
    """One entry of a person's statement."""

    transfer_id: int
    unit: str
    amount: int
    reason: str
    reference: str
    note: str | None
    at: datetime


async def history(
    session: AsyncSession,
    person_id: int,
    *,
    limit: int = 10,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Line]:
    """The person's latest entries, newest first, in every unit."""
    query = (
        select(
            _TRANSFER.c.id,
            _ACCOUNT.c.unit,
            _ENTRY.c.amount,
            _TRANSFER.c.reason,
            _TRANSFER.c.reference,
            _TRANSFER.c.note,
            _TRANSFER.c.created_at,
        )
        .select_from(_ENTRY)
        .join(_ACCOUNT, _ACCOUNT.c.id == _ENTRY.c.account_id)
        .join(_TRANSFER, _TRANSFER.c.id == _ENTRY.c.transfer_id)
        .where(_ACCOUNT.c.person_id == person_id)
        .order_by(_ENTRY.c.id.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(_TRANSFER.c.created_at >= since)
    if until is not None:
        query = query.where(_TRANSFER.c.created_at < until)
    return [Line(*row) for row in (await session.execute(query)).all()]
