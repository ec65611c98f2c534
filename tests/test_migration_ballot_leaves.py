"""Migration 0011 on a database that already holds a poll with ballots cast before it: their
leaves and receipts carry over, the audit accepts the old entries and the new ones after them,
a ballot cast then replaces an old one by its receipt, and the schema it leaves is the models'
(nothing for autogenerate to add). On SQLite and on a PostgreSQL database of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.database import alembic_config, create_engine, migrate
from models import Ballot, BallotEvent
from models.base import Base
from services.voting import log, polls
from services.voting.audit import audit_poll
from tests.conftest import PG_ADMIN_DSN

KEY = b"k" * 32
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'linli.db'}"
        return
    name = f"linli_migration_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def upgrade_to(revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        config = alembic_config(str(connection.engine.url))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return run


def entry(poll_id: int, n: int, voter: str, choices: list[int], replaces: int | None) -> str:
    """A ballot's leaf as 0008's cast wrote it: it names its place and the place it replaces."""
    data = {
        "poll": poll_id,
        "n": n,
        "voter": voter,
        "choices": choices,
        "proxy": False,
        "replaces": replaces,
        "salt": "00" * 16,
    }
    return log.encode(data).decode()


async def test_ballots_cast_before_0011_carry_over_and_audit_with_the_new_ones(
    empty_url: str,
) -> None:
    engine = create_engine(empty_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_to("0010"))
            # A community poll, its seed leaf, Amy's ballot (leaf 2), Bob's (3), Amy's change (4).
            await connection.execute(
                text(
                    "INSERT INTO poll (id, scope, purpose, question, options, max_choices, "
                    "anonymous, per_household, deadline, private, created_at, status, seed, "
                    "log_size) VALUES (1, 'community', 'poll', 'Lamps?', '[\"Yes\", \"No\"]', "
                    "1, false, false, :deadline, true, :now, 'open', :seed, 4)"
                ),
                {"deadline": NOW + timedelta(days=2), "now": NOW, "seed": "ab" * 32},
            )
            seed = log.encode({"poll": 1, "seed": "ab" * 32}).decode()
            leaves = [
                seed,
                entry(1, 2, "person:1", [0], None),
                entry(1, 3, "person:2", [1], None),
                entry(1, 4, "person:1", [1], 2),
            ]
            for index, body in enumerate(leaves, 1):
                await connection.execute(
                    text(
                        'INSERT INTO ballot_event (poll_id, "index", entry, digest, at) '
                        "VALUES (1, :index, :entry, :digest, :at)"
                    ),
                    {
                        "index": index,
                        "entry": body,
                        "digest": log.leaf_hash(body.encode()).hex(),
                        "at": NOW,
                    },
                )
            for voter, choices, leaf in (("person:1", 0b10, 4), ("person:2", 0b10, 3)):
                await connection.execute(
                    text(
                        "INSERT INTO ballot (poll_id, voter, choices, proxy, leaf, updated_at) "
                        "VALUES (1, :voter, :choices, false, :leaf, :at)"
                    ),
                    {"voter": voter, "choices": choices, "leaf": leaf, "at": NOW},
                )
        await migrate(engine)

        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(Ballot.voter, Ballot.entry, Ballot.receipt).order_by(Ballot.voter)
                )
            ).all()
            diff = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        assert rows == [
            ("person:1", leaves[3], log.leaf_hash(leaves[3].encode()).hex()),
            ("person:2", leaves[2], log.leaf_hash(leaves[2].encode()).hex()),
        ]
        assert diff == []

        # Amy's ballot changes after the migration, written as `ballots.cast` writes it: the new
        # entry names the receipt it replaces, and the commit appends it as leaf 5. The audit
        # reads both kinds of entry.
        change = log.encode(
            {
                "poll": 1,
                "voter": "person:1",
                "choices": [0],
                "proxy": False,
                "replaces": rows[0][2],
                "salt": "11" * 16,
            }
        ).decode()
        receipt = log.leaf_hash(change.encode()).hex()
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE ballot SET choices = 1, entry = :entry, receipt = :receipt "
                    "WHERE voter = 'person:1'"
                ),
                {"entry": change, "receipt": receipt},
            )
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            assert await audit_poll(session, 1) == []
            assert await polls.log_size(session, 1) == 5
            last = await session.scalar(select(BallotEvent.digest).where(BallotEvent.index == 5))
        assert last == receipt
    finally:
        await engine.dispose()
