"""Typed settings: `bot.toml` (or `--config` / `LINLI_CONFIG`) overlaid by `LINLI_<SECTION>__<KEY>`.

Settings are read once, at start-up, by the CLI and passed down; nothing else reads the
environment, so a test can build any configuration it needs without touching globals.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_CONFIG = Path("bot.toml")
# What Telegram accepts as a webhook's secret_token.
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
ENV_PREFIX = "LINLI_"


class ConfigError(Exception):
    """A configuration problem, worded as the one line an operator sees before exit status 2."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///data/linli.db"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


class TelegramSettings(_Section):
    token: str = ""
    api_base_url: str = "https://api.telegram.org/bot"
    file_base_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"
    # Where Telegram posts updates; setWebhook with an empty URL would remove the webhook.
    webhook_url: str = Field(default="", validate_default=True)
    # Telegram sends it with every webhook POST; the route refuses a POST without it.
    webhook_secret: str = Field(default="", validate_default=True)
    poll_timeout: int = Field(default=10, ge=0, le=50)
    # Telegram's limits, kept by every process of the bot together (bot/pace.py): about 30
    # messages a second in all and 20 a minute to one group; a little under each, so that a
    # 429 stays rare. 0 turns the pacing off.
    messages_per_second: float = Field(default=29.0, ge=0, le=1000)
    group_messages_per_minute: float = Field(default=19.0, ge=0, le=6000)
    # Broadcasts by paid broadcast (`allow_paid_broadcast`, paid in Stars): up to 1,000 a
    # second, for broadcasts only.
    paid_broadcast: bool = False

    @field_validator("webhook_url")
    @classmethod
    def _url_for_webhook(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("mode") == "webhook" and not value.startswith(("https://", "http://")):
            raise ValueError(
                "webhook mode needs the URL Telegram posts to, e.g. https://…/telegram/webhook"
            )
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_for_webhook(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("mode") == "webhook" and not WEBHOOK_SECRET.fullmatch(value):
            raise ValueError(
                "webhook mode needs a secret of 1-256 characters from A-Z, a-z, 0-9, _ and -"
            )
        return value


class WeChatMenuItem(_Section):
    """A menu button: a command to run when clicked, or a group of buttons under a name."""

    name: str = Field(min_length=1, max_length=16)
    command: str = ""
    items: list[WeChatMenuItem] = Field(default_factory=list, max_length=5)


class WeChatSettings(_Section):
    """A WeChat Official Account (公众号); served when `token` and `appid` are set."""

    token: str = ""
    appid: str = ""
    secret: str = ""
    mode: Literal["plain", "compat", "safe"] = "safe"
    # The EncodingAESKey: 43 characters, needed in compat and safe mode.
    aes_key: str = Field(default="", validate_default=True)
    # Every outbound call goes through it, the access-token fetch included.
    api_base_url: str = "https://api.weixin.qq.com"
    # Template ids per notification kind, for messages outside the customer-service window.
    templates: dict[str, str] = Field(default_factory=dict)
    # WeChat's rules: the customer-service API reaches a person for 48 h after they wrote,
    # with at most 5 messages per message of theirs.
    window_hours: float = Field(default=48, gt=0)
    window_quota: int = Field(default=5, ge=1)
    # Broadcasts go out through the API at most this many messages a second (0: no limit).
    messages_per_second: float = Field(default=50.0, ge=0, le=1000)
    # A callback is answered in place when its reply is ready this soon (WeChat waits 5 s).
    reply_budget_seconds: float = Field(default=3.0, gt=0, le=4.5)
    # `linli wechat menu` installs it; a click runs the command, as typing it would.
    menu: list[WeChatMenuItem] = Field(default_factory=list, max_length=3)

    @field_validator("aes_key")
    @classmethod
    def _key_for_encryption(cls, value: str, info: ValidationInfo) -> str:
        if value and len(value) != 43:
            raise ValueError("the EncodingAESKey has 43 characters")
        if not value and info.data.get("mode") != "plain" and info.data.get("token"):
            raise ValueError("compat and safe mode need the EncodingAESKey (aes_key)")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.token and self.appid)


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Signs the links to stored photos (/media/<key>); empty: a random one per process, so
    # several workers behind one address need the same one.
    media_secret: str = ""


class GridSettings(_Section):
    name: str = Field(min_length=1)
    buildings: list[str] = Field(min_length=1)


class BuildingLayout(_Section):
    """How rooms are numbered: floor digit(s) followed by a two-digit home number."""

    floors: int = Field(default=6, ge=1, le=99)
    homes_per_floor: int = Field(default=4, ge=1, le=99)


class CommunitySettings(_Section):
    name: str = "Linli demo community"
    timezone: str = "Asia/Shanghai"
    default_locale: Literal["zh_CN", "en"] = "zh_CN"
    approval: Literal["auto", "building_head"] = "auto"
    grids: list[GridSettings] = Field(default_factory=list)
    layout: BuildingLayout = Field(default_factory=BuildingLayout)
    places: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("grids")
    @classmethod
    def _unique_buildings(cls, grids: list[GridSettings]) -> list[GridSettings]:
        seen: set[str] = set()
        for grid in grids:
            for building in grid.buildings:
                if building in seen:
                    raise ValueError(f"building {building!r} is listed twice")
                seen.add(building)
        return grids


class CategorySettings(_Section):
    """One kind of problem residents report, and who must fix it how fast."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    # grid_worker: the building's grid worker; property: property management; department:
    # a municipal department, named in `department`.
    owner: Literal["grid_worker", "property", "department"] = "grid_worker"
    department: str = ""
    sla_hours: float = Field(gt=0)
    points: int = Field(default=0, ge=0)
    photo_required: bool = True

    @model_validator(mode="after")
    def _department_named(self) -> CategorySettings:
        if self.owner == "department" and not self.department:
            raise ValueError(f"category {self.code!r} is owned by a department but names none")
        return self


class ReportSettings(_Section):
    categories: list[CategorySettings] = Field(default_factory=list)
    # Photos and voice notes, content-addressed (services/media/storage.py).
    media_dir: str = "data/media"
    max_voice_notes: int = Field(default=2, ge=0, le=10)
    max_photos: int = Field(default=4, ge=1, le=10)
    description_limit: int = Field(default=1000, ge=50)
    duplicate_days: int = Field(default=14, ge=0)
    duplicate_phash_distance: int = Field(default=10, ge=0, le=64)
    autoclose_days: int = Field(default=7, ge=1)
    reminder_fraction: float = Field(default=0.75, gt=0, lt=1)
    # Photos fetched and decoded at once (handlers/reports/intake.py); each may take ~150 MB.
    max_concurrent_decodes: int = Field(default=2, ge=1)

    @field_validator("categories")
    @classmethod
    def _unique_codes(cls, categories: list[CategorySettings]) -> list[CategorySettings]:
        codes = [c.code for c in categories]
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            raise ValueError(f"category codes listed twice: {', '.join(duplicates)}")
        return categories


class DialogueSettings(_Section):
    flow_timeout_minutes: int = Field(default=30, ge=1)
    max_text_length: int = Field(default=4000, ge=100)


class SchedulerSettings(_Section):
    tick_seconds: float = Field(default=15.0, gt=0)


class VotingSettings(_Section):
    """Anonymous polls name voters by a token derived with this key, which must not be in the
    database (DESIGN.md "Votes"). Empty: a random key kept in `voter_key_file`, made once."""

    voter_key: str = ""
    voter_key_file: str = "data/voter.key"


class AgendaSettings(_Section):
    """The monthly 议事厅 cycle, by day of the month in the community's timezone: proposals
    from `proposal_start_day` to the end of `proposal_end_day`, voting from `voting_start_day`
    until the publication at `publish_day` `publish_time`. Days stop at 28, so every month
    has them."""

    proposal_start_day: int = Field(default=1, ge=1, le=28)
    proposal_end_day: int = Field(default=15, ge=1, le=28)
    voting_start_day: int = Field(default=16, ge=1, le=28)
    publish_day: int = Field(default=25, ge=1, le=28)
    publish_time: str = Field(default="20:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    # Approval voting: each voter may choose up to this many items.
    votes_per_voter: int = Field(default=3, ge=1, le=20)
    # The top N items go to the residents' council.
    council_items: int = Field(default=5, ge=1, le=50)
    eligibility: Literal["resident", "household"] = "household"
    title_limit: int = Field(default=60, ge=10, le=60)

    @model_validator(mode="after")
    def _phases_in_order(self) -> AgendaSettings:
        if not (
            self.proposal_start_day
            <= self.proposal_end_day
            < self.voting_start_day
            <= self.publish_day
        ):
            raise ValueError(
                "the phases must follow each other: proposal_start_day <= proposal_end_day "
                "< voting_start_day <= publish_day"
            )
        return self


class PointsRules(_Section):
    """Points earned for taking part, by rule: each is recorded as a pending award that the
    points ledger pays (services/points/awards.py). 0 turns a rule off."""

    # A resident's (or household's) first ballot in a poll; a changed ballot earns no more.
    vote_cast: int = Field(default=1, ge=0)
    # A proposal of the monthly agenda that the vote sends to the residents' council.
    proposal_selected: int = Field(default=10, ge=0)
    # A report accepted for handling (a report category's own `points` comes first).
    report_accepted: int = Field(default=5, ge=0)
    # An hour of volunteering logged by the time-bank coordinator, a day of garbage sorting
    # checked at the station, and a resident's first registration.
    volunteer_hour: int = Field(default=10, ge=0)
    sorting_day: int = Field(default=2, ge=0)
    first_registration: int = Field(default=5, ge=0)

    def amount(self, rule: str) -> int:
        """A rule's amount by its name (`[points.rules]`), as `/award` and the CLI name it."""
        if rule not in type(self).model_fields:
            raise KeyError(rule)
        return int(getattr(self, rule))


class PointsSettings(_Section):
    rules: PointsRules = Field(default_factory=PointsRules)
    # A redeemed reward unclaimed this many days expires, and its points come back.
    pickup_days: int = Field(default=14, ge=1, le=365)
    # Time-bank help an elderly resident (marked by staff) cannot pay with their own minutes
    # is covered by the pool, up to this many minutes a month each. 0: no cover.
    timebank_elder_monthly_minutes: int = Field(default=600, ge=0, le=100_000)


class BroadcastSettings(_Section):
    # An announcement that asks for acknowledgement goes again to those who have not
    # acknowledged after this long, this many times (0 to 2); after the last, and the same
    # wait, each building head gets the list of their residents who still have not.
    ack_resend_hours: float = Field(default=4.0, gt=0, le=168)
    ack_resends: int = Field(default=1, ge=0, le=2)
    # A message claimed by a process that died before saying it was sent goes out after this
    # long (it may have gone: the only case that can send one twice).
    reclaim_after_seconds: float = Field(default=60.0, gt=0, le=3600)
    # Other errors are retried with back-off up to this many attempts, then counted failed.
    max_attempts: int = Field(default=5, ge=1, le=20)


class RedisSettings(_Section):
    # Where every process of the bot keeps Telegram's send pace (bot/pace.py); empty: in the
    # database (PostgreSQL) or in memory (SQLite's one process).
    url: str = ""


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    wechat: WeChatSettings = Field(default_factory=WeChatSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    community: CommunitySettings = Field(default_factory=CommunitySettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    dialogue: DialogueSettings = Field(default_factory=DialogueSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    voting: VotingSettings = Field(default_factory=VotingSettings)
    points: PointsSettings = Field(default_factory=PointsSettings)
    agenda: AgendaSettings = Field(default_factory=AgendaSettings)
    broadcast: BroadcastSettings = Field(default_factory=BroadcastSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first so that LINLI_… overrides the file passed in as init data.
        return (env_settings, init_settings)


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown configuration key {location}"
    if kind == "missing":
        return f"missing configuration key {location}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"bad value for {location}: {message}"


def _check_env_keys(environ: dict[str, str]) -> None:
    """Reject misspelt overrides: pydantic-settings silently ignores unknown env names."""
    sections = Settings.model_fields
    for name in environ:
        if not name.startswith(ENV_PREFIX) or name == "LINLI_CONFIG":
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        section = sections.get(parts[0])
        if section is None:
            raise ConfigError(f"unknown configuration key {parts[0]} (from {name})")
        model = section.annotation
        if len(parts) > 1 and isinstance(model, type) and issubclass(model, BaseModel):
            if parts[1] not in model.model_fields:
                raise ConfigError(f"unknown configuration key {parts[0]}.{parts[1]} (from {name})")


def config_path(explicit: str | os.PathLike[str] | None, environ: dict[str, str]) -> Path:
    if explicit:
        return Path(explicit)
    if environ.get("LINLI_CONFIG"):
        return Path(environ["LINLI_CONFIG"])
    return DEFAULT_CONFIG


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Read, overlay and validate; every failure becomes one ConfigError line."""
    env = dict(os.environ if environ is None else environ)
    source = config_path(path, env)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {source} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {source} is not valid TOML: {exc}") from exc
    _check_env_keys(env)
    saved = dict(os.environ)
    try:
        # pydantic-settings reads os.environ itself; swap in the environment we were given.
        os.environ.clear()
        os.environ.update(env)
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0])) from exc
    finally:
        os.environ.clear()
        os.environ.update(saved)
