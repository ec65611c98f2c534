"""Throughput of the points ledger, and `linli audit points` over a million entries.

Transfers: `--accounts` residents, each given `--funds` points by an award (setup, not
counted), then `--transfers` transfers of 1-20 points between two of them chosen at random,
`--concurrency` at a time, each through `services.points.ledger.transfer` in a transaction of
its own, as the use cases make them. One that would overdraw its payer is refused whole
(`Overdrawn`), as it must be: counted apart, and checked.

Redemptions: `--redemptions` redemptions of rewards from the store at once (`--concurrency`
at a time) by residents chosen at random, through `services.points.rewards.redeem`: the stock
and the balance checked and taken in one transaction. Refusals (out of stock, too few points)
are counted apart.

Audit: transfers and their entries bulk-loaded until the ledger holds `--entries` entries (COPY
on PostgreSQL, executemany on SQLite; the balances they make written as they must be), then
`linli audit points` as the operator runs it (a separate process).

At the end, the invariants: every transfer sums to zero (the audit), nobody below zero, the
total held by people equal to what the issuing account gave minus what the store took, every
refused transfer left nothing behind, and no reward redeemed beyond its stock.

    .venv/bin/python bench/ledger.py [--db sqlite|postgres|both] [--accounts 1000]
        [--transfers 100000] [--redemptions 5000] [--entries 1000000] [--concurrency 32]

Targets on PostgreSQL (2 cores): >= 1,000 transfers/s; `linli audit points` over 1 M entries
in <= 5 s. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import func, select

from bench.common import (
    ROOT,
    Outcome,
    add_residents,
    drop_database,
    linli_environment,
    machine_busy_seconds,
    met,
    new_database,
    own_cpu_seconds,
    percentile,
    timed_linli,
)
from bot.app import Linli, assemble
from bot.config import load_settings
from bot.database import sqlite_file
from models import PointsAccount, PointsEntry, PointsTransfer
from services.points import ledger, rewards
from services.points.audit import audit_points
from services.points.ledger import ISSUING, POINTS, STORE, Account, Overdrawn, Posting

PG_NAME = "linli_bench_ledger"
KEY = b"bench-voter-key-0123456789abcdef0123456789"
TARGET_TRANSFERS_PER_S = 1000.0  # on PostgreSQL
TARGET_AUDIT_S = 5.0
CHUNK = 100_000  # bulk-loaded transfers generated at once


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    done: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)


async def fund(linli: Linli, people: list[int], amount: int) -> list[Account]:
    """Each resident's account, opened and given `amount` by an award (setup)."""
    now = datetime.now(UTC)
    accounts = []
    async with linli.transaction() as session:
        issuing = await ledger.system(session, ISSUING, POINTS)
        for person in people:
            account = await ledger.account_of(session, person, POINTS, now)
            await ledger.transfer(
                session,
                f"bench:fund:{person}",
                "bench.fund",
                [Posting(account, amount), Posting(issuing, -amount)],
                now,
            )
            accounts.append(account)
    return accounts


async def transfers(
    linli: Linli, accounts: list[Account], count: int, concurrency: int
) -> tuple[Run, float]:
    rng = random.Random(12)
    plan: Iterator[tuple[int, Account, Account, int]] = iter(
        (n, *rng.sample(accounts, 2), rng.randint(1, 20)) for n in range(count)
    )
    run = Run()

    async def worker() -> None:
        for n, paying, paid, amount in plan:
            started = time.perf_counter()
            try:
                async with linli.transaction() as session:
                    await ledger.transfer(
                        session,
                        f"bench:transfer:{n}",
                        "bench.transfer",
                        [Posting(paying, -amount), Posting(paid, amount)],
                        datetime.now(UTC),
                    )
            except Overdrawn:
                run.refused += 1
            except Exception as exc:  # counted and shown: the bench must not hide a failure
                run.errors.append(f"transfer {n}: {type(exc).__name__}: {exc}")
                continue
            else:
                run.done += 1
            run.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return run, time.perf_counter() - started


async def redemptions(
    linli: Linli, people: list[int], count: int, concurrency: int
) -> tuple[Run, float, dict[int, int]]:
    """`count` redemptions of three rewards, whose stock runs out before the requests do."""
    now = datetime.now(UTC)
    stocks = {"Tote bag": (20, count // 4), "Plant": (50, count // 4), "Rice 5 kg": (120, 200)}
    async with linli.transaction() as session:
        made = [
            await rewards.add(
                session,
                name_zh=name,
                name_en=name,
                price=price,
                stock=stock,
                starts_at=now - timedelta(days=1),
                ends_at=now + timedelta(days=30),
                now=now,
            )
            for name, (price, stock) in stocks.items()
        ]
    ids = [reward.id for reward in made]
    rng = random.Random(13)
    plan = iter((n, rng.choice(people), rng.choice(ids)) for n in range(count))
    run = Run()

    async def worker() -> None:
        for n, person, reward_id in plan:
            started = time.perf_counter()
            try:
                async with linli.transaction() as session:
                    result = await rewards.redeem(
                        session, person, reward_id, datetime.now(UTC), key=f"bench:redeem:{n}"
                    )
            except Exception as exc:
                run.errors.append(f"redemption {n}: {type(exc).__name__}: {exc}")
                continue
            if isinstance(result, rewards.Redeemed):
                run.done += 1
            else:
                run.refused += 1
            run.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    held = {reward.id: stocks[reward.name_en][1] for reward in made}
    return run, time.perf_counter() - started, held


def show(kind: str, run: Run, elapsed: float, concurrency: int) -> float:
    rate = run.done / elapsed
    lat = run.latencies or [float("nan")]
    print(
        f"  {kind}: {run.done} in {elapsed:.2f} s: {rate:.0f}/s with {concurrency} at once "
        f"({run.refused} refused as they must be); p50 {percentile(lat, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(lat, 0.99) * 1000:.1f} ms",
        flush=True,
    )
    return rate


# --- the audit of a big ledger --------------------------------------------------------------


def big_rows(
    start_transfer: int, count: int, accounts: list[int], issuing: int, now: datetime
) -> tuple[list[tuple], list[tuple], dict[int, int]]:
    """`count` awards from the issuing account, each to one account: transfers, their two
    entries each, and what they add to each balance."""
    rng = random.Random(start_transfer)
    transfers, entries, added = [], [], dict.fromkeys(accounts, 0)
    for n in range(start_transfer, start_transfer + count):
        account, amount = accounts[n % len(accounts)], rng.randint(1, 9)
        transfers.append((n, f"bench:big:{n}", "bench.big", "", now))
        entries.append((n, account, amount))
        entries.append((n, issuing, -amount))
        added[account] += amount
    return transfers, entries, added


async def load_big(linli: Linli, db: str, url: str, entries: int) -> float:
    """Awards bulk-loaded until the ledger holds `entries` entries; their balances set."""
    started = time.perf_counter()
    async with linli.sessions() as session:
        have = int(await session.scalar(select(func.count()).select_from(PointsEntry)) or 0)
        first = int(await session.scalar(select(func.max(PointsTransfer.id))) or 0) + 1
        accounts = list(
            (
                await session.scalars(
                    select(PointsAccount.id).where(PointsAccount.system.is_(None))
                )
            ).all()
        )
    async with linli.transaction() as session:
        issuing = (await ledger.system(session, ISSUING, POINTS)).id
    todo = max(0, (entries - have) // 2)
    now = datetime.now(UTC)
    added_total = dict.fromkeys(accounts, 0)
    if db == "postgres":
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            for start in range(first, first + todo, CHUNK):
                transfers_rows, entry_rows, added = big_rows(
                    start, min(CHUNK, first + todo - start), accounts, issuing, now
                )
                async with connection.transaction():
                    await connection.copy_records_to_table(
                        "points_transfer",
                        records=transfers_rows,
                        columns=["id", "idempotency_key", "reason", "reference", "created_at"],
                    )
                    await connection.copy_records_to_table(
                        "points_entry",
                        records=entry_rows,
                        columns=["transfer_id", "account_id", "amount"],
                    )
                for account, amount in added.items():
                    added_total[account] += amount
            await connection.execute(
                "SELECT setval('points_transfer_id_seq', (SELECT max(id) FROM points_transfer))"
            )
            await connection.executemany(
                "UPDATE points_account SET balance = balance + $2 WHERE id = $1",
                list(added_total.items()),
            )
            await connection.execute("VACUUM ANALYZE points_entry")
            await connection.execute("VACUUM ANALYZE points_transfer")
        finally:
            await connection.close()
    else:
        path = sqlite_file(linli.database.engine.url)
        assert path is not None
        connection = sqlite3.connect(path)
        try:
            for start in range(first, first + todo, CHUNK):
                transfers_rows, entry_rows, added = big_rows(
                    start, min(CHUNK, first + todo - start), accounts, issuing, now
                )
                connection.executemany(
                    "INSERT INTO points_transfer (id, idempotency_key, reason, reference, "
                    "created_at) VALUES (?, ?, ?, ?, ?)",
                    [(*row[:4], row[4].isoformat(sep=" ")) for row in transfers_rows],
                )
                connection.executemany(
                    "INSERT INTO points_entry (transfer_id, account_id, amount) VALUES (?, ?, ?)",
                    entry_rows,
                )
                for account, amount in added.items():
                    added_total[account] += amount
                connection.commit()
            connection.executemany(
                "UPDATE points_account SET balance = balance + ? WHERE id = ?",
                [(amount, account) for account, amount in added_total.items()],
            )
            connection.commit()
        finally:
            connection.close()
    return time.perf_counter() - started


# --- driver ----------------------------------------------------------------------------------


async def invariants(linli: Linli, outcome: Outcome, stocks: dict[int, int]) -> None:
    async with linli.sessions() as session:
        problems = await audit_points(session)
        held = await session.scalar(
            select(func.coalesce(func.sum(PointsAccount.balance), 0)).where(
                PointsAccount.system.is_(None)
            )
        )
        system = dict(
            (
                await session.execute(
                    select(PointsAccount.system, func.coalesce(func.sum(PointsEntry.amount), 0))
                    .join(PointsEntry, PointsEntry.account_id == PointsAccount.id)
                    .where(PointsAccount.system.is_not(None), PointsAccount.unit == POINTS)
                    .group_by(PointsAccount.system)
                )
            ).all()
        )
        negative = await session.scalar(
            select(func.count()).select_from(PointsAccount).where(PointsAccount.balance < 0)
        )
        overdrawn_left = await session.scalar(
            select(func.count())
            .select_from(PointsTransfer)
            .outerjoin(PointsEntry, PointsEntry.transfer_id == PointsTransfer.id)
            .where(PointsEntry.id.is_(None))
        )
        redeemed = await rewards.redeemed_counts(session)
    issued, stored = -int(system.get(ISSUING, 0)), int(system.get(STORE, 0))
    print(
        f"  invariants: audit {len(problems)} findings; people hold {held}, issued {issued}, "
        f"the store took {stored}; {negative} accounts below zero; {overdrawn_left} transfers "
        f"without entries; redeemed per reward {redeemed} within stocks {stocks}",
        flush=True,
    )
    if problems:
        outcome.fail(f"the audit found {len(problems)} problems, e.g. {problems[:3]}")
    if held != issued - stored:
        outcome.fail(f"people hold {held}, but {issued} were issued and {stored} redeemed")
    if negative or overdrawn_left:
        outcome.fail("an account below zero or a refused transfer left behind")
    for reward_id, stock in stocks.items():
        if redeemed.get(reward_id, 0) > stock:
            outcome.fail(f"reward {reward_id}: {redeemed[reward_id]} redeemed, stock {stock}")


async def bench(db: str, args: argparse.Namespace) -> Outcome:
    outcome = Outcome()
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-ledger-"))
    url = await new_database(db, workdir, PG_NAME)
    env = linli_environment(url, workdir, KEY)
    try:
        linli = assemble(load_settings(ROOT / "bot.toml", environ=env))
        try:
            await linli.init()
            started = time.perf_counter()
            people = await add_residents(linli, args.accounts, datetime.now(UTC))
            accounts = await fund(linli, people, args.funds)
            print(
                f"{db}: {len(accounts)} residents' accounts opened and funded with "
                f"{args.funds} points each ({time.perf_counter() - started:.1f} s, not counted)",
                flush=True,
            )
            cpu, machine = own_cpu_seconds(), machine_busy_seconds()
            run, elapsed = await transfers(linli, accounts, args.transfers, args.concurrency)
            cpu, machine = own_cpu_seconds() - cpu, machine_busy_seconds() - machine
            rate = show("transfers", run, elapsed, args.concurrency)
            outcome.figures["transfers_per_s"] = rate
            print(
                f"  CPU while transferring: this process {cpu * 100 / elapsed:.0f} % of a core, "
                f"the rest (the database server included) {(machine - cpu) * 100 / elapsed:.0f} %"
                " of a core",
                flush=True,
            )
            if db == "postgres":
                print(
                    f"  target >= {TARGET_TRANSFERS_PER_S:.0f} transfers/s on PostgreSQL: "
                    f"{met(rate >= TARGET_TRANSFERS_PER_S)}",
                    flush=True,
                )
            stocks: dict[int, int] = {}
            if args.redemptions:
                redeemed, seconds, stocks = await redemptions(
                    linli, people, args.redemptions, args.concurrency
                )
                outcome.figures["redemptions_per_s"] = show(
                    "redemptions", redeemed, seconds, args.concurrency
                )
                run.errors += redeemed.errors
            if run.errors:
                outcome.fail(f"{len(run.errors)} failed, e.g. {run.errors[:3]}")
            await invariants(linli, outcome, stocks)
            if args.entries:
                loaded = await load_big(linli, db, url, args.entries)
                async with linli.sessions() as session:
                    total = await session.scalar(select(func.count()).select_from(PointsEntry))
                print(f"  {total} entries in the ledger ({loaded:.1f} s loading, not counted)")
                seconds, status, out, err, rss = await timed_linli(env, "audit", "points")
                outcome.figures["audit_s"] = seconds
                said = (out.strip() or err.strip()).splitlines()
                print(
                    f"  `linli audit points`: {seconds:.2f} s, exit {status} "
                    f"({said[0] if said else 'no output'}), peak RSS {rss:.0f} MB; target <= "
                    f"{TARGET_AUDIT_S:.0f} s: {met(seconds <= TARGET_AUDIT_S)}",
                    flush=True,
                )
                if status != 0:
                    outcome.fail(f"linli audit points exited {status}: {err[-500:]}")
        finally:
            await linli.close()
    finally:
        await drop_database(db, PG_NAME)
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome


async def main(args: argparse.Namespace) -> int:
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(
        f"bench/ledger.py accounts={args.accounts} transfers={args.transfers} "
        f"redemptions={args.redemptions} entries={args.entries} concurrency={args.concurrency} "
        f"db={args.db} cores={os.cpu_count()} load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = {db: await bench(db, args) for db in databases}
    print()
    print("| database | transfers/s | redemptions/s | `linli audit points` s |")
    print("|---|---|---|---|")
    for db, outcome in results.items():
        f = outcome.figures
        cells = [
            f"{f['transfers_per_s']:.0f}" if "transfers_per_s" in f else "-",
            f"{f['redemptions_per_s']:.0f}" if "redemptions_per_s" in f else "-",
            f"{f['audit_s']:.2f}" if "audit_s" in f else "-",
        ]
        print(f"| {db} | {' | '.join(cells)} |")
    ok = all(o.ok for o in results.values())
    print("result: OK (invariants hold)" if ok else "result: FAILED (see the FAIL lines)")
    return 0 if ok else 1


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--funds", type=int, default=500, help="points each account starts with")
    parser.add_argument("--transfers", type=int, default=100_000)
    parser.add_argument("--redemptions", type=int, default=5000)
    parser.add_argument("--entries", type=int, default=1_000_000, help="ledger size audited")
    parser.add_argument("--concurrency", type=int, default=32)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
