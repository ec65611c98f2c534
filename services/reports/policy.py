"""What the report use cases need of the configuration ([report] in bot.toml), passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from models import Report

# Only for a report that has neither a configured category nor a due time.
FALLBACK_SLA = timedelta(hours=72)


@dataclass(frozen=True)
class Category:
    """What the store needs of a configured category (bot.toml [[report.categories]])."""

    code: str
    owner: str  # grid_worker | property | department
    sla_hours: float
    department: str = ""
    points: int = 0  # credited to the reporter once the report is accepted
    photo_required: bool = True

    @property
    def sla(self) -> timedelta:
        return timedelta(hours=self.sla_hours)

    @property
    def owner_label(self) -> str:
        return f"department:{self.department}" if self.owner == "department" else self.owner


@dataclass(frozen=True)
class ReportPolicy:
    categories: tuple[Category, ...] = ()
    reminder_fraction: float = 0.75
    duplicate_days: int = 14
    phash_distance: int = 10
    autoclose_days: int = 7

    def category(self, code: str) -> Category | None:
        return next((c for c in self.categories if c.code == code), None)

    def sla_of(self, report: Report) -> timedelta:
        """The category's SLA; for a category since removed from bot.toml, the time the report
        was first given, so that the people handling it can still pass it on or reopen it."""
        category = self.category(report.category)
        if category is not None:
            return category.sla
        if report.due_at is not None:
            return report.due_at - report.created_at
        return FALLBACK_SLA

    @property
    def duplicate_window(self) -> timedelta:
        return timedelta(days=self.duplicate_days)

    @property
    def autoclose_after(self) -> timedelta:
        return timedelta(days=self.autoclose_days)
