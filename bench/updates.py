"""Throughput and latency of the whole Telegram path: stub → PTB → engine → database → stub.

The bot runs as a real `linli run` process (polling the Bot API stub over HTTP), so its CPU and
memory are its own; this driver plays N residents who each join with an invite code: /start CODE,
then the two-step registration flow (room, name), then /help.

    .venv/bin/python bench/updates.py [--users 400] [--concurrency 100] [--db sqlite|postgres|both]

Prints updates/s, p50/p99 latency (end to end as the driver sees it, and in-handler as the bot's
own per-update log lines report it), and the bot process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from tests.processes import linli_process, run_linli  # noqa: E402
from tests.telegram_stub import BotApiStub  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LOG_MS = re.compile(r"update channel=telegram .* outcome=(\w+) ms=([\d.]+)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# What a resident types, and a fragment of the answer that must come back before the next step.
STEPS = (
    ("/start {code}", "Which room"),
    ("302", "What is your name"),
    ("Bench Resident", "registered"),
    ("/help", "what you can do"),
)


FINISHED: list[float] = []  # when each answer arrived, for the sustained rate


async def resident(stub: BotApiStub, user_id: int, code: str, latencies: list[float]) -> int:
    for text, fragment in STEPS:
        mark = len(stub.sent)
        started = time.perf_counter()
        stub.send_text(user_id, text.format(code=code), first_name="Bench")
        await stub.wait_for_message(user_id, contains=fragment, after=mark, timeout=60)
        finished = time.perf_counter()
        latencies.append((finished - started) * 1000)
        FINISHED.append(finished)
    return len(STEPS)


async def offered_load(
    stub: BotApiStub, code: str, latencies: list[float], rate: float, users: int
) -> list[int]:
    """Open loop: a new resident every STEPS/rate seconds, whatever the bot's answers take.

    Each resident sends its next message as soon as the previous one is answered, so the bot is
    offered `rate` updates/s while it keeps up; latency is then service time plus queueing.
    """
    interval = len(STEPS) / rate
    tasks = []
    start = time.perf_counter()
    for i in range(users):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(resident(stub, 100_000 + i, code, latencies)))
    return list(await asyncio.gather(*tasks))


async def saturate(
    stub: BotApiStub, code: str, latencies: list[float], users: int, concurrency: int
) -> list[int]:
    """Closed loop: `concurrency` residents at a time, as fast as the bot answers (capacity)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> int:
        async with gate:
            return await resident(stub, 100_000 + i, code, latencies)

    return list(await asyncio.gather(*(one(i) for i in range(users))))


async def bench(db: str, users: int, concurrency: int, rate: float | None) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-"))
    pg_name = None
    if db == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'linli.db'}"
    else:
        pg_name = f"linli_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_name}"
    async with BotApiStub() as stub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
        env.update(
            LINLI_DATABASE__URL=url,
            LINLI_TELEGRAM__TOKEN=stub.token,
            LINLI_TELEGRAM__API_BASE_URL=stub.api_base_url,
            LINLI_TELEGRAM__FILE_BASE_URL=stub.file_base_url,
            LINLI_TELEGRAM__POLL_TIMEOUT="1",
            LINLI_WEB__PORT="0",
            LINLI_LOG__LEVEL="INFO",
        )
        await run_linli(env, "init")
        out = await run_linli(env, "invite", "--building", "Building 1", "--uses", str(users + 1))
        code = re.search(r"code: (\w+)", out).group(1)  # type: ignore[union-attr]
        log_path = workdir / "bot.log"
        with log_path.open("wb") as log:
            streams = {"stdin": asyncio.subprocess.DEVNULL, "stdout": log, "stderr": log}
            async with linli_process("run", env=env, **streams) as bot:
                # One resident first: it waits out start-up and warms the connections.
                await resident(stub, 99_999, code, [])
                latencies: list[float] = []
                FINISHED.clear()
                cpu_before = cpu_seconds(bot.pid)
                started = time.perf_counter()
                if rate:
                    counts = await offered_load(stub, code, latencies, rate, users)
                else:
                    counts = await saturate(stub, code, latencies, users, concurrency)
                elapsed = time.perf_counter() - started
                # Sustained: answers that arrived while the load was still being offered, after
                # the first second (ramp-up), per second; the tail of the last residents is out.
                window = (users * len(STEPS) / rate) if rate else elapsed
                steady = [t - started for t in FINISHED if 1.0 <= t - started <= window]
                sustained = len(steady) / (window - 1.0) if rate else None
                rss = peak_rss_mb(bot.pid)
                cpu = cpu_seconds(bot.pid) - cpu_before
                bot.terminate()
                await bot.wait()
    handler_ms = [
        float(m.group(2))
        for m in LOG_MS.finditer(log_path.read_text(errors="replace"))
        if m.group(1) != "duplicate"
    ]
    if pg_name:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        await admin.close()
    total = sum(counts)
    return {
        "updates": total,
        "updates_per_s": sustained if sustained is not None else total / elapsed,
        "e2e_p50_ms": statistics.median(latencies),
        "e2e_p99_ms": percentile(latencies, 0.99),
        "handler_p50_ms": statistics.median(handler_ms) if handler_ms else float("nan"),
        "handler_p99_ms": percentile(handler_ms, 0.99) if handler_ms else float("nan"),
        "peak_rss_mb": rss,
        "bot_cpu_ms_per_update": cpu * 1000 / total,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="offered updates/s (0: saturate)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to offer the rate")
    parser.add_argument("--users", type=int, default=400, help="residents when saturating")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="residents at once when saturating"
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    rate = args.rate or None
    users = int(args.rate * args.seconds / len(STEPS)) if rate else args.users
    mode = f"rate={args.rate:.0f}/s for {args.seconds:.0f} s" if rate else "saturate"
    print(
        f"bench/updates.py {mode} residents={users} concurrency={args.concurrency} "
        f"cores={os.cpu_count()}"
    )
    print(
        "| database | updates | sustained updates/s | e2e p50 ms | e2e p99 ms | handler p50 ms | handler p99 ms | bot CPU ms/update | bot peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for db in databases:
        r = await bench(db, users, args.concurrency, rate)
        print(
            f"| {db} | {r['updates']:.0f} | {r['updates_per_s']:.0f} | {r['e2e_p50_ms']:.1f} | "
            f"{r['e2e_p99_ms']:.1f} | {r['handler_p50_ms']:.1f} | {r['handler_p99_ms']:.1f} | "
            f"{r['bot_cpu_ms_per_update']:.2f} | "
            f"{r['peak_rss_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
