"""The `linli` commands, run as operators run them: as a separate process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from tests.test_config import linli


@pytest.fixture
def db_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"LINLI_DATABASE__URL": db_url}


def test_init_is_idempotent(db_env: dict[str, str]) -> None:
    first = linli("init", env=db_env)
    assert first.returncode == 0, first.stderr
    assert "records created" in first.stdout
    second = linli("init", env=db_env)
    assert second.returncode == 0 and "nothing changed" in second.stdout


def test_invite_prints_code_link_and_decodable_qr(db_env: dict[str, str], tmp_path: Path) -> None:
    assert linli("init", env=db_env).returncode == 0
    png = tmp_path / "board" / "b3.png"
    result = linli(
        "invite",
        "--building",
        "Building 3",
        "--uses",
        "20",
        "--expires",
        "30",
        "--qr",
        str(png),
        env=db_env,
    )
    assert result.returncode == 0, result.stderr
    code = re.search(r"^code: (\w+)$", result.stdout, re.M)
    link = re.search(r"^link: (\S+)$", result.stdout, re.M)
    assert code and link and link.group(1).endswith(f"?start={code.group(1)}")
    decoded = zxingcpp.read_barcodes(Image.open(png))
    assert [d.text for d in decoded] == [link.group(1)]


def test_invite_unknown_building_is_a_clear_error(db_env: dict[str, str]) -> None:
    assert linli("init", env=db_env).returncode == 0
    result = linli("invite", "--building", "Building 99", env=db_env)
    assert result.returncode == 2
    assert "Building 99" in result.stderr and "Building 1" in result.stderr


def test_commands_before_init_say_so(tmp_path: Path) -> None:
    env = {"LINLI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"}
    for args in (("invite", "--building", "Building 1"), ("admin", "list")):
        result = linli(*args, env=env)
        assert result.returncode == 2
        assert (
            result.stderr.strip() == "linli: the database is not set up yet; run `linli init` first"
        )


def test_admin_grant_list_revoke(db_env: dict[str, str]) -> None:
    assert linli("init", env=db_env).returncode == 0
    granted = linli(
        "admin",
        "grant",
        "--role",
        "building_head",
        "--building",
        "Building 2",
        "--telegram-id",
        "4242",
        env=db_env,
    )
    assert granted.returncode == 0, granted.stderr
    staff = linli("admin", "grant", "--role", "staff", "--telegram-id", "4242", env=db_env)
    assert staff.returncode == 0
    listing = linli("admin", "list", env=db_env)
    line = next(ln for ln in listing.stdout.splitlines() if "telegram:4242" in ln)
    assert "building_head@Building 2" in line and "staff" in line
    assert (
        linli("admin", "revoke", "--role", "staff", "--telegram-id", "4242", env=db_env).returncode
        == 0
    )
    line = next(
        ln for ln in linli("admin", "list", env=db_env).stdout.splitlines() if "telegram:4242" in ln
    )
    assert "staff" not in line.split("\t")[4]
    missing_scope = linli(
        "admin", "grant", "--role", "grid_worker", "--telegram-id", "1", env=db_env
    )
    assert missing_scope.returncode == 2 and "--grid" in missing_scope.stderr


def test_admin_grant_department_roles(db_env: dict[str, str]) -> None:
    assert linli("init", env=db_env).returncode == 0
    department = "市政 Municipal works"
    granted = linli(
        "admin",
        "grant",
        "--role",
        "department",
        "--department",
        department,
        "--telegram-id",
        "5151",
        env=db_env,
    )
    assert granted.returncode == 0, granted.stderr
    line = next(ln for ln in linli("admin", "list", env=db_env).stdout.splitlines() if "5151" in ln)
    assert f"department@{department}" in line
    unscoped = linli("admin", "grant", "--role", "department", "--telegram-id", "5151", env=db_env)
    assert unscoped.returncode == 2 and "department needs --department" in unscoped.stderr
    unknown = linli(
        "admin",
        "grant",
        "--role",
        "department_head",
        "--department",
        "Parks",
        "--telegram-id",
        "5151",
        env=db_env,
    )
    assert unknown.returncode == 2 and "no department named 'Parks'" in unknown.stderr
    invite = linli("invite", "--building", "Building 1", "--role", "department", env=db_env)
    assert invite.returncode == 2 and "use linli admin grant --department" in invite.stderr


def test_admin_names_a_wechat_user_by_openid(db_env: dict[str, str]) -> None:
    assert linli("init", env=db_env).returncode == 0
    granted = linli("admin", "grant", "--role", "staff", "--wechat-openid", "o_abc123", env=db_env)
    assert granted.returncode == 0, granted.stderr
    listing = linli("admin", "list", env=db_env).stdout
    line = next(ln for ln in listing.splitlines() if "wechat:o_abc123" in ln)
    assert line.split("\t")[4] == "staff"
    revoked = linli("admin", "revoke", "--role", "staff", "--wechat-openid", "o_abc123", env=db_env)
    assert revoked.returncode == 0 and "revoke staff: person" in revoked.stdout
