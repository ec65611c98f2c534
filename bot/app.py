"""Assembly: every dependency is built here from the settings and passed in, never looked up."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from bot import database, logs
from bot.broadcasting import BroadcastDispatcher
from bot.channels.console import ConsoleChannel
from bot.channels.telegram import MenuEntry, TelegramChannel
from bot.channels.wechat import WeChatChannel
from bot.config import Settings
from bot.delivery import OutboxDispatcher, Sender
from bot.pace import DatabasePace, MemoryPace, Pace, RedisPace
from bot.scheduler import Ticker, start_scheduler
from bot.web import build_web_app, media_route
from handlers.agenda.schedule import AgendaJobs
from handlers.broadcasts.jobs import BroadcastJobs
from handlers.catalog import build_registry
from handlers.engine import DialogueEngine, FlowRegistry, system_clock
from handlers.flow import CommunityRules
from handlers.help import CANCEL_DESCRIPTION
from handlers.i18n import Catalogs
from handlers.messages import FileRef
from handlers.points import StatementJob
from handlers.poll_schedule import PollJobs
from handlers.reports.intake import Fetch, MediaIntake
from handlers.reports.rules import CategoryRule, ReportRules
from handlers.reports.schedule import ReportJobs
from handlers.rewards import RewardRules
from handlers.start_links import StartLinks
from models import Role
from services import community
from services.agenda.rules import AgendaRules
from services.broadcasts import acks
from services.community import CommunitySpec, GridSpec
from services.media import LocalStorage, MediaStorage
from services.media.garbage import MediaCollector
from services.points import awards as points_awards
from services.points import rewards as points_rewards
from services.points.timebank import Policy as TimeBankPolicy
from services.reports import queries as report_queries
from services.reports.policy import Category, ReportPolicy
from services.sql import Transaction
from services.voting import keys

log = logging.getLogger("linli")
# How often a console looks for messages other processes queued for its person.
CONSOLE_POLL_SECONDS = 1.0


def community_spec(settings: Settings) -> CommunitySpec:
    c = settings.community
    return CommunitySpec(
        name=c.name,
        timezone=c.timezone,
        grids=tuple(GridSpec(g.name, tuple(g.buildings)) for g in c.grids),
        floors=c.layout.floors,
        homes_per_floor=c.layout.homes_per_floor,
    )


def community_rules(settings: Settings) -> CommunityRules:
    return CommunityRules(
        name=settings.community.name,
        default_locale=settings.community.default_locale,
        approval=settings.community.approval,
        flow_timeout_minutes=settings.dialogue.flow_timeout_minutes,
        max_text_length=settings.dialogue.max_text_length,
        welcome_points=settings.points.rules.first_registration,
    )


def agenda_rules(settings: Settings) -> AgendaRules:
    a = settings.agenda
    return AgendaRules(
        timezone=settings.community.timezone,
        proposal_start_day=a.proposal_start_day,
        proposal_end_day=a.proposal_end_day,
        voting_start_day=a.voting_start_day,
        publish_day=a.publish_day,
        publish_time=a.publish_time,
        votes_per_voter=a.votes_per_voter,
        council_items=a.council_items,
        per_household=a.eligibility == "household",
        title_limit=a.title_limit,
        description_limit=settings.dialogue.max_text_length,
        selected_points=settings.points.rules.proposal_selected,
        vote_points=settings.points.rules.vote_cast,
    )


def broadcast_policy(settings: Settings) -> acks.Policy:
    hours = timedelta(hours=settings.broadcast.ack_resend_hours)
    return acks.Policy(
        resend_after=hours, resends=settings.broadcast.ack_resends, doorknock_after=hours
    )


def report_rules(settings: Settings) -> ReportRules:
    r = settings.report
    categories = tuple(
        Category(
            c.code,
            c.owner,
            c.sla_hours,
            department=c.department,
            points=c.points,
            photo_required=c.photo_required,
        )
        for c in r.categories
    )
    return ReportRules(
        categories=tuple(
            CategoryRule(category, c.name_zh, c.name_en)
            for category, c in zip(categories, r.categories, strict=True)
        ),
        places=tuple(settings.community.places),
        storage=LocalStorage(r.media_dir, secret=settings.web.media_secret.encode() or None),
        timezone=settings.community.timezone,
        policy=ReportPolicy(
            categories=categories,
            reminder_fraction=r.reminder_fraction,
            duplicate_days=r.duplicate_days,
            phash_distance=r.duplicate_phash_distance,
            autoclose_days=r.autoclose_days,
        ),
        max_photos=r.max_photos,
        max_voice_notes=r.max_voice_notes,
        description_limit=r.description_limit,
    )


def public_menu(registry: FlowRegistry) -> list[MenuEntry]:
    """What anyone may do, and what every resident may: /help shows the role-specific rest."""
    entries = [
        MenuEntry(f.command, f.description)
        for f in registry.commands()
        if f.roles is None or Role.RESIDENT in f.roles
    ]
    return [*entries, MenuEntry("cancel", CANCEL_DESCRIPTION)]  # type: ignore[arg-type]


class Channel(Sender, Protocol):
    async def fetch(self, ref: FileRef, limit: int) -> bytes: ...


@dataclass
class Linli:
    settings: Settings
    database: database.Database
    catalogs: Catalogs
    registry: FlowRegistry
    dialogue: DialogueEngine
    dispatcher: OutboxDispatcher
    # Broadcasts: their own rows and pace (bot/broadcasting.py).
    broadcasts: BroadcastDispatcher
    ticker: Ticker
    # How each running channel hands over a file's bytes; channels add themselves as they start.
    fetchers: dict[str, Fetch]
    # The monthly cycle's moves, for `linli agenda advance` as for the tick.
    agenda: AgendaJobs
    # Where photos and voice notes are stored, by content key (what the console links to).
    media: MediaStorage | None = None
    telegram: TelegramChannel | None = None
    wechat: WeChatChannel | None = None
    web: Starlette | None = field(default=None)

    @property
    def voter_key(self) -> bytes:
        """The key behind anonymous voters' tokens ([voting]; made once, never in the database)."""
        return self.agenda.voter_key()

    @property
    def db(self) -> AsyncEngine:
        return self.database.engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.database.sessions

    @property
    def transaction(self) -> Transaction:
        return self.database.transaction

    def attach(self, channel: Channel) -> None:
        """A running channel: the outbox can send through it, intake can fetch files from it."""
        self.dispatcher.register(channel)
        self.broadcasts.register(channel)
        self.fetchers[channel.name] = channel.fetch
        self.dialogue.capabilities[channel.name] = channel.capabilities

    async def init(self) -> community.LoadSummary:
        """`linli init`: migrate, then create whatever of the configured structure is missing."""
        await database.migrate(self.db)
        async with self.transaction() as session:
            summary = await community.load_structure(session, community_spec(self.settings))
            # The tick skips these (handlers/reports/schedule.py): say so once, at start-up.
            configured = [c.code for c in self.settings.report.categories]
            for report in await report_queries.open_outside(session, configured):
                log.warning(
                    "open report %s has category %r, which is no longer configured; "
                    "it is neither dispatched nor escalated until it is back in [[report.categories]]",
                    report.number,
                    report.category,
                )
            return summary

    @property
    def has_platform(self) -> bool:
        """A chat platform is configured; without one, `linli run` opens the console."""
        return self.telegram is not None or self.wechat is not None

    async def close(self) -> None:
        await self.dispatcher.drain()
        if self.wechat is not None:
            await self.wechat.close()
        await self.dialogue.receipts.close()
        await self.database.close()


def assemble(settings: Settings, *, clock: Callable[[], datetime] = system_clock) -> Linli:
    logs.keep_private()
    store = database.Database(
        database.create_engine(settings.database.url, echo=settings.database.echo)
    )
    catalogs = Catalogs()
    reports = report_rules(settings)
    # Read (or made) the first time a vote needs it, not by every command that starts up.
    voter_key = functools.cache(
        lambda: keys.voter_key(settings.voting.voter_key, settings.voting.voter_key_file)
    )
    agenda = agenda_rules(settings)
    # How the bot's deep links are made, told by the Telegram channel once it has started.
    links = StartLinks()
    registry = build_registry(
        reports,
        voter_key,
        agenda,
        vote_points=settings.points.rules.vote_cast,
        rule_amounts=settings.points.rules.model_dump(),
        rewards=RewardRules(
            settings.community.timezone,
            settings.points.pickup_days,
            reports.storage,
            links,
        ),
        timebank=TimeBankPolicy(
            settings.points.timebank_elder_monthly_minutes,
            settings.points.rules.volunteer_hour,
            settings.community.timezone,
        ),
        broadcast_hours=settings.broadcast.ack_resend_hours,
    )
    dispatcher = OutboxDispatcher(store.transaction, clock)
    broadcasts = BroadcastDispatcher(
        store.transaction,
        clock,
        catalogs,
        settings.community.default_locale,
        registry.notices,
        after_notices=dispatcher.kick,
        reclaim_after=timedelta(seconds=settings.broadcast.reclaim_after_seconds),
        max_attempts=settings.broadcast.max_attempts,
    )
    # Telegram's limits, kept by every process of the bot: in Redis when configured, in the
    # database when processes share PostgreSQL, else in memory (SQLite's one process).
    pace: Pace = (
        RedisPace(settings.redis.url)
        if settings.redis.url
        else DatabasePace(store.engine)
        if store.engine.dialect.name == "postgresql"
        else MemoryPace()
    )
    fetchers: dict[str, Fetch] = {}
    dialogue = DialogueEngine(
        store.transaction,
        registry,
        catalogs,
        community_rules(settings),
        clock=clock,
        after_commit=dispatcher.kick,
        intake=MediaIntake(
            reports.storage,
            fetchers,
            reports.limits,
            reports.max_voice_bytes,
            max_concurrent_decodes=settings.report.max_concurrent_decodes,
        ),
    )
    jobs = ReportJobs(reports, catalogs, settings.community.default_locale, registry.notices)
    agenda_jobs = AgendaJobs(
        agenda, catalogs, settings.community.default_locale, registry.notices, voter_key
    )
    linli = Linli(
        settings=settings,
        database=store,
        catalogs=catalogs,
        registry=registry,
        dialogue=dialogue,
        dispatcher=dispatcher,
        broadcasts=broadcasts,
        ticker=Ticker(
            store.transaction,
            dispatcher,
            clock,
            jobs=[
                jobs,
                PollJobs(catalogs, settings.community.default_locale, registry.notices, voter_key),
                agenda_jobs,
                MediaCollector(reports.storage),
                points_awards.settle_job,
                points_rewards.expire_due,
                StatementJob(
                    catalogs,
                    settings.community.default_locale,
                    registry.notices,
                    settings.community.timezone,
                ),
                BroadcastJobs(
                    catalogs,
                    settings.community.default_locale,
                    registry.notices,
                    broadcast_policy(settings),
                    broadcasts.kick,
                ),
            ],
        ),
        fetchers=fetchers,
        agenda=agenda_jobs,
        media=reports.storage,
    )
    if settings.telegram.token:
        linli.telegram = TelegramChannel(
            settings.telegram,
            dialogue.handle,
            catalogs,
            public_menu(registry),
            settings.community.default_locale,
            media=reports.storage,
            transaction=store.transaction,
            links=links,
            pace=pace,
        )
        linli.attach(linli.telegram)
    if settings.wechat.enabled:
        linli.wechat = WeChatChannel(
            settings.wechat,
            dialogue.handle,
            media=reports.storage,
            transaction=store.transaction,
            pace=pace,
        )
        linli.attach(linli.wechat)
    routes = [media_route(reports.storage)]
    for platform in (linli.telegram, linli.wechat):
        if platform is not None:
            routes += platform.routes()
    linli.web = build_web_app(store.engine, routes)
    return linli


class _QuietServer(uvicorn.Server):
    """Signals belong to `serve`, which stops every part, not just the web server."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


async def serve(linli: Linli, *, console_user: str | None = None) -> None:
    """`linli run`: web app, scheduler tick, Telegram (or the console), until SIGTERM/SIGINT."""
    settings = linli.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    assert linli.web is not None
    server = _QuietServer(
        uvicorn.Config(
            linli.web,
            host=settings.web.host,
            port=settings.web.port,
            log_level="warning",
            lifespan="off",
        )
    )
    web_task = asyncio.create_task(server.serve())
    checkpoints = asyncio.create_task(linli.database.keep_checkpointing())
    scheduler = start_scheduler(linli.ticker, settings.scheduler.tick_seconds)
    console_task: asyncio.Task[None] | None = None
    # The console's own poll of the outbox: the tick is too slow for a card that another
    # process queued for the person at this keyboard.
    deliveries: asyncio.Task[None] | None = None
    sending: asyncio.Task[None] | None = None
    try:
        if linli.telegram is not None:
            await linli.telegram.start()
            log.info(
                "serving Telegram in %s mode as @%s",
                settings.telegram.mode,
                linli.telegram.username,
            )
        if linli.wechat is not None:
            log.info("serving WeChat at /wechat in %s mode", settings.wechat.mode)
        if not linli.has_platform and console_user is not None:
            console = ConsoleChannel(linli.dialogue.handle, console_user, media=linli.media)
            linli.attach(console)
            console_task = asyncio.create_task(console.run())  # its banner comes first
            deliveries = asyncio.create_task(linli.dispatcher.poll(CONSOLE_POLL_SECONDS))
            if console.stdin.isatty():
                # Ctrl-D ends a person's session; a closed pipe (a service manager) does not.
                console_task.add_done_callback(lambda _t: stop.set())
        await linli.ticker.safe_tick()  # deliver what a previous run left in the outbox
        # Broadcasts go on from where a previous run stopped (rows in flight are offered again).
        sending = asyncio.create_task(linli.broadcasts.run())
        # Everything built so far lives as long as the process: keep it out of the cyclic
        # collector's full passes, which otherwise pause every chat for tens of milliseconds.
        gc.collect()
        gc.freeze()
        await stop.wait()
    finally:
        log.info("stopping")
        if console_task is not None:
            console_task.cancel()
        if deliveries is not None:
            deliveries.cancel()  # a batch being sent is finished by the drain below
        # A tick that is running finishes first: shutting the scheduler down cancels it.
        scheduler.pause()
        await linli.ticker.finish()
        scheduler.shutdown(wait=False)
        # Messages already being sent finish while their channel can still carry them.
        if sending is not None:
            await linli.broadcasts.stop(sending)
        await linli.dispatcher.drain()
        if linli.telegram is not None:
            await linli.telegram.stop()
        server.should_exit = True
        await web_task
        checkpoints.cancel()
        await linli.close()
