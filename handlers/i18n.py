"""gettext catalogs (Babel) and the choice of a person's language.

Handlers receive a `Translator` for the person they answer; nothing here is global, so two
people in two languages can be answered in the same process at the same moment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from babel.support import NullTranslations, Translations

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


@dataclass
class Catalogs:
    """Loaded once at assembly and passed in; `get` is cheap afterwards."""

    directory: Path = LOCALES_DIR
    _cache: dict[str, Translator] = field(default_factory=dict)

    def get(self, locale: str) -> Translator:
        translator = self._cache.get(locale)
        if translator is None:
            catalog = Translations.load(str(self.directory), [locale], domain=DOMAIN)
            translator = Translator(locale, catalog)
            self._cache[locale] = translator
        return translator

    def all(self, locales: Iterable[str] = SUPPORTED) -> list[Translator]:
        return [self.get(locale) for locale in locales]
