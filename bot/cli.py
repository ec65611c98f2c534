"""`linli` commands (DESIGN.md "The public interface"). Exit status 2 means bad configuration."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import uvloop
from sqlalchemy.ext.asyncio import AsyncSession

from bot import database
from bot.app import CONSOLE_POLL_SECONDS, Linli, assemble, report_rules, serve
from bot.channels.console import ConsoleChannel
from bot.channels.telegram import deep_link
from bot.config import ConfigError, Settings, load_settings
from handlers.flow import Notifier
from handlers.i18n import CatalogError
from models import Broadcast, Person, Poll, Role, RoleAssignment
from services import audit, community, group_catch_up, groups, invites, people
from services.agenda import cycles as agenda_cycles
from services.broadcasts import audience as broadcast_audience
from services.broadcasts import compose as broadcast_compose
from services.broadcasts import deliveries as broadcast_deliveries
from services.broadcasts import html as broadcast_html
from services.points import audit as points_audit
from services.points import awards as points_awards
from services.points import imports as points_imports
from services.points import ledger as points_ledger
from services.points import rewards as points_rewards
from services.points import timebank as points_timebank
from services.registration import scopes
from services.reports.handing import HandedOn, hand_on_uncovered
from services.scopes import parse as parse_scope
from services.voting import notices as poll_notices
from services.voting import polls, proxies
from services.voting.audit import audit_poll

log = logging.getLogger("linli")
# `linli points import`: a file larger than this is refused, not read whole.
IMPORT_LIMIT = 10_000_000


class UsageError(Exception):
    """A command-line mistake the operator can fix; printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linli", description="Linli community chatbot")
    parser.add_argument("--config", help="configuration file (default: bot.toml or $LINLI_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="serve everything the configuration turns on")
    commands.add_parser("init", help="migrate the database and load the community structure")
    chat = commands.add_parser("chat", help="talk to the bot in this terminal")
    chat.add_argument("--as", dest="user", default=None, help="who you are in the console")
    invite = commands.add_parser("invite", help="print an invite code and its deep link")
    invite.add_argument("--building", required=True)
    invite.add_argument("--role", default="resident", choices=[r.value for r in Role])
    invite.add_argument("--uses", type=int, default=1)
    invite.add_argument("--expires", type=float, default=None, metavar="DAYS")
    invite.add_argument("--qr", type=Path, default=None, metavar="FILE.png")
    invite.add_argument(
        "--wechat",
        action="store_true",
        help="a WeChat parametric QR code (scene = the code): scanning it subscribes and joins",
    )
    wechat = commands.add_parser("wechat", help="the WeChat Official Account")
    wechat_actions = wechat.add_subparsers(dest="action", required=True)
    wechat_actions.add_parser("menu", help="install the account's menu from bot.toml")
    admin = commands.add_parser("admin", help="grant, revoke and list roles")
    actions = admin.add_subparsers(dest="action", required=True)
    for name in ("grant", "revoke"):
        action = actions.add_parser(name)
        action.add_argument("--role", required=True, choices=[r.value for r in Role])
        scope = action.add_mutually_exclusive_group()
        scope.add_argument("--building")
        scope.add_argument("--grid")
        scope.add_argument("--department", help="a department named in [[report.categories]]")
        _person_arguments(action)
    actions.add_parser("list")
    group = commands.add_parser("group", help="the group chats and the scope each serves")
    group_actions = group.add_subparsers(dest="action", required=True)
    group_actions.add_parser("list", help="one group a line: chat id, title, scope")
    link = group_actions.add_parser("link", help="make a group serve a scope")
    link.add_argument("chat_id", metavar="CHAT_ID")
    link.add_argument("--scope", required=True, help="community, grid:NAME or building:NAME")
    unlink = group_actions.add_parser("unlink", help="make a group serve nothing")
    unlink.add_argument("chat_id", metavar="CHAT_ID")
    poll = commands.add_parser("poll", help="building polls")
    poll_actions = poll.add_subparsers(dest="action", required=True)
    create = poll_actions.add_parser("create", help="open a poll; prints its id")
    create.add_argument("--scope", required=True, help="community, grid:NAME or building:NAME")
    create.add_argument("--question", required=True)
    create.add_argument("--option", action="append", required=True, dest="options")
    create.add_argument("--multiple", type=int, default=1, metavar="MAX")
    create.add_argument("--anonymous", action="store_true")
    create.add_argument("--per-household", action="store_true")
    create.add_argument("--quorum", type=int, default=None, metavar="PERCENT")
    create.add_argument(
        "--deadline", required=True, metavar="TIME", help="ISO 8601, in the community's timezone"
    )
    create.add_argument("--no-private", action="store_true", help="group chats only")
    poll_actions.add_parser("list", help="one poll a line, its id first")
    close = poll_actions.add_parser("close", help="close a poll now and publish its results")
    close.add_argument("poll_id", type=int, metavar="ID")
    proxy = commands.add_parser("proxy", help="who may vote for a resident without a phone")
    proxy_actions = proxy.add_subparsers(dest="action", required=True)
    for name in ("grant", "revoke"):
        action = proxy_actions.add_parser(name)
        _person_arguments(action)
        _person_arguments(action, "proxy-")
        if name == "grant":
            when = action.add_mutually_exclusive_group(required=True)
            when.add_argument("--poll", type=int, metavar="ID")
            when.add_argument("--month", metavar="YYYY-MM")
    points = commands.add_parser("points", help="participation points (积分)")
    points_actions = points.add_subparsers(dest="action", required=True)
    award = points_actions.add_parser("award", help="award points by hand, with a note")
    _person_arguments(award)
    how_much = award.add_mutually_exclusive_group(required=True)
    how_much.add_argument("--rule", help="a rule of [points.rules], e.g. sorting_day")
    how_much.add_argument("--amount", type=int, metavar="N")
    award.add_argument("--note", required=True, help="why: shown to the resident, audited")
    bulk = points_actions.add_parser(
        "import", help="awards from a CSV file (person, rule or amount, note); a dry run"
    )
    bulk.add_argument("file", type=Path, metavar="FILE.csv")
    bulk.add_argument("--apply", action="store_true", help="apply it (when every row is valid)")
    _rewards_parser(commands)
    _broadcast_parser(commands)
    timebank = commands.add_parser("timebank", help="the time bank (时间银行)")
    timebank_actions = timebank.add_subparsers(dest="action", required=True)
    cover = timebank_actions.add_parser(
        "cover", help="mark an elderly resident whose help the pool covers (--remove: unmark)"
    )
    _person_arguments(cover)
    cover.add_argument("--remove", action="store_true")
    agenda = commands.add_parser("agenda", help="the monthly agenda cycle (议事厅)")
    agenda_actions = agenda.add_subparsers(dest="action", required=True)
    agenda_actions.add_parser(
        "advance", help="move the cycle to its next phase now; prints the new phase"
    )
    agenda_actions.add_parser("status", help="the current month, its phase and its times")
    audit_command = commands.add_parser("audit", help="check what must never be wrong")
    audit_actions = audit_command.add_subparsers(dest="action", required=True)
    audit_poll = audit_actions.add_parser("poll", help="rebuild a poll's log and tally")
    audit_poll.add_argument("poll_id", type=int, metavar="ID")
    audit_actions.add_parser(
        "points", help="recompute every balance from the entries; check every transfer"
    )
    return parser


def _person_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """A person, named as in `admin grant` (`prefix`: a second person, e.g. a proxy)."""
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument(f"--{prefix}telegram-id", metavar="ID")
    who.add_argument(f"--{prefix}wechat-openid", metavar="ID", help="a WeChat user's OpenID")
    who.add_argument(f"--{prefix}console", metavar="NAME", help="a `linli chat --as NAME` user")


def _rewards_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rewards = commands.add_parser("rewards", help="the rewards residents redeem points for")
    actions = rewards.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="one reward a line: id, price, stock, state, until, names")
    add = actions.add_parser("add", help="add a reward; prints its id")
    add.add_argument("--name-zh", required=True)
    add.add_argument("--name-en", required=True)
    add.add_argument("--price", type=int, required=True, metavar="POINTS")
    add.add_argument("--stock", type=int, required=True, metavar="N")
    add.add_argument("--from", dest="starts", metavar="YYYY-MM-DD", help="default: today")
    add.add_argument("--until", required=True, metavar="YYYY-MM-DD", help="its last day")
    stock = actions.add_parser("stock", help="set how many are in stock")
    stock.add_argument("reward_id", type=int, metavar="ID")
    stock.add_argument("stock", type=int, metavar="N")
    close = actions.add_parser("close", help="stop offering a reward (held codes stay good)")
    close.add_argument("reward_id", type=int, metavar="ID")


def _broadcast_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    broadcast = commands.add_parser(
        "broadcast",
        help="an announcement: prints its id and recipient count; `status ID`, `list`, `cancel ID`",
    )
    broadcast.add_argument(
        "action", nargs="*", metavar="status ID | list | cancel ID", help="instead of sending"
    )
    broadcast.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help="community, grid:NAME, building:NAME, role:ROLE or category:CODE; repeatable",
    )
    broadcast.add_argument("--text-file", type=Path, metavar="F", help="UTF-8, Telegram's HTML")
    broadcast.add_argument("--ack", action="store_true", help="ask for acknowledgement")
    broadcast.add_argument("--at", metavar="TIME", help="ISO 8601, in the community's timezone")
    broadcast.add_argument(
        "--where",
        choices=("private", "groups", "both"),
        default="both",
        help="private chats, the scopes' group chats, or both (default)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"linli: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log.level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.command == "chat" or (
        args.command == "run" and not (settings.telegram.token or settings.wechat.enabled)
    ):
        # The terminal is the chat window: keep the per-update log lines out of it.
        logging.getLogger().setLevel(logging.WARNING)
    try:
        # uvloop: the bot is a busy event loop (HTTP, thread hops to SQLite); see bench/.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_dispatch(args, settings))
    except UsageError as exc:
        print(f"linli: {exc}", file=sys.stderr)
        return 2
    except CatalogError as exc:
        # A broken installation: speaking English to everyone instead would go unnoticed.
        print(f"linli: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    linli = assemble(settings)
    try:
        if args.command == "init":
            summary = await linli.init()
            print(
                "database ready; "
                + (f"{summary.created} records created" if summary.changed else "nothing changed")
            )
            return 0
        if args.command == "run":
            await linli.init()
            console_user = None if linli.has_platform else getpass.getuser()
            await serve(linli, console_user=console_user)
            return 0
        if args.command == "chat":
            await linli.init()
            return await _chat(linli, args.user or getpass.getuser())
        if not await database.is_migrated(linli.db):
            raise UsageError("the database is not set up yet; run `linli init` first")
        if args.command == "invite":
            return await _invite(linli, args)
        if args.command == "wechat":
            return await _wechat_menu(linli)
        if args.command == "admin":
            return await _admin(linli, args)
        if args.command == "group":
            return await _group(linli, args)
        if args.command == "poll":
            return await _poll(linli, args)
        if args.command == "audit":
            return await _audit(linli, args)
        if args.command == "proxy":
            return await _proxy(linli, args)
        if args.command == "points":
            return await _points(linli, args)
        if args.command == "agenda":
            return await _agenda(linli, args)
        if args.command == "broadcast":
            return await _broadcast(linli, args)
        if args.command == "rewards":
            return await _rewards(linli, args)
        if args.command == "timebank":
            return await _timebank(linli, args)
    finally:
        await linli.close()
    raise AssertionError(args.command)


async def _chat(linli: Linli, user: str) -> int:
    console = ConsoleChannel(linli.dialogue.handle, user, media=linli.media)
    linli.attach(console)
    checkpoints = asyncio.create_task(linli.database.keep_checkpointing())
    # No scheduler tick here: this poll brings what other processes queued for this person
    # (a card for the worker at this keyboard), printed between prompts.
    deliveries = asyncio.create_task(linli.dispatcher.poll(CONSOLE_POLL_SECONDS))
    try:
        await console.run()
    finally:
        deliveries.cancel()  # a batch being sent is finished by linli.close()'s drain
        checkpoints.cancel()
    return 0


async def _wechat_menu(linli: Linli) -> int:
    if linli.wechat is None:
        raise UsageError("no WeChat account configured ([wechat] token and appid)")
    buttons = await linli.wechat.install_menu()
    print(f"wechat menu: {buttons} buttons")
    return 0


async def _group(linli: Linli, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.action == "list":
        async with linli.sessions() as session:
            for group in await groups.listing(session):
                scope = group.scope.spelled if group.scope is not None else "-"
                print(f"{group.chat_id}\t{group.title or '-'}\t{scope}")
        return 0
    async with linli.transaction() as session:
        known = await groups.find_chat(session, args.chat_id)
        if args.action == "unlink":
            if known is None:
                raise UsageError(f"no group chat {args.chat_id}")
            changed = await groups.unlink(session, known.channel, known.chat_id, now)
            print(f"group {args.chat_id}: {'unlinked' if changed else 'was not linked'}")
            return 0
        scope = await parse_scope(session, args.scope)
        if scope is None:
            raise UsageError(
                f"no scope {args.scope!r}: write community, grid:NAME or building:NAME"
            )
        if known is None:
            # Groups exist on Telegram only (an Official Account has none); one the bot has
            # not heard from yet is recorded now, to be served once it is in it.
            group_id = (await groups.seen(session, "telegram", args.chat_id, "", now)).id
        else:
            group_id = known.id
        if await groups.link(session, group_id, scope, now):
            await _notifier(linli, session, now).tell(
                await group_catch_up.catch_up(session, group_id, now)
            )
    print(f"group {args.chat_id}: {scope.spelled}")
    return 0


async def _poll(linli: Linli, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    zone = ZoneInfo(linli.settings.community.timezone)
    if args.action == "list":
        async with linli.sessions() as session:
            for poll in await polls.listing(session):
                deadline = poll.deadline.astimezone(zone).isoformat(timespec="minutes")
                print(f"{poll.id}\t{poll.status}\t{deadline}\t{poll.question}")
        return 0
    if args.action == "close":
        async with linli.transaction() as session:
            found = await session.get(Poll, args.poll_id)
            if found is not None and found.purpose != "poll":
                raise UsageError(
                    f"poll {args.poll_id} is a month's agenda ballot: it closes at the "
                    "publication (linli agenda advance)"
                )
            closed = await polls.close(session, args.poll_id, now, linli.voter_key)
            poll = await session.get(Poll, args.poll_id)
            if closed is not None and closed.now and poll is not None:
                notices = await poll_notices.published(session, poll)
                await _notifier(linli, session, now).tell(notices)
        if closed is None:
            raise UsageError(f"no poll {args.poll_id}")
        print(_results_line(args.poll_id, closed.results))
        return 0
    try:
        deadline = datetime.fromisoformat(args.deadline)
    except ValueError as exc:
        raise UsageError(f"--deadline {args.deadline!r} is not an ISO 8601 time") from exc
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=zone)
    async with linli.transaction() as session:
        scope = await parse_scope(session, args.scope)
        if scope is None:
            raise UsageError(
                f"no scope {args.scope!r}: write community, grid:NAME or building:NAME"
            )
        try:
            poll = await polls.create(
                session,
                scope,
                args.question,
                args.options,
                deadline=deadline.astimezone(UTC),
                now=now,
                max_choices=args.multiple,
                anonymous=args.anonymous,
                per_household=args.per_household,
                quorum_percent=args.quorum,
                private=not args.no_private,
            )
        except polls.PollProblem as exc:
            raise UsageError(str(exc)) from exc
        poll_id = poll.id
        # Each eligible resident's card, sent by the running bot through the outbox.
        await _notifier(linli, session, now).tell(await poll_notices.opened(session, poll))
    print(poll_id)
    return 0


def _results_line(poll_id: int, results: polls.Results) -> str:
    quorum = {None: "", True: " quorum met", False: " quorum not met"}[results.quorum_met]
    return (
        f"poll {poll_id}: counts {results.counts}, turnout {results.turnout} of "
        f"{results.eligible}{quorum}, root {results.root}, size {results.size}"
    )


async def _agenda(linli: Linli, args: argparse.Namespace) -> int:
    """`advance` prints the new phase alone (proposals, voting or published), for scripts."""
    now = datetime.now(UTC)
    if args.action == "advance":
        async with linli.transaction() as session:
            moved = await linli.agenda.advance(session, now, actor_label="cli")
        assert moved is not None
        print(moved.phase)
        return 0
    zone = ZoneInfo(linli.settings.community.timezone)
    async with linli.sessions() as session:
        cycle = await agenda_cycles.current(session)
        if cycle is None:
            print("none")
            return 0
        times = [
            f"proposals until {cycle.proposals_close_at.astimezone(zone).isoformat(timespec='minutes')}",
            f"voting from {cycle.voting_at.astimezone(zone).isoformat(timespec='minutes')}",
            f"published {cycle.publish_at.astimezone(zone).isoformat(timespec='minutes')}",
        ]
        print("\t".join([cycle.month, cycle.phase, *times]))
    return 0


async def _proxy(linli: Linli, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    resident_as = _identity(args.telegram_id, args.wechat_openid, args.console)
    proxy_as = _identity(args.proxy_telegram_id, args.proxy_wechat_openid, args.proxy_console)
    async with linli.transaction() as session:
        resident = await people.by_identity(session, *resident_as)
        proxy = await people.by_identity(session, *proxy_as)
        if resident is None or proxy is None:
            missing = ":".join(resident_as if resident is None else proxy_as)
            raise UsageError(f"nobody known as {missing}")
        if args.action == "revoke":
            ending = await proxies.live(session, resident_id=resident.id, proxy_id=proxy.id)
            ended = await proxies.revoke(session, resident.id, proxy.id, now)
            # The resident and the proxy hear of it, through the outbox (as from the chat).
            told = [n for made in ending for n in proxies.told(made, proxies.REVOKED)]
            await _notifier(linli, session, now).tell(told)
            print(f"proxy: {ended} grant(s) from person {resident.id} to {proxy.id} revoked")
            return 0
        try:
            made = await proxies.grant(
                session, resident.id, proxy.id, now, poll_id=args.poll, month=args.month
            )
        except proxies.ProxyProblem as exc:
            raise UsageError(str(exc)) from exc
        await _notifier(linli, session, now).tell(proxies.told(made, proxies.GRANTED))
    what = f"poll {args.poll}" if args.poll is not None else f"month {args.month}"
    print(f"proxy: person {proxy.id} may vote for person {resident.id} in {what}")
    return 0


async def _points(linli: Linli, args: argparse.Namespace) -> int:
    if args.action == "import":
        return await _points_import(linli, args.file, apply=args.apply)
    now = datetime.now(UTC)
    rules = linli.settings.points.rules
    if args.rule is not None:
        try:
            amount = rules.amount(args.rule)
        except KeyError:
            known = ", ".join(type(rules).model_fields)
            raise UsageError(f"no rule {args.rule!r}: one of {known}") from None
        if amount <= 0:
            raise UsageError(f"the rule {args.rule} is turned off (0 points in bot.toml)")
    else:
        amount = args.amount
        if amount <= 0:
            raise UsageError("--amount is 1 or more")
    if not args.note.strip():
        raise UsageError("--note says why, and cannot be empty")
    named = _identity(args.telegram_id, args.wechat_openid, args.console)
    async with linli.transaction() as session:
        person = await people.by_identity(session, *named)
        if person is None:
            raise UsageError(f"nobody known as {':'.join(named)}")
        paid = await points_awards.award_by_staff(
            session, person.id, amount, args.note, now, rule=args.rule
        )
        balance = await points_ledger.balance(session, person.id, points_ledger.POINTS)
    print(f"points: {amount} to person {person.id} (transfer {paid.id}); balance {balance}")
    return 0


async def _points_import(linli: Linli, path: Path, *, apply: bool) -> int:
    def read() -> bytes:
        with path.open("rb") as file:
            data = file.read(IMPORT_LIMIT + 1)
        if len(data) > IMPORT_LIMIT:
            raise UsageError(f"{path} is larger than {IMPORT_LIMIT // 1_000_000} MB; split it")
        return data

    try:
        data = await asyncio.to_thread(read)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    async with linli.transaction() as session:
        checked = await points_imports.check(session, data, linli.settings.points.rules.amount)
        for problem in checked.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        if checked.problems:
            print(
                f"points import: {len(checked.problems)} bad row(s); nothing applied",
                file=sys.stderr,
            )
            return 1
        total = sum(row.amount for row in checked.rows)
        people_count = len({row.person_id for row in checked.rows})
        if not apply:
            print(
                f"points import: {len(checked.rows)} rows valid, {total} points to "
                f"{people_count} people; a dry run, nothing applied (add --apply)"
            )
            return 0
        paid = await points_imports.apply(session, checked, datetime.now(UTC))
    print(
        f"points import: {len(checked.rows)} rows, {total} points to {people_count} people; "
        f"{paid} awards applied, {len(checked.rows) - paid} applied before"
    )
    return 0


BROADCAST_FILE_LIMIT = 64 * 1024


async def _broadcast(linli: Linli, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    zone = ZoneInfo(linli.settings.community.timezone)
    action = args.action[0] if args.action else None
    if action in ("status", "cancel"):
        if len(args.action) != 2 or not args.action[1].isdigit():
            raise UsageError(f"linli broadcast {action} ID")
        broadcast_id = int(args.action[1])
        async with linli.transaction() as session:
            found = await session.get(Broadcast, broadcast_id)
            if found is None:
                raise UsageError(f"no broadcast {broadcast_id}")
            if action == "cancel":
                if not await broadcast_compose.cancel(session, broadcast_id, now, actor_id=None):
                    raise UsageError(f"broadcast {broadcast_id} is {found.status}: too late")
                print(f"broadcast {broadcast_id}: cancelled")
                return 0
            counts = await broadcast_deliveries.counts(session, broadcast_id)
        print(f"status: {found.status}")
        for name in ("queued", "delivered", "unreachable", "failed", "acknowledged"):
            print(f"{name}: {getattr(counts, name)}")
        return 0
    if action == "list":
        async with linli.sessions() as session:
            for waiting in await broadcast_compose.scheduled(session):
                at = waiting.send_at.astimezone(zone).isoformat(timespec="minutes")
                print(f"{waiting.id}\t{at}\t{','.join(waiting.audience)}")
        return 0
    if action is not None:
        raise UsageError(f"unknown action {action!r}: status ID, list or cancel ID")
    if not args.scope or args.text_file is None:
        raise UsageError("--scope and --text-file are needed to send")
    try:
        with args.text_file.open("rb") as file:
            data = file.read(BROADCAST_FILE_LIMIT + 1)
    except OSError as exc:
        raise UsageError(f"{args.text_file}: {exc.strerror}") from None
    if len(data) > BROADCAST_FILE_LIMIT:
        raise UsageError(f"{args.text_file}: larger than {BROADCAST_FILE_LIMIT} bytes")
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise UsageError(f"{args.text_file}: not UTF-8") from None
    if not text:
        raise UsageError(f"{args.text_file}: empty")
    problem = broadcast_html.check(text)
    if problem is not None:
        raise UsageError(
            f"{args.text_file}: Telegram would refuse it ({problem.kind}: {problem.detail})"
        )
    send_at = now
    if args.at:
        try:
            send_at = datetime.fromisoformat(args.at)
        except ValueError:
            raise UsageError(f"--at {args.at!r} is not an ISO 8601 time") from None
        if send_at.tzinfo is None:
            send_at = send_at.replace(tzinfo=zone)
        if send_at < now:
            raise UsageError(f"--at {args.at} has passed")
    categories = [c.code for c in linli.settings.report.categories]
    async with linli.transaction() as session:
        keys = []
        for spelled in args.scope:
            key = await broadcast_audience.parse(session, spelled, categories)
            if key is None:
                raise UsageError(
                    f"no scope {spelled!r}: write community, grid:NAME, building:NAME, "
                    "role:ROLE or category:CODE"
                )
            keys.append(key)
        where = {"private": (True, False), "groups": (False, True), "both": (True, True)}
        private, groups_too = where[args.where]
        counted = await broadcast_compose.preview(session, keys, private=private, groups=groups_too)
        made, queued = await broadcast_compose.create(
            session,
            author_id=None,
            text=text,
            keys=keys,
            private=private,
            groups=groups_too,
            ack=args.ack,
            send_at=send_at.astimezone(UTC),
            now=now,
            resend_after=timedelta(hours=linli.settings.broadcast.ack_resend_hours),
        )
    print(f"{made.id}\t{queued or counted.total} recipients")
    return 0


def _local_day(value: str, zone: ZoneInfo, flag: str) -> datetime:
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a date (YYYY-MM-DD)") from None
    return day.replace(tzinfo=zone).astimezone(UTC)


async def _rewards(linli: Linli, args: argparse.Namespace) -> int:
    zone = ZoneInfo(linli.settings.community.timezone)
    now = datetime.now(UTC)
    if args.action == "list":
        async with linli.sessions() as session:
            for reward in await points_rewards.all_rewards(session):
                state = (
                    "closed"
                    if not reward.active
                    else "not-yet"
                    if reward.starts_at > now
                    else "ended"
                    if reward.ends_at <= now
                    else "offered"
                )
                until = (reward.ends_at.astimezone(zone) - timedelta(days=1)).date()
                print(
                    f"{reward.id}\t{reward.price}\t{reward.stock}\t{state}\t{until}\t"
                    f"{reward.name_zh} / {reward.name_en}"
                )
        return 0
    if args.action == "add":
        starts = (
            _local_day(args.starts, zone, "--from")
            if args.starts
            else datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        )
        # Offered through its last day, community time.
        ends = _local_day(args.until, zone, "--until") + timedelta(days=1)
        names = (args.name_zh.strip(), args.name_en.strip())
        if not all(0 < len(name) <= 60 for name in names):
            raise UsageError("--name-zh and --name-en have 1 to 60 characters")
        if args.price < 1 or args.stock < 0 or ends <= starts:
            raise UsageError(
                "--price is 1 or more, --stock 0 or more, and --until not before --from"
            )
        async with linli.transaction() as session:
            reward = await points_rewards.add(
                session,
                name_zh=names[0],
                name_en=names[1],
                price=args.price,
                stock=args.stock,
                starts_at=starts,
                ends_at=ends,
                now=now,
            )
        print(f"reward: {reward.id}")
        return 0
    async with linli.transaction() as session:
        if args.action == "stock":
            if args.stock < 0:
                raise UsageError("the stock is 0 or more")
            changed = await points_rewards.set_stock(
                session, args.reward_id, args.stock, now, actor_id=None
            )
        else:
            changed = await points_rewards.close(session, args.reward_id, now, actor_id=None)
        if changed is None:
            raise UsageError(f"no reward {args.reward_id}")
    print(
        f"reward {changed.id}: stock {changed.stock}, {'offered' if changed.active else 'closed'}"
    )
    return 0


async def _timebank(linli: Linli, args: argparse.Namespace) -> int:
    named = _identity(args.telegram_id, args.wechat_openid, args.console)
    async with linli.transaction() as session:
        person = await people.by_identity(session, *named)
        if person is None:
            raise UsageError(f"nobody known as {':'.join(named)}")
        changed = await points_timebank.mark_elder(
            session, person.id, not args.remove, datetime.now(UTC), actor_id=None
        )
    covered = "covered by the pool" if not args.remove else "not covered by the pool"
    print(f"timebank: person {person.id} {covered}{'' if changed else ' (already)'}")
    return 0


def _identity(telegram: str | None, wechat: str | None, console: str | None) -> tuple[str, str]:
    if telegram:
        return "telegram", telegram
    if wechat:
        return "wechat", wechat
    assert console is not None
    return "console", console


async def _audit(linli: Linli, args: argparse.Namespace) -> int:
    if args.action == "points":
        return await _audit_points(linli)
    async with linli.sessions() as session:
        problems = await audit_poll(session, args.poll_id)
    if problems is None:
        raise UsageError(f"no poll {args.poll_id}")
    for problem in problems:
        print(f"MISMATCH poll {args.poll_id}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"poll {args.poll_id}: the log, the ballots and the published results agree")
    return 0


async def _audit_points(linli: Linli) -> int:
    async with linli.sessions() as session:
        problems = await points_audit.audit_points(session)
        counted = await points_audit.summary(session)
    for problem in problems:
        print(f"MISMATCH points: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"points: {counted.transfers} transfers, {counted.entries} entries, "
        f"{counted.accounts} accounts: every transfer sums to zero and every balance checks out"
    )
    return 0


async def _bot_username(linli: Linli) -> str:
    if linli.telegram is None:
        print(
            "linli: no telegram.token configured; the link shows a placeholder bot name",
            file=sys.stderr,
        )
        return "YOUR_BOT"
    await linli.telegram.app.bot.initialize()
    try:
        return linli.telegram.app.bot.username
    finally:
        await linli.telegram.app.bot.shutdown()


async def _invite(linli: Linli, args: argparse.Namespace) -> int:
    if args.uses < 1:
        raise UsageError("--uses must be at least 1")
    if args.expires is not None and args.expires <= 0:
        raise UsageError("--expires must be a positive number of days")
    now = datetime.now(UTC)
    async with linli.transaction() as session:
        building = await community.building_by_name(session, args.building)
        if building is None:
            names = ", ".join(b.name for b in await community.buildings(session))
            raise UsageError(
                f"no building named {args.building!r} (known: {names or 'none; run linli init'})"
            )
        if Role(args.role) in (Role.DEPARTMENT, Role.DEPARTMENT_HEAD):
            raise UsageError(
                f"{args.role} is scoped by a department: use linli admin grant --department"
            )
        invite = await invites.create(
            session,
            building.id,
            role=Role(args.role),
            uses=args.uses,
            expires_in=timedelta(days=args.expires) if args.expires else None,
            now=now,
        )
        await audit.record(
            session,
            "invite.create",
            actor_label=f"cli:{getpass.getuser()}",
            building=building.name,
            role=args.role,
            uses=args.uses,
        )
        code = invite.code
    if args.wechat:
        if linli.wechat is None:
            raise UsageError("--wechat needs [wechat] token and appid in the configuration")
        link = await linli.wechat.invite_link(code)
        print(f"code: {code}")
        print(f"wechat: {link}")
    else:
        link = deep_link(await _bot_username(linli), code)
        print(f"code: {code}")
        print(f"link: {link}")
    if args.qr is not None:
        import qrcode

        args.qr.parent.mkdir(parents=True, exist_ok=True)
        qrcode.make(link).save(str(args.qr))
        print(f"qr: {args.qr}")
    return 0


async def _admin(linli: Linli, args: argparse.Namespace) -> int:
    if args.action == "list":
        async with linli.sessions() as session:
            for person in await people.everyone(session):
                print(_person_line(person))
        return 0
    role = Role(args.role)
    channel, external_id = (
        ("telegram", args.telegram_id)
        if args.telegram_id
        else ("wechat", args.wechat_openid)
        if args.wechat_openid
        else ("console", args.console)
    )
    async with linli.transaction() as session:
        building_id = grid_id = None
        if args.building:
            building = await community.building_by_name(session, args.building)
            if building is None:
                raise UsageError(f"no building named {args.building!r}")
            building_id = building.id
        elif args.grid:
            grid = await community.grid_by_name(session, args.grid)
            if grid is None:
                raise UsageError(f"no grid named {args.grid!r}")
            grid_id = grid.id
        # Which scope the role needs is decided in services, for invites too.
        known = sorted({c.department for c in linli.settings.report.categories} - {""})
        grant = scopes.grant_for(
            role,
            building_id=building_id,
            grid_id=grid_id,
            department=args.department or None,
            departments=known,
        )
        if isinstance(grant, scopes.ScopeProblem):
            if grant.reason == scopes.UNKNOWN_DEPARTMENT:
                raise UsageError(
                    f"no department named {args.department!r} (known: {', '.join(known) or 'none'})"
                )
            verb = "needs" if grant.reason == scopes.NEEDS_SCOPE else "takes no"
            raise UsageError(f"{role.value} {verb} --{grant.scope}")
        handed: list[HandedOn] = []
        if args.action == "grant":
            # A console's chat is its name, a WeChat user's their OpenID: their cards wait in
            # the outbox for them instead of being unreachable. Telegram tells us the chat id
            # when they first write.
            person = await people.identify(
                session,
                channel,
                str(external_id),
                private_chat_id=str(external_id) if channel in ("console", "wechat") else None,
            )
            changed = await people.grant(session, person.id, grant)
        else:
            found = await people.by_identity(session, channel, str(external_id))
            if found is None:
                raise UsageError(f"no person with {channel} id {external_id}")
            person = found
            changed = await people.revoke(session, person.id, grant)
            handed = await _hand_on_reports(linli, session, person.id)
        await audit.record(
            session,
            f"role.{args.action}",
            actor_label=f"cli:{getpass.getuser()}",
            person=person.id,
            role=role.value,
            building=args.building,
            grid=args.grid,
            department=args.department,
            changed=changed,
        )
    unchanged = "already held" if args.action == "grant" else "not held"
    print(
        f"{args.action} {role.value}: person {person.id}"
        + ("" if changed else f"; nothing changed ({unchanged})")
    )
    for item in handed:
        print(
            f"handed on {item.number} to person {item.to.person.id}"
            if item.to is not None
            else f"kept {item.number}: nobody else can take it"
        )
    return 0


async def _hand_on_reports(linli: Linli, session: AsyncSession, person_id: int) -> list[HandedOn]:
    """The reports a revoked person no longer covers go to someone else, who gets a card; the
    person and the residents are told through the outbox (sent by the running bot)."""
    now = datetime.now(UTC)
    handed = await hand_on_uncovered(session, report_rules(linli.settings).policy, person_id, now)
    await _notifier(linli, session, now).tell(handed.notices)
    return handed.reports


def _notifier(linli: Linli, session: AsyncSession, now: datetime) -> Notifier:
    return Notifier(
        session,
        linli.catalogs,
        linli.settings.community.default_locale,
        now,
        linli.registry.notices,
    )


def _person_line(person: Person) -> str:
    """One tab-separated line: id, name, platform ids, building and room, roles, status."""
    ids = ",".join(f"{i.channel}:{i.external_id}" for i in person.identities) or "-"
    where = "-"
    if person.household is not None:
        where = f"{person.household.building.name} {person.household.room}"
    roles = ",".join(sorted(_role_label(r) for r in person.roles)) or "-"
    return f"{person.id}\t{person.display_name or '-'}\t{ids}\t{where}\t{roles}\t{person.status}"


def _role_label(assignment: RoleAssignment) -> str:
    if assignment.building is not None:
        return f"{assignment.role.value}@{assignment.building.name}"
    if assignment.grid is not None:
        return f"{assignment.role.value}@{assignment.grid.name}"
    if assignment.department is not None:
        return f"{assignment.role.value}@{assignment.department}"
    return assignment.role.value
