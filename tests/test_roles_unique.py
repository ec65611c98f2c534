"""Issue 8, item 10: one row per role and scope, unscoped roles included, on SQLite and Postgres.

The unique constraint used to include nullable scope columns, and NULLs never compare equal, so
granting an unscoped role twice stored two rows. Migration 0004 removes the duplicates a
database already holds and makes the database refuse new ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import Linli
from bot.database import alembic_config, create_engine
from models import Role, RoleAssignment
from services import people
from services.people import Grant
from services.sql import insert_ignoring
from tests.conftest import _create_pg_database, _drop_pg_database
from tests.test_config import linli as run_linli


async def role_rows(db_url: str, role: str) -> list[tuple[int, str]]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                select(RoleAssignment.person_id, RoleAssignment.role).where(
                    RoleAssignment.role == role
                )
            )
            return [(row.person_id, str(row.role)) for row in result]
    finally:
        await engine.dispose()


async def test_admin_grant_twice_keeps_one_row_and_says_so(db_url: str) -> None:
    env = {"LINLI_DATABASE__URL": db_url}
    assert run_linli("init", env=env).returncode == 0
    for role in ("staff", "property"):  # unscoped roles: every scope column NULL
        first = run_linli("admin", "grant", "--role", role, "--telegram-id", "4242", env=env)
        assert first.returncode == 0, first.stderr
        assert "nothing changed" not in first.stdout
        again = run_linli("admin", "grant", "--role", role, "--telegram-id", "4242", env=env)
        assert again.returncode == 0, again.stderr
        assert "nothing changed" in again.stdout, again.stdout
        assert len(await role_rows(db_url, role)) == 1
    revoked = run_linli("admin", "revoke", "--role", "staff", "--telegram-id", "4242", env=env)
    assert revoked.returncode == 0 and "nothing changed" not in revoked.stdout
    assert await role_rows(db_url, "staff") == []
    again = run_linli("admin", "revoke", "--role", "staff", "--telegram-id", "4242", env=env)
    assert again.returncode == 0 and "nothing changed" in again.stdout, again.stdout


async def test_grant_service_reports_a_repeat(linli: Linli) -> None:
    async with linli.transaction() as session:
        person = await people.identify(session, "console", "ann")
        assert await people.grant(session, person.id, Grant(Role.STAFF)) is True
        assert await people.grant(session, person.id, Grant(Role.STAFF)) is False
        assert await people.grant(session, person.id, Grant(Role.DEPARTMENT, department="A"))
        assert not await people.grant(session, person.id, Grant(Role.DEPARTMENT, department="A"))
        assert await people.grant(session, person.id, Grant(Role.DEPARTMENT, department="B"))
    assert len(await role_rows(linli.db.url.render_as_string(hide_password=False), "staff")) == 1


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with nothing in it, not even the schema: it is migrated step by step."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = await _create_pg_database()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await _drop_pg_database(name)


async def migrate_to(engine: AsyncEngine, revision: str) -> None:
    def upgrade(connection: Connection) -> None:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


async def test_migration_removes_duplicate_roles(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)
    try:
        await migrate_to(engine, "0003")  # where a deployment of the previous release stands
        async with engine.begin() as connection:
            person = await connection.scalar(
                text(
                    "INSERT INTO person (display_name, status, created_at) "
                    "VALUES ('Old', 'active', CURRENT_TIMESTAMP) RETURNING id"
                )
            )
            rows = [("staff", None)] * 3 + [("department", "A")] * 2 + [("department", "B")]
            for role, department in rows:  # the old constraint lets every one of these in
                await connection.execute(
                    text(
                        "INSERT INTO role_assignment (person_id, role, department, created_at) "
                        "VALUES (:person, :role, :department, CURRENT_TIMESTAMP)"
                    ),
                    {"person": person, "role": role, "department": department},
                )
        assert await roles_held(engine, person) == [
            ("department", "A"),
            ("department", "A"),
            ("department", "B"),
            ("staff", None),
            ("staff", None),
            ("staff", None),
        ]
        await migrate_to(engine, "head")
        expected = [("department", "A"), ("department", "B"), ("staff", None)]
        assert await roles_held(engine, person) == expected
        # A third grant of the same unscoped role is now ignored by the database itself.
        async with engine.begin() as connection:
            values = {"person_id": person, "role": "staff", "building_id": None, "grid_id": None}
            table: Any = RoleAssignment.__table__
            inserted = await connection.run_sync(
                lambda sync: insert_ignoring(sync, table, {**values, "department": None})
            )
        assert inserted is False
        assert await roles_held(engine, person) == expected
    finally:
        await engine.dispose()


async def roles_held(engine: AsyncEngine, person: int) -> list[tuple[str, str | None]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT role, department FROM role_assignment WHERE person_id = :person "
                "ORDER BY role, department"
            ),
            {"person": person},
        )
        return [(row.role, row.department) for row in result]
