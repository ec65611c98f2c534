"""Fixtures: every database test runs on a real SQLite file and on the real local PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
from sqlalchemy import text

from bot.app import Linli, assemble
from bot.config import Settings, load_settings
from bot.database import create_engine, migrate
from models import Base
from tests.telegram_stub import BotApiStub
from tests.wechat_stub import WeChatStub

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
PG_ADMIN_DSN = os.environ.get("LINLI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class FakeClock:
    """Injected wherever code asks for the time, so tests move time instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def settings_for(db_url: str, **overrides: str) -> Settings:
    """Build settings the way production does: bot.toml overlaid by LINLI_… variables."""
    # Each app stores its photos in a directory of its own, never in the checkout's data/.
    media = tempfile.mkdtemp(prefix="linli-media-")
    environ = {
        "LINLI_DATABASE__URL": db_url,
        "LINLI_REPORT__MEDIA_DIR": media,
        # Nor its voter key (an anonymous poll's tokens) in the checkout's data/.
        "LINLI_VOTING__VOTER_KEY": "test-voter-key-0123456789abcdef0123456789",
        # Every test registers residents; the welcome points would be in every count of
        # awards and balances. tests/test_points_chat.py turns them on.
        "LINLI_POINTS__RULES__FIRST_REGISTRATION": "0",
        **overrides,
    }
    return load_settings(ROOT / "bot.toml", environ=environ)


async def _create_pg_database() -> str:
    name = f"linli_test_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def _drop_pg_database(name: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _run_aside(work: Callable[[], Coroutine[object, object, T]]) -> T:
    """Run a coroutine to the end from sync code that may itself sit inside an event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One database for the session; each test empties its tables first."""
    name = _run_aside(_create_pg_database)
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    _run_aside(lambda: _drop_pg_database(name))


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database as empty as a new install: a new SQLite file, or the Postgres one emptied."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'linli.db'}"
    url: str = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    try:
        await migrate(engine)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()
    return url


async def fresh_linli(settings: Settings, clock: FakeClock) -> Linli:
    linli = assemble(settings, clock=clock)
    await linli.init()
    return linli


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def approval() -> str:
    return "auto"


@pytest.fixture
async def linli(db_url: str, clock: FakeClock, approval: str) -> AsyncIterator[Linli]:
    app = await fresh_linli(settings_for(db_url, LINLI_COMMUNITY__APPROVAL=approval), clock)
    yield app
    await app.close()


@pytest.fixture
async def stub() -> AsyncIterator[BotApiStub]:
    """The Telegram Bot API, played by tests/telegram_stub.py over real HTTP."""
    async with BotApiStub() as running:
        yield running


@pytest.fixture
async def wechat() -> AsyncIterator[WeChatStub]:
    """A WeChat Official Account, played by tests/wechat_stub.py: its API over real HTTP, its
    callbacks signed and encrypted."""
    async with WeChatStub() as running:
        yield running


@pytest.fixture
def wechat_settings() -> dict[str, str]:
    """Extra LINLI_… settings for `wechat_bot`; a test module overrides this fixture."""
    return {}


@pytest.fixture
async def wechat_bot(
    db_url: str, clock: FakeClock, wechat: WeChatStub, wechat_settings: dict[str, str]
) -> AsyncIterator[Linli]:
    """Linli serving the stub's account at /wechat."""
    app = await fresh_linli(settings_for(db_url, **wechat.env(), **wechat_settings), clock)
    yield app
    await app.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests of a layer above the database, where one database is enough."""
    return f"sqlite+aiosqlite:///{tmp_path / 'linli.db'}"


@pytest.fixture
async def two_workers(db_url: str, clock: FakeClock) -> AsyncIterator[tuple[Linli, Linli]]:
    """Two bot processes' worth of Linli on one PostgreSQL database, for race tests."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two workers cannot interleave")
    first = await fresh_linli(settings_for(db_url), clock)
    second = assemble(settings_for(db_url), clock=clock)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()
