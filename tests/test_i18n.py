"""Every user-facing string is extracted and translated in both catalogs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from handlers.i18n import SUPPORTED, Catalogs
from tests.conftest import ROOT

PLACEHOLDER = re.compile(r"\{(\w*)\}")


def _ids(path: Path) -> set[object]:
    with path.open("rb") as handle:
        return {m.id for m in read_po(handle) if m.id}


@pytest.fixture(scope="module")
def fresh_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Extract from the source as it is now, so a string added without `make extract` fails."""
    out = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "N_",
            "-k",
            "_",
            "-k",
            "gettext",
            "-k",
            "ngettext:1,2",
            "--no-location",
            "-o",
            str(out),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return out


def test_template_is_up_to_date(fresh_template: Path) -> None:
    missing = _ids(fresh_template) - _ids(ROOT / "locales" / "messages.pot")
    assert not missing, f"run `make update-catalogs`: {sorted(map(str, missing))}"


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_message_is_translated(locale: str, fresh_template: Path) -> None:
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    untranslated = []
    for msgid in _ids(fresh_template):
        message = catalog.get(msgid)
        strings = (
            ()
            if message is None
            else (message.string if isinstance(message.string, tuple) else (message.string,))
        )
        if message is None or not strings or not all(strings) or message.fuzzy:
            untranslated.append(msgid)
            continue
        singular = msgid[0] if isinstance(msgid, tuple) else msgid
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == set(PLACEHOLDER.findall(str(singular))), (
                f"{locale}: placeholders differ in {string!r}"
            )
    assert not untranslated, f"{locale} lacks: {untranslated}"


def test_compiled_catalogs_are_loaded() -> None:
    catalogs = Catalogs()
    assert catalogs.get("zh_CN").gettext("Approve") == "批准"
    assert catalogs.get("en").gettext("Approve") == "Approve"
