"""Issue 8, item 18: an installed Linli speaks Chinese, and a broken catalog stops it at start-up.

The wheel is built from the sources as a clean clone has them (no compiled `.mo`, which git
ignores) and installed into a new virtualenv outside the checkout. Its dependencies come from
this environment's site-packages, through a `.pth` line: that adds their directory to the path,
and not the editable install's finder that lives there, so the checkout stays out of reach, as
the test checks.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from handlers.i18n import SUPPORTED, CatalogError, Catalogs
from tests.conftest import ROOT

SOURCES = ("bot", "handlers", "services", "models", "migrations", "locales")


@dataclass(frozen=True)
class Installed:
    venv: Path
    site: Path  # an operator's directory: bot.toml, the database
    python: Path
    linli: Path

    def env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("LINLI_", "PYTHON", "VIRTUAL"))
        }
        env["LINLI_DATABASE__URL"] = f"sqlite+aiosqlite:///{self.site / 'linli.db'}"
        env["LINLI_REPORT__MEDIA_DIR"] = str(self.site / "media")
        return env

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.site,
            env=self.env(),
            timeout=120,
        )

    def catalog(self, locale: str) -> Path:
        return self.site_packages / "locales" / locale / "LC_MESSAGES" / "messages.po"

    @property
    def site_packages(self) -> Path:
        found = self.run(
            str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        )
        return Path(found.stdout.strip())


def _run(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    clean = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo", "*.egg-info")
    for name in SOURCES:
        shutil.copytree(ROOT / name, source / name, ignore=clean)
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        work / "dist",
        source,
        cwd=work,
    )
    wheel = next((work / "dist").glob("linli-*.whl"))
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    python = venv / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=work,
    )
    site = work / "site"
    site.mkdir()
    shutil.copy2(ROOT / "bot.toml", site / "bot.toml")
    result = Installed(venv, site, python, venv / "bin" / "linli")
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (result.site_packages / "linli_test_dependencies.pth").write_text(
        "\n".join(sorted(deps)) + "\n"
    )
    yield result


def test_installed_package_comes_from_the_new_virtualenv(installed: Installed) -> None:
    found = installed.run(
        str(installed.python),
        "-c",
        "import bot, handlers.i18n as i18n; print(bot.__file__); print(i18n.LOCALES_DIR)",
    )
    assert found.returncode == 0, found.stderr
    module, locales = (Path(line) for line in found.stdout.split())
    assert module.is_relative_to(installed.venv) and locales.is_relative_to(installed.venv)
    assert not module.is_relative_to(ROOT)
    # A clean clone has no compiled catalogs; the sources travel with the package.
    assert sorted(p.name for p in locales.rglob("messages.*")) == ["messages.po", "messages.po"]


def test_installed_bot_speaks_chinese(installed: Installed) -> None:
    chat = installed.run(
        str(installed.linli), "chat", "--as", "wang", stdin="/help\n/language\n1\n"
    )
    assert chat.returncode == 0, chat.stderr
    assert "您可以使用以下功能" in chat.stdout  # the community's default language, zh_CN
    assert "好的，以后我会用中文和您交流。" in chat.stdout
    assert "speak English" not in chat.stdout


def test_installed_bot_refuses_to_start_without_a_catalog(installed: Installed) -> None:
    catalog = installed.catalog("zh_CN")
    original = catalog.read_bytes()
    try:
        catalog.write_bytes(b'msgid "broken\n')  # a catalog cut short
        broken = installed.run(str(installed.linli), "chat", "--as", "wang", stdin="/help\n")
        catalog.unlink()
        missing = installed.run(str(installed.linli), "chat", "--as", "wang", stdin="/help\n")
    finally:
        catalog.write_bytes(original)
    for result in (broken, missing):
        assert result.returncode == 1, result.stdout
        assert "zh_CN" in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert "Here is what you can do" not in result.stdout


# ---------------------------------------------------------------- the loading rules, in process


def _copy_catalogs(target: Path, locales: tuple[str, ...] = SUPPORTED) -> Path:
    for locale in locales:
        folder = target / locale / "LC_MESSAGES"
        folder.mkdir(parents=True)
        shutil.copy2(ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po", folder)
    return target


def test_catalogs_compile_sources_without_make(tmp_path: Path) -> None:
    catalogs = Catalogs(_copy_catalogs(tmp_path))
    assert catalogs.get("zh_CN").gettext("Approve") == "批准"
    assert catalogs.get("en").gettext("Approve") == "Approve"


def test_a_stale_compiled_catalog_is_not_used(tmp_path: Path) -> None:
    folder = _copy_catalogs(tmp_path) / "zh_CN" / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as handle:
        old = read_po(handle, locale="zh_CN")
    old["Approve"].string = "旧的批准"
    buffer = io.BytesIO()
    write_mo(buffer, old)
    mo = folder / "messages.mo"
    mo.write_bytes(buffer.getvalue())
    po_time = (folder / "messages.po").stat().st_mtime
    os.utime(mo, (po_time - 60, po_time - 60))  # compiled before the source last changed
    assert Catalogs(tmp_path).get("zh_CN").gettext("Approve") == "批准"
    os.utime(mo, (po_time + 60, po_time + 60))  # compiled since: `make` knows best
    assert Catalogs(tmp_path).get("zh_CN").gettext("Approve") == "旧的批准"


def test_a_catalog_that_cannot_be_loaded_stops_start_up(tmp_path: Path) -> None:
    _copy_catalogs(tmp_path, ("en",))
    with pytest.raises(CatalogError, match="zh_CN"):
        Catalogs(tmp_path)
    folder = tmp_path / "zh_CN" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text('msgid ""\nmsgstr ""\n"Language: zh_CN\\n"\n')
    with pytest.raises(CatalogError, match="empty"):
        Catalogs(tmp_path)
    (folder / "messages.mo").write_bytes(b"\x00" * 3)
    with pytest.raises(CatalogError, match="zh_CN"):
        Catalogs(tmp_path)
