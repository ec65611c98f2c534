"""Configuration: defaults, overrides, and one clear line with exit status 2 for mistakes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from tests.conftest import ROOT

BOT_TOML = ROOT / "bot.toml"


def linli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=60,
    )


def test_shipped_demo_community() -> None:
    settings = load_settings(BOT_TOML, environ={})
    assert settings.database.url == "sqlite+aiosqlite:///data/linli.db"
    assert settings.telegram.api_base_url == "https://api.telegram.org/bot"
    assert settings.telegram.file_base_url == "https://api.telegram.org/file/bot"
    assert settings.community.default_locale == "zh_CN"
    assert settings.community.timezone == "Asia/Shanghai"
    assert len(settings.community.grids) == 2
    assert sum(len(g.buildings) for g in settings.community.grids) == 4
    assert {"east gate", "bike shed"} <= set(settings.community.places)
    assert (settings.community.layout.floors, settings.community.layout.homes_per_floor) == (6, 4)


def test_report_categories() -> None:
    report = load_settings(BOT_TOML, environ={}).report
    codes = {c.code: c for c in report.categories}
    assert {"lighting", "leak", "garbage", "road", "other"} <= set(codes)
    assert codes["road"].owner == "department" and codes["road"].department
    assert codes["leak"].sla_hours == 24 and codes["leak"].name_zh == "漏水"
    assert report.description_limit == 1000 and report.max_photos == 4


def test_environment_overrides_file() -> None:
    settings = load_settings(
        BOT_TOML,
        environ={
            "LINLI_TELEGRAM__TOKEN": "1:abc",
            "LINLI_WEB__PORT": "9100",
            "LINLI_DATABASE__URL": "postgresql+asyncpg://u@h/db",
            "LINLI_COMMUNITY__APPROVAL": "building_head",
        },
    )
    assert settings.telegram.token == "1:abc"
    assert settings.web.port == 9100
    assert settings.database.url.startswith("postgresql+asyncpg://")
    assert settings.community.approval == "building_head"


def test_linli_config_environment_chooses_the_file(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('[community]\nname = "Elsewhere"\n', encoding="utf-8")
    assert load_settings(None, environ={"LINLI_CONFIG": str(other)}).community.name == "Elsewhere"


@pytest.mark.parametrize(
    ("toml", "env", "names"),
    [
        ('[web]\nport = "eighty"\n', {}, "web.port"),
        ("[web]\nprot = 80\n", {}, "web.prot"),
        ('[telegram]\nmode = "carrier-pigeon"\n', {}, "telegram.mode"),
        ('[database]\nurl = "mysql://x"\n', {}, "database.url"),
        ('[community]\ntimezone = "Mars/Olympus"\n', {}, "community.timezone"),
        ("", {"LINLI_WEB__PORT": "-1"}, "web.port"),
        ("", {"LINLI_TELEGRAM__TOKN": "x"}, "telegram.tokn"),
        ("", {"LINLI_NOPE__X": "1"}, "nope"),
        ("[web\n", {}, "not valid TOML"),
        ("[agenda]\nvoting_start_day = 10\n", {}, "the phases must follow each other"),
        ('[agenda]\npublish_time = "25:00"\n', {}, "agenda.publish_time"),
        ("", {"LINLI_AGENDA__ELIGIBILITY": "everyone"}, "agenda.eligibility"),
        (
            '[[report.categories]]\ncode = "x y"\nname_zh = "a"\nname_en = "a"\nsla_hours = 1\n',
            {},
            "report.categories.0.code",
        ),
        (
            '[[report.categories]]\ncode = "road"\nname_zh = "a"\nname_en = "a"\n'
            'owner = "department"\nsla_hours = 1\n',
            {},
            "names none",
        ),
    ],
)
def test_bad_configuration_is_one_line_naming_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], names: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=env)
    assert names in str(caught.value)
    result = linli("--config", str(path), "init", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = linli("--config", str(tmp_path / "absent.toml"), "init")
    assert result.returncode == 2 and "not found" in result.stderr
