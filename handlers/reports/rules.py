"""The slice of configuration the report flows need ([report] in bot.toml), passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from handlers.i18n import Translator
from models import Report, Role
from services.media import MediaLimits, MediaStorage
from services.reports.store import Category

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
# Only for a report that has neither a configured category nor a due time.
FALLBACK_SLA = timedelta(hours=72)


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
    categories: tuple[CategoryRule, ...]
    places: tuple[str, ...]
    storage: MediaStorage
    timezone: str
    limits: MediaLimits = field(default_factory=MediaLimits)
    max_photos: int = 4
    max_voice_notes: int = 2
    max_voice_bytes: int = 5 * 1024 * 1024
    description_limit: int = 1000
    detail_limit: int = 200
    duplicate_days: int = 14
    phash_distance: int = 10
    autoclose_days: int = 7
    reminder_fraction: float = 0.75

    def category(self, code: str) -> CategoryRule | None:
        return next((c for c in self.categories if c.code == code), None)

    def sla_of(self, report: Report) -> timedelta:
        """The category's SLA; for a category since removed from bot.toml, the time the report
        was first given, so that the people handling it can still pass it on or reopen it."""
        rule = self.category(report.category)
        if rule is not None:
            return rule.category.sla
        if report.due_at is not None:
            return report.due_at - report.created_at
        return FALLBACK_SLA

    def category_name(self, code: str, t: Translator) -> str:
        rule = self.category(code)
        return rule.name(t) if rule else code

    def local(self, moment: datetime) -> str:
        """A time as residents read it: the community's clock, to the minute."""
        return moment.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m-%d %H:%M")

    @property
    def duplicate_window(self) -> timedelta:
        return timedelta(days=self.duplicate_days)

    @property
    def autoclose_after(self) -> timedelta:
        return timedelta(days=self.autoclose_days)
