"""Throughput of the voting service, and the tally and the audit of a poll of 1 M ballots.

Casting: N simulated residents (active, each in a household of the community's buildings)
each cast one ballot in one community poll, `--concurrency` at a time, every ballot through
`services.voting.ballots.cast` in a transaction of its own (`Database.transaction`, as the bot
does: on SQLite the database layer queues writers; on PostgreSQL ballots are written side by
side and each leaf is placed in the log by a trigger at its commit), earning the pending points of bot.toml's `[points.rules] vote_cast` as
in the bot. Then the checks that no ballot was counted twice: one ballot row per resident,
N + 1 leaves numbered 1..N + 1 with distinct receipts, one pending award per resident, the
audit finds nothing, and the published counts add up to N.

Tally and audit: a second poll (anonymous, up to two choices of four) with `--big` ballots and
their `--big` + 1 leaves bulk-loaded (COPY on PostgreSQL, executemany on SQLite; entries built
and hashed exactly as `cast` does, after the poll's own seed leaf), then `polls.tally` (the SQL
tally), `polls.close` (tally, eligibility and the tree's root), `audit_poll` in this process,
and `linli audit poll ID` as the operator runs it (a separate process).

    .venv/bin/python bench/voting.py [--db sqlite|postgres|both] [--ballots 20000]
                                     [--big 1000000] [--concurrency 32] [--profile-audit]

Targets (2 cores): >= 500 ballots/s on PostgreSQL; a tally of 1 M ballots in <= 2 s; `linli
audit poll` over 1 M ballots in <= 20 s. Setup time is printed, never counted in a figure.
Exit status 1 if any check of correctness fails (a double count, a refused or failed ballot, an
audit mismatch, a wrong tally).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import math
import os
import pstats
import random
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from models import Ballot, BallotEvent, PendingAward, Poll
from services.scopes import COMMUNITY, Scope
from services.voting import ballots, keys, polls
from services.voting.audit import audit_poll

PG_NAME = "linli_bench_voting"
KEY = b"bench-voter-key-0123456789abcdef0123456789"
PER_HOUSEHOLD = 2  # residents per home
OPTIONS = ["Yes", "No", "Later"]
BIG_OPTIONS = ["Green", "Blue", "Red", "Leave it"]
CHUNK = 50_000  # big-poll rows generated and loaded at once
SQLITE_COMMIT_EVERY = 200_000  # rows per transaction of the SQLite bulk load
TARGET_BALLOTS_PER_S = 500.0  # on PostgreSQL
TARGET_TALLY_S = 2.0
TARGET_AUDIT_S = 20.0


# --- setup ---------------------------------------------------------------------------------


async def community_poll(
    linli: Linli, question: str, options: list[str], **kw: Any
) -> tuple[int, str]:
    now = datetime.now(UTC)
    async with linli.transaction() as session:
        poll = await polls.create(
            session,
            Scope(COMMUNITY),
            question,
            options,
            deadline=now + timedelta(days=3),
            now=now,
            **kw,
        )
        return poll.id, poll.seed


# --- casting -------------------------------------------------------------------------------


@dataclass
class Casting:
    latencies: list[float] = field(default_factory=list)
    receipts: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def cast_all(
    linli: Linli, poll_id: int, votes: list[tuple[int, int]], concurrency: int
) -> tuple[Casting, float]:
    """Every (person, option) through `ballots.cast`, one transaction each, `concurrency`
    tasks taking the next vote from one queue; the wall time."""
    done = Casting()
    queue: Iterator[tuple[int, int]] = iter(votes)
    points = linli.settings.points.rules.vote_cast  # as the bot passes it (handlers/voting.py)

    async def worker() -> None:
        for person_id, option in queue:
            started = time.perf_counter()
            try:
                async with linli.transaction() as session:
                    receipt = await ballots.cast(
                        session,
                        poll_id,
                        person_id,
                        [option],
                        datetime.now(UTC),
                        KEY,
                        points=points,
                    )
            except Exception as exc:
                done.errors.append(f"person {person_id}: {type(exc).__name__}: {exc}")
                continue
            done.latencies.append(time.perf_counter() - started)
            if isinstance(receipt, ballots.Receipt) and not (receipt.changed or receipt.unchanged):
                done.receipts.append(receipt.digest)
            else:
                done.refused.append(f"person {person_id}: {receipt}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - started


async def casting_phase(linli: Linli, db: str, args: argparse.Namespace, outcome: Outcome) -> None:
    n = args.ballots
    started = time.perf_counter()
    residents = await add_residents(linli, n, datetime.now(UTC), PER_HOUSEHOLD)
    poll_id, _ = await community_poll(linli, "Open the roof garden on Sundays?", OPTIONS)
    print(
        f"  setup: {len(residents)} active residents in "
        f"{math.ceil(n / PER_HOUSEHOLD)} homes, community poll {poll_id} "
        f"({time.perf_counter() - started:.1f} s, not counted)",
        flush=True,
    )
    if len(residents) != n:
        outcome.fail(f"{len(residents)} residents in the database, {n} meant")
    rng = random.Random(11)
    votes = [(person_id, rng.randrange(len(OPTIONS))) for person_id in residents]
    rng.shuffle(votes)
    expected = [0] * len(OPTIONS)
    for _, option in votes:
        expected[option] += 1

    cpu_before, machine_before = own_cpu_seconds(), machine_busy_seconds()
    done, elapsed = await cast_all(linli, poll_id, votes, args.concurrency)
    cpu = own_cpu_seconds() - cpu_before
    machine = machine_busy_seconds() - machine_before
    rate = len(done.receipts) / elapsed
    outcome.figures["ballots_per_s"] = rate
    lat = done.latencies or [float("nan")]
    print(
        f"  cast: {len(done.receipts)} ballots in {elapsed:.2f} s: {rate:.0f} ballots/s with "
        f"{args.concurrency} at once; per ballot p50 {statistics.median(lat) * 1000:.1f} ms, "
        f"p99 {percentile(lat, 0.99) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms",
        flush=True,
    )
    cores = os.cpu_count() or 1
    print(
        f"  CPU while casting: this process {cpu * 1000 / max(1, len(done.latencies)):.2f} ms/"
        f"ballot ({cpu * 100 / elapsed:.0f} % of a core); machine busy "
        f"{machine * 100 / (elapsed * cores):.0f} % of {cores} cores "
        f"(other processes, the database server included: "
        f"{max(0.0, machine - cpu) * 100 / elapsed:.0f} % of a core)",
        flush=True,
    )
    if db == "postgres":
        target = rate >= TARGET_BALLOTS_PER_S
        print(f"  target >= {TARGET_BALLOTS_PER_S:.0f} ballots/s on PostgreSQL: {met(target)}")
    for kind, problems in (("refused", done.refused), ("failed", done.errors)):
        if problems:
            outcome.fail(f"{len(problems)} ballots {kind}, e.g. {problems[:3]}")

    # Zero double counts: one row per voter, one leaf per ballot, and the audit agrees.
    async with linli.sessions() as session:
        rows, voters, people = (
            await session.execute(
                select(
                    func.count(),
                    func.count(func.distinct(Ballot.voter)),
                    func.count(func.distinct(Ballot.person_id)),
                ).where(Ballot.poll_id == poll_id)
            )
        ).one()
        leaves, first, last, digests = (
            await session.execute(
                select(
                    func.count(),
                    func.min(BallotEvent.index),
                    func.max(BallotEvent.index),
                    func.count(func.distinct(BallotEvent.digest)),
                ).where(BallotEvent.poll_id == poll_id)
            )
        ).one()
        voted = set(
            await session.scalars(select(Ballot.person_id).where(Ballot.poll_id == poll_id))
        )
        awarded, awarded_people = (
            await session.execute(
                select(func.count(), func.count(func.distinct(PendingAward.person_id))).where(
                    PendingAward.idempotency_key.startswith(f"poll:{poll_id}:vote:")
                )
            )
        ).one()
        started = time.perf_counter()
        problems = await audit_poll(session, poll_id)
        audit_open = time.perf_counter() - started
    print(
        f"  stored: {rows} ballots from {voters} voters ({people} residents), {leaves} leaves "
        f"numbered {first}..{last} with {digests} distinct receipts, "
        f"{awarded} pending awards for {awarded_people} residents; "
        f"audit of the open poll {audit_open:.2f} s: {len(problems or [])} mismatches",
        flush=True,
    )
    if not rows == voters == people == n or voted != set(residents):
        outcome.fail(f"{rows} ballot rows for {voters} voters; one each of {n} was expected")
    if not leaves == digests == n + 1 or (first, last) != (1, n + 1):
        outcome.fail(f"{leaves} leaves numbered {first}..{last}; 1..{n + 1} was expected")
    wanted = n if linli.settings.points.rules.vote_cast else 0
    if not awarded == awarded_people == wanted:
        outcome.fail(f"{awarded} pending awards for {awarded_people} residents; {wanted} expected")
    if len(set(done.receipts)) != len(done.receipts):
        outcome.fail("two ballots got the same receipt")
    if problems:
        outcome.fail(f"the audit found {len(problems)} mismatches, e.g. {problems[:3]}")

    async with linli.transaction() as session:
        closed = await polls.close(session, poll_id, datetime.now(UTC), KEY)
    assert closed is not None
    results = closed.results
    print(
        f"  closed: counts {results.counts} (sum {sum(results.counts)}), turnout "
        f"{results.turnout} of {results.eligible} eligible, {results.size} leaves",
        flush=True,
    )
    if results.counts != expected or sum(results.counts) != n:
        outcome.fail(f"published counts {results.counts}; the residents cast {expected}")
    if (results.turnout, results.eligible, results.size) != (n, n, n + 1):
        outcome.fail("turnout, eligibility or the log's size is off")
    async with linli.sessions() as session:
        problems = await audit_poll(session, poll_id)
    if problems:
        outcome.fail(f"the audit of the closed poll found {problems[:3]}")


# --- the big poll --------------------------------------------------------------------------


def big_rows(
    poll_id: int, count: int, now: datetime, rng: random.Random, expected: list[int]
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Chunks of (ballot rows, leaf rows), leaves 2..count + 1, built as `ballots.cast` builds
    them: an anonymous voter's token, the canonical entry with its salt, its leaf hash. The
    leaves are given their places here: PostgreSQL loads them with triggers off (the trigger
    that appends a cast ballot's leaf at its commit, migration 0011, would take a turn per
    ballot), SQLite has its trigger append them as it does for a cast ballot."""
    for start in range(0, count, CHUNK):
        ballot_rows: list[tuple[Any, ...]] = []
        leaf_rows: list[tuple[Any, ...]] = []
        for i in range(start, min(count, start + CHUNK)):
            index = i + 2
            voter = keys.voter_token(KEY, poll_id, f"person:{i + 1}")
            picks = sorted(rng.sample(range(len(BIG_OPTIONS)), 1 if rng.random() < 0.7 else 2))
            for n in picks:
                expected[n] += 1
            encoded, digest = ballots.leaf_of(
                poll_id, voter, picks, False, None, secrets.token_hex(16)
            )
            ballot_rows.append(
                (poll_id, voter, None, ballots.mask_of(picks), False, encoded.decode(), digest, now)
            )
            leaf_rows.append((poll_id, index, encoded.decode(), digest, now))
        yield ballot_rows, leaf_rows


BALLOT_COLUMNS = [
    "poll_id",
    "voter",
    "person_id",
    "choices",
    "proxy",
    "entry",
    "receipt",
    "updated_at",
]
LEAF_COLUMNS = ["poll_id", "index", "entry", "digest", "at"]


async def load_big_postgres(
    url: str, poll_id: int, chunks: Iterator[tuple[list[Any], list[Any]]], size: int
) -> float:
    """COPY, in one transaction; the seconds spent generating the rows (in Python)."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    generating = 0.0
    try:
        async with connection.transaction():
            # Triggers (and foreign-key checks) off for this load: the rows are consistent.
            await connection.execute("SET LOCAL session_replication_role = replica")
            while True:
                started = time.perf_counter()
                chunk = next(chunks, None)
                generating += time.perf_counter() - started
                if chunk is None:
                    break
                await connection.copy_records_to_table(
                    "ballot", records=chunk[0], columns=BALLOT_COLUMNS
                )
                await connection.copy_records_to_table(
                    "ballot_event", records=chunk[1], columns=LEAF_COLUMNS
                )
    finally:
        await connection.close()
    return generating


def load_big_sqlite(
    path: str,
    poll_id: int,
    chunks: Iterator[tuple[list[Any], list[Any]]],
    size: int,
    stamp: Any,
) -> float:
    """executemany, SQLITE_COMMIT_EVERY rows to a transaction; the seconds spent generating."""
    connection = sqlite3.connect(path, isolation_level=None)
    generating = 0.0
    try:
        connection.execute("PRAGMA foreign_keys=ON")
        in_transaction = 0
        connection.execute("BEGIN IMMEDIATE")
        while True:
            started = time.perf_counter()
            chunk = next(chunks, None)
            generating += time.perf_counter() - started
            if chunk is None:
                break
            # The trigger appends each ballot's leaf, in this order (the chunk's leaf rows).
            connection.executemany(
                f"INSERT INTO ballot ({', '.join(BALLOT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row[:-1], stamp) for row in chunk[0]],
            )
            in_transaction += len(chunk[0])
            if in_transaction >= SQLITE_COMMIT_EVERY:
                connection.execute("COMMIT")
                connection.execute("BEGIN IMMEDIATE")
                in_transaction = 0
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return generating


async def big_phase(
    linli: Linli, db: str, url: str, env: dict[str, str], args: argparse.Namespace, outcome: Outcome
) -> None:
    big = args.big
    started = time.perf_counter()
    poll_id, _ = await community_poll(
        linli, "Which colour for the bike shed?", BIG_OPTIONS, anonymous=True, max_choices=2
    )
    now = datetime.now(UTC)
    expected = [0] * len(BIG_OPTIONS)
    chunks = big_rows(poll_id, big, now, random.Random(12), expected)
    if db == "postgres":
        generating = await load_big_postgres(url, poll_id, chunks, big + 1)
    else:
        path = sqlite_file(linli.db.url)
        assert path is not None
        # The column's own conversion, as SQLAlchemy stores a datetime in SQLite.
        column_type = Ballot.__table__.c.updated_at.type
        stamp_of = column_type.dialect_impl(linli.db.dialect).bind_processor(linli.db.dialect)
        stamp = stamp_of(now) if stamp_of else now
        generating = await asyncio.to_thread(load_big_sqlite, path, poll_id, chunks, big + 1, stamp)
    loaded = time.perf_counter() - started
    tidy = ""
    if db == "postgres":
        # What autovacuum does on its own after a load this size (hint bits, visibility map,
        # statistics); here now, so the timings below don't include that one-off work.
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            mark = time.perf_counter()
            await connection.execute("VACUUM ANALYZE ballot")
            await connection.execute("VACUUM ANALYZE ballot_event")
            tidy = f", VACUUM ANALYZE {time.perf_counter() - mark:.1f} s"
        finally:
            await connection.close()
    print(
        f"  setup: poll {poll_id} with {big} ballots and {big + 1} leaves bulk-loaded in "
        f"{loaded:.1f} s (of which {generating:.1f} s building and hashing the entries in "
        f"Python){tidy}; not counted",
        flush=True,
    )

    # The tally: one SQL pass over the poll's ballots.
    tallies = []
    async with linli.sessions() as session:
        poll = await session.get(Poll, poll_id)
        assert poll is not None
        for _ in range(3):
            mark = time.perf_counter()
            counts, turnout = await polls.tally(session, poll)
            tallies.append(time.perf_counter() - mark)
    tally = statistics.median(tallies)
    outcome.figures["tally_s"] = tally
    print(
        f"  tally of {turnout} ballots: {tally:.2f} s (median of 3: "
        f"{', '.join(f'{t:.2f}' for t in tallies)} s); counts {counts}; target <= "
        f"{TARGET_TALLY_S:.0f} s: {met(tally <= TARGET_TALLY_S)}",
        flush=True,
    )
    if counts != expected or turnout != big:
        outcome.fail(f"tally {counts} of {turnout}; the load holds {expected} of {big}")

    # Closing publishes the counts and the root of the 1 M-leaf tree.
    mark = time.perf_counter()
    async with linli.transaction() as session:
        closed = await polls.close(session, poll_id, datetime.now(UTC), KEY)
    closing = time.perf_counter() - mark
    assert closed is not None
    outcome.figures["close_s"] = closing
    print(
        f"  close (tally, eligibility, root of {closed.results.size} leaves): {closing:.2f} s",
        flush=True,
    )

    # The audit: in this process, then as the operator runs it.
    profiler = cProfile.Profile() if args.profile_audit else None
    async with linli.sessions() as session:
        mark = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        problems = await audit_poll(session, poll_id)
        if profiler is not None:
            profiler.disable()
        audited = time.perf_counter() - mark
    outcome.figures["audit_s"] = audited
    print(
        f"  audit_poll in process: {audited:.2f} s, {len(problems or [])} mismatches"
        + (" (under cProfile: slower)" if profiler else ""),
        flush=True,
    )
    if problems:
        outcome.fail(f"the audit found {len(problems)} mismatches, e.g. {problems[:3]}")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print("\n".join("    " + line for line in out.getvalue().splitlines() if line.strip()))

    cli, returncode, out, err, rss = await timed_linli(env, "audit", "poll", str(poll_id))
    outcome.figures["cli_audit_s"] = cli
    said = (out.strip() or err.strip()).splitlines()
    print(
        f"  `linli audit poll {poll_id}`: {cli:.2f} s, exit {returncode} "
        f"({said[0] if said else 'no output'}), peak RSS {rss:.0f} MB; target <= "
        f"{TARGET_AUDIT_S:.0f} s: {met(cli <= TARGET_AUDIT_S)}",
        flush=True,
    )
    if returncode != 0:
        outcome.fail(f"linli audit poll exited {returncode}: {err[-500:]}")


# --- driver --------------------------------------------------------------------------------


async def bench(db: str, args: argparse.Namespace) -> Outcome:
    outcome = Outcome()
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-voting-"))
    url = await new_database(db, workdir, PG_NAME)
    env = linli_environment(url, workdir, KEY)
    try:
        started = time.perf_counter()
        linli = assemble(load_settings(ROOT / "bot.toml", environ=env))
        try:
            await linli.init()  # the project's migrations, the community from bot.toml
            print(
                f"{db}: schema migrated and community loaded in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
            if args.ballots:
                await casting_phase(linli, db, args, outcome)
            if args.big:
                await big_phase(linli, db, url, env, args, outcome)
            # What the bench loaded, to compare sizes between databases.
            async with linli.sessions() as session:
                stored = await session.scalar(select(func.count()).select_from(Ballot))
            print(f"  database: {stored} ballots stored in all", flush=True)
        finally:
            await linli.close()
    finally:
        await drop_database(db, PG_NAME)
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome


async def main(args: argparse.Namespace) -> int:
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(
        f"bench/voting.py ballots={args.ballots} concurrency={args.concurrency} big={args.big} "
        f"db={args.db} cores={os.cpu_count()} load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = {}
    for db in databases:
        results[db] = await bench(db, args)
    print()
    print("| database | ballots/s | tally s | close s | audit_poll s | linli audit poll s |")
    print("|---|---|---|---|---|---|")
    for db, outcome in results.items():
        f = outcome.figures
        cells = [f.get(k) for k in ("ballots_per_s", "tally_s", "close_s", "audit_s")]
        cells.append(f.get("cli_audit_s"))
        shown = [
            "-" if v is None else (f"{v:.0f}" if i == 0 else f"{v:.2f}")
            for i, v in enumerate(cells)
        ]
        print(f"| {db} | {' | '.join(shown)} |")
    ok = all(o.ok for o in results.values())
    print(
        "result: OK (no double count, no refused or failed ballot, audits clean, tallies right)"
        if ok
        else "result: FAILED (see the FAIL lines)"
    )
    return 0 if ok else 1


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--ballots", type=int, default=20_000, help="residents casting, one ballot each"
    )
    parser.add_argument(
        "--big", type=int, default=1_000_000, help="ballots of the tallied poll (0: skip)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="ballots cast at once")
    parser.add_argument(
        "--profile-audit",
        action="store_true",
        help="run the in-process audit of the big poll under cProfile and print the top",
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
