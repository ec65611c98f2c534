"""What the benches share: a database of their own, `linli` as the operator runs it, the
residents they load, CPU readings and the verdicts they print."""

from __future__ import annotations

import asyncio
import math
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
from sqlalchemy import func, insert, select

from bot.app import Linli
from models import Building, Household, Person

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds spent on anything but idle and iowait, all cores, since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


@dataclass
class Outcome:
    ok: bool = True
    figures: dict[str, float] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        print(f"  FAIL: {message}", flush=True)
        self.ok = False


async def new_database(db: str, workdir: Path, pg_name: str) -> str:
    """A new SQLite file in `workdir`, or the PostgreSQL database `pg_name` made anew."""
    if db == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / 'linli.db'}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
    finally:
        await admin.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_name}"


async def drop_database(db: str, pg_name: str) -> None:
    if db == "postgres":
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        finally:
            await admin.close()


def linli_environment(url: str, workdir: Path, voter_key: bytes) -> dict[str, str]:
    """What `linli` reads: bot.toml overlaid by these (nothing written to the checkout)."""
    return {
        "LINLI_DATABASE__URL": url,
        "LINLI_REPORT__MEDIA_DIR": str(workdir / "media"),
        "LINLI_VOTING__VOTER_KEY": voter_key.decode(),
        "LINLI_LOG__LEVEL": "WARNING",
    }


async def timed_linli(env: dict[str, str], *args: str) -> tuple[float, int, str, str, float]:
    """`linli ARGS` as a separate process, as the operator runs it: (seconds, exit status,
    standard output, standard error, the peak RSS in MB of the processes waited for)."""
    linli_command = Path(sys.executable).parent / "linli"
    command = [str(linli_command)] if linli_command.exists() else [sys.executable, "-m", "bot"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
    environment.update(env)
    mark = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command,
        *args,
        cwd=ROOT,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    seconds = time.perf_counter() - mark
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, process.returncode or 0, out.decode(), err.decode(), rss


async def add_residents(
    linli: Linli, count: int, now: datetime, per_household: int = 2
) -> list[int]:
    """`count` active residents, `per_household` to a home: the configured rooms first, then
    more homes in the same buildings. Plain bulk inserts: this is setup, not measured."""
    async with linli.transaction() as session:
        buildings = list((await session.scalars(select(Building.id).order_by(Building.id))).all())
        existing = (await session.scalar(select(func.count()).select_from(Household))) or 0
        missing = max(0, math.ceil(count / per_household) - existing)
        if missing:
            await session.execute(
                insert(Household),
                [
                    {"building_id": buildings[n % len(buildings)], "room": str(1000 + n)}
                    for n in range(missing)
                ],
            )
        homes = list((await session.scalars(select(Household.id).order_by(Household.id))).all())
        await session.execute(
            insert(Person),
            [
                {
                    "display_name": f"Bench Resident {i}",
                    "household_id": homes[i // per_household],
                    "status": "active",
                    "created_at": now,
                }
                for i in range(count)
            ],
        )
    async with linli.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(Person.id).where(Person.status == "active").order_by(Person.id)
                )
            ).all()
        )
