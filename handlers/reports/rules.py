"""The slice of configuration the report flows need ([report] in bot.toml), passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from handlers.i18n import Translator
from models import Role
from services.media import MediaLimits, MediaStorage
from services.reports.policy import Category, ReportPolicy

# Whoever handles reports sees /queue; they, like residents, may report what they see.
HANDLER_ROLES = frozenset(
    {
        Role.GRID_WORKER,
        Role.PROPERTY,
        Role.PROPERTY_HEAD,
        Role.DEPARTMENT,
        Role.DEPARTMENT_HEAD,
        Role.STAFF,
    }
)
REPORTER_ROLES = HANDLER_ROLES | {Role.RESIDENT}


@dataclass(frozen=True)
class CategoryRule:
    category: Category
    name_zh: str
    name_en: str

    @property
    def code(self) -> str:
        return self.category.code

    def name(self, t: Translator) -> str:
        return self.name_zh if t.locale.startswith("zh") else self.name_en


@dataclass(frozen=True)
class ReportRules:
    """What the dialogue shows and accepts; `policy` is what the use cases decide by."""

    categories: tuple[CategoryRule, ...]
    places: tuple[str, ...]
    storage: MediaStorage
    timezone: str
    policy: ReportPolicy = field(default_factory=ReportPolicy)
    limits: MediaLimits = field(default_factory=MediaLimits)
    max_photos: int = 4
    max_voice_notes: int = 2
    max_voice_bytes: int = 5 * 1024 * 1024
    description_limit: int = 1000
    detail_limit: int = 200

    def category(self, code: str) -> CategoryRule | None:
        return next((c for c in self.categories if c.code == code), None)

    def category_name(self, code: str, t: Translator) -> str:
        rule = self.category(code)
        return rule.name(t) if rule else code

    def local(self, moment: datetime) -> str:
        """A time as residents read it: the community's clock, to the minute."""
        return moment.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m-%d %H:%M")
