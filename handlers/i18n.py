"""gettext catalogs (Babel) and the choice of a person's language.

Handlers receive a `Translator` for the person they answer; nothing here is global, so two
people in two languages can be answered in the same process at the same moment.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.support import NullTranslations, Translations

# The catalogs are package data (pyproject.toml): `locales/` sits next to `handlers/` in the
# checkout and in site-packages alike.
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
SUPPORTED = ("zh_CN", "en")
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated later, where the reader is known."""
    return message


def match_locale(language_code: str | None, default: str) -> str:
    """Telegram sends codes such as "zh-hans" or "en-GB"; map them onto what we ship."""
    if language_code:
        code = language_code.lower().replace("-", "_")
        if code.startswith("zh"):
            return "zh_CN"
        if code.startswith("en"):
            return "en"
    return default


@dataclass(frozen=True)
class Translator:
    locale: str
    catalog: NullTranslations

    def gettext(self, message: str) -> str:
        return self.catalog.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.catalog.ngettext(singular, plural, n)


class CatalogError(Exception):
    """A translation catalog that can't be loaded: the bot must not start speaking English."""


def catalog_files(directory: Path, locale: str) -> tuple[Path, Path]:
    folder = directory / locale / "LC_MESSAGES"
    return folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"


def load_catalog(directory: Path, locale: str) -> Translations:
    """The compiled catalog (`make` builds it) while it is as new as its source; otherwise the
    source compiled in memory, as after a `pip install`, which ships the `.po` files only."""
    po, mo = catalog_files(directory, locale)
    try:
        if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
            with mo.open("rb") as handle:
                translations = Translations(handle, domain=DOMAIN)
        elif po.is_file():
            stat = po.stat()
            translations = Translations(
                io.BytesIO(_compile(po, locale, stat.st_mtime_ns, stat.st_size)), domain=DOMAIN
            )
        else:
            raise CatalogError(f"no {locale} translations: {po} is missing")
    except (OSError, ValueError, struct.error, PoFileError) as exc:  # unreadable, or no catalog
        raise CatalogError(
            f"cannot load the {locale} translations from {po.parent}: {exc}"
        ) from exc
    # Every shipped locale translates every message (tests/test_i18n.py); none means a broken file.
    if not any(key for key in translations._catalog if key):
        raise CatalogError(f"the {locale} translations in {po.parent} are empty")
    return translations


@lru_cache(maxsize=8)
def _compile(po: Path, locale: str, _mtime_ns: int, _size: int) -> bytes:
    """`pybabel compile` in memory; cached per file version, for the many apps a test builds."""
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN, abort_invalid=True)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


@dataclass
class Catalogs:
    """Every supported catalog, loaded at assembly (start-up fails if one can't be); `get` is
    cheap afterwards."""

    directory: Path = LOCALES_DIR
    locales: tuple[str, ...] = SUPPORTED
    _cache: dict[str, Translator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for locale in self.locales:
            self._cache[locale] = Translator(locale, load_catalog(self.directory, locale))

    def get(self, locale: str) -> Translator:
        translator = self._cache.get(locale)
        if translator is None:
            raise CatalogError(f"no catalog for the locale {locale!r}")
        return translator
