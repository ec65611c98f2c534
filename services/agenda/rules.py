"""The cycle's calendar and limits, from `[agenda]` (passed in at assembly, never read here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PROPOSALS, VOTING, PUBLISHED = "proposals", "voting", "published"
# No cycle yet (before the first month opens).
NONE = "none"
PHASES = (PROPOSALS, VOTING, PUBLISHED)


@dataclass(frozen=True)
class AgendaRules:
    timezone: str = "Asia/Shanghai"
    proposal_start_day: int = 1
    proposal_end_day: int = 15
    voting_start_day: int = 16
    publish_day: int = 25
    publish_time: str = "20:00"
    votes_per_voter: int = 3
    council_items: int = 5
    per_household: bool = True
    title_limit: int = 60
    description_limit: int = 1000
    # Pending points (the ledger settles them): a proposal the council takes up, and a unit's
    # first ballot of the month.
    selected_points: int = 10
    vote_points: int = 1

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def month_of(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m")

    def _at(self, month: str, day: int, clock: time = time(0, 0)) -> datetime:
        year, number = (int(part) for part in month.split("-"))
        local = datetime.combine(date(year, number, day), clock, tzinfo=self.zone)
        return local.astimezone(UTC)

    def calendar(self, month: str) -> Calendar:
        hour, minute = (int(part) for part in self.publish_time.split(":"))
        return Calendar(
            opens_at=self._at(month, self.proposal_start_day),
            proposals_close_at=self._at(month, self.proposal_end_day) + timedelta(days=1),
            voting_at=self._at(month, self.voting_start_day),
            publish_at=self._at(month, self.publish_day, time(hour, minute)),
        )

    def local(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Calendar:
    opens_at: datetime
    proposals_close_at: datetime
    voting_at: datetime
    publish_at: datetime


def next_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year + number // 12}-{number % 12 + 1:02d}"
