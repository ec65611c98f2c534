"""Throughput and latency of the WeChat path: signed, encrypted callbacks → /wechat → engine →
SQLite → passive reply (or `success` and the customer-service API on the stub).

The bot runs as a real `linli run` process with WeChat in safe mode, its API calls going to
tests/wechat_stub.py over HTTP; this driver plays N residents posting callbacks to it over
HTTP (keep-alive, 127.0.0.1), each one at a time and in order, different residents at once:

    registration  subscribe (scanned invite "qrscene_CODE") → room → name
    report        /report → 1 (no photo) → category → place → 1 (skip detail) → description
                  → [the "mine is different" digit, when it lists likely duplicates] → 1 (submit)

and then one report after another. Answers are typed as the digit of the numbered option.

    .venv/bin/python bench/wechat.py [--users 500] [--rate 300] [--seconds 20]
                                     [--concurrency 64] [--saturate-seconds 10]
                                     [--photo-every N] [--no-staff] [--lockstep]
                                     [--reply-budget S] [--profile-bot FILE]

Sustained phase: callbacks offered at `--rate`/s for `--seconds` (open loop: a slot every
1/rate s goes to a resident ready, at random); saturated phase: `--concurrency` callbacks in
flight at all times for `--saturate-seconds`. A callback's time is from sending the POST to
the HTTP response. Also printed: the handler's own time (the bot's per-update log line), the
CPU of the bot, of this driver and of everything else on the machine (a busy machine is
flagged), and the bot's peak RSS. Exit status 1 if a callback got anything but HTTP 200, a
reply was not the expected one (or, after `success`, never came through the API), or the
database disagrees with what the residents did.

Grid 1 has a grid worker (on WeChat), so each report is dispatched when submitted and its card
goes through the outbox (the first 5 to the worker, the rest settled as blocked: WeChat's quota,
no template). With `--no-staff` every report stays undispatched and the scheduler tick (every
15 s) tries them all again in one transaction: its stall grows with the reports made so far.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import re
import secrets
import signal
import socket
import sqlite3
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import httpx  # noqa: E402

from bench.updates import cpu_seconds, peak_rss_mb, percentile  # noqa: E402
from tests.images import photo  # noqa: E402
from tests.processes import linli_process, run_linli  # noqa: E402
from tests.wechat_stub import Follower, WeChatStub, sign  # noqa: E402

LOG_MS = re.compile(r"update channel=wechat flow=(\S+) step=(\S+) outcome=(\w+) ms=([\d.]+)")
# Other processes' share of a core above which a phase's figures are flagged.
BUSY_MACHINE = 0.25
# Seconds a client keeps an idle connection (uvicorn's keep-alive timeout is 5).
KEEP_ALIVE = 3.0
# Tries per callback when the connection fails (WeChat retries a callback it got no answer to).
TRIES = 3
# How long the sustained phase waits for a resident ready before it gives up.
NOBODY_READY = 60.0
# How long a resident answered `success` waits for the reply through the customer-service API.
LATE_PATIENCE = 60.0
OPTION = re.compile(r"^(\d+) (.+)$", re.M)

# What the bot says (zh_CN, the community's language: WeChat does not tell us the person's).
ASK_ROOM = "请问您住几室"
ASK_NAME = "怎么称呼"
REGISTERED = "登记完成"
ASK_PHOTOS = "请发送问题的照片"
PHOTO_KEPT = "已收到第 1 张照片"
ASK_CATEGORY = "是哪一类问题"
ASK_PLACE = "问题在哪里"
ASK_DETAIL = "有什么能帮助找到位置"
ASK_DESCRIPTION = "请简单描述问题"
DUPLICATES = "可能已经有人报告过"
CHECK = "请核对您的报告"
SUBMITTED = "已提交"
NO_PHOTO, DONE_PHOTOS, OTHER, SKIP, DIFFERENT, SUBMIT = (
    "不带照片继续",
    "完成，继续",
    "其他",
    "跳过",
    "我的不一样",
    "提交",
)
WORKER = "o_bench_grid_worker"
PROBLEMS = ("楼道灯坏了", "门口有垃圾", "水管漏水", "路面有坑", "电梯有异响", "自行车乱停")


class DialogueError(Exception):
    """An answer that is not what the dialogue says comes next."""


def machine_busy_seconds() -> float:
    """CPU time used on the whole machine (all processes, all cores) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def option(reply: str, label: str) -> str:
    """The digit of the numbered option whose label starts with `label`."""
    for digit, text in OPTION.findall(reply):
        if text.startswith(label):
            return str(digit)
    raise DialogueError(f"no option {label!r} in {reply!r}")


# ---------------------------------------------------------------------- admission


class Gate:
    """Who may post next: residents wait here before every callback.

    `offer(rate, seconds)` lets one through every 1/rate s; `saturate(n, seconds)` keeps n in
    flight; otherwise nobody passes (between the phases, and at the end). The one let through
    is any resident ready, at random, so that residents drift apart and the steps mix as they
    would in a day; `lockstep` takes the one waiting longest instead, which keeps all of them
    at the same step (500 submits in a row, for instance)."""

    def __init__(self, *, lockstep: bool = False) -> None:
        self.waiting: list[asyncio.Future[None]] = []
        self.lockstep = lockstep
        self.random = random.Random(1)
        self.someone_waits = asyncio.Event()
        self.in_flight = 0
        self.limit = 0  # saturating: how many at once; 0: not saturating
        self.idle = asyncio.Event()
        self.idle.set()
        self.late_slots = 0  # slots that found nobody waiting (the bot is behind)
        self._wanted = 0
        self._enough = asyncio.Event()

    async def enter(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.someone_waits.set()
        if len(self.waiting) >= self._wanted:
            self._enough.set()
        self._fill()
        await future  # cancelled only at the end, while waiting (nothing in flight then)

    async def until_waiting(self, n: int) -> None:
        self._wanted = n
        self._enough.clear()
        if len(self.waiting) < n:
            await self._enough.wait()

    def leave(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self.idle.set()
        self._fill()

    def _let_one_in(self) -> None:
        if self.lockstep:
            future = self.waiting.pop(0)
        else:  # anyone ready: the residents drift apart, and the steps mix
            i = self.random.randrange(len(self.waiting))
            self.waiting[i], self.waiting[-1] = self.waiting[-1], self.waiting[i]
            future = self.waiting.pop()
        if not self.waiting:
            self.someone_waits.clear()
        self.in_flight += 1
        self.idle.clear()
        future.set_result(None)

    def _fill(self) -> None:
        while self.limit and self.in_flight < self.limit and self.waiting:
            self._let_one_in()

    async def offer(self, rate: float, seconds: float) -> int:
        """Open loop: slot i is at start + i/rate; a slot nobody waits for is taken by the next
        resident ready (counted late). Returns the number of callbacks let in."""
        total = round(rate * seconds)
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.waiting:
                self.late_slots += 1
                try:
                    await asyncio.wait_for(self.someone_waits.wait(), NOBODY_READY)
                except TimeoutError:
                    print(f"no resident ready for {NOBODY_READY:.0f} s: offering stopped")
                    return i
            self._let_one_in()
        # The last slot's callback still gets its 1/rate s.
        await asyncio.sleep(max(0.0, start + total / rate - time.perf_counter()))
        return total

    async def saturate(self, concurrency: int, seconds: float) -> None:
        self.limit = concurrency
        self._fill()
        await asyncio.sleep(seconds)
        self.limit = 0

    async def drained(self) -> None:
        await self.idle.wait()


# ---------------------------------------------------------------------- measurements


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)  # ms, POST → response
    finished: list[float] = field(default_factory=list)  # perf_counter at the response
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    passive: int = 0  # replies in place (the rest: `success` and the customer-service API)
    late_replies: list[float] = field(default_factory=list)  # s from `success` to the text
    lost_replies: int = 0  # `success`, and no text within LATE_PATIENCE
    retried: int = 0  # posts tried again after a connection error
    started: float = 0.0
    ended: float = 0.0  # the load stopped
    drained: float = 0.0  # the last callback answered
    cpu_seconds: float = 0.0  # the bot's
    driver_cpu_seconds: float = 0.0  # this process's (driver and stub)
    machine_busy_seconds: float = 0.0  # every process's, all cores
    log_lines: int = 0


@dataclass
class Resident:
    n: int
    openid: str
    room: str
    name: str
    photo_every: int
    registered: bool = False
    reports: int = 0
    api_texts_seen: int = 0


class Clients:
    """Keep-alive clients, one connection each, reused last-in first-out.

    One AsyncClient with many connections costs O(connections × requests waiting) in
    httpcore's pool on every request and every response: with a few hundred in flight that
    took most of the driver's CPU, and the driver fell behind. A request takes a free client,
    or a new one."""

    def __init__(self, base_url: str, ready: int) -> None:
        self.base_url = base_url
        # Plain HTTP, but httpx loads the CA bundle for every client it makes (about 20 ms)
        # unless given a context: one for all.
        self.tls = ssl.create_default_context()
        self.made: list[httpx.AsyncClient] = []
        self.free = [self._new() for _ in range(ready)]

    def _new(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            base_url=self.base_url,
            # Idle connections dropped before uvicorn's 5 s keep-alive ends them: a request
            # on a connection the server is closing fails with a ReadError.
            limits=httpx.Limits(
                max_connections=1, max_keepalive_connections=1, keepalive_expiry=KEEP_ALIVE
            ),
            timeout=30.0,
            verify=self.tls,
        )
        self.made.append(client)
        return client

    def take(self) -> httpx.AsyncClient:
        return self.free.pop() if self.free else self._new()

    def give(self, client: httpx.AsyncClient) -> None:
        self.free.append(client)

    async def aclose(self) -> None:
        for client in self.made:
            await client.aclose()


class Driver:
    def __init__(
        self, stub: WeChatStub, clients: Clients, gate: Gate, code: str, jpeg: bytes
    ) -> None:
        self.stub = stub
        self.clients = clients
        self.gate = gate
        self.code = code
        self.jpeg = jpeg
        self.phase = Phase("warm-up")
        self.errors: list[str] = []
        self.callbacks = 0
        self._scanned = 0
        self.awaiting = 0  # residents answered `success`, waiting for the reply
        self.none_awaiting = asyncio.Event()
        self.none_awaiting.set()
        self._texts: collections.defaultdict[str, list[str]] = collections.defaultdict(list)

    # -------------------------------------------------------------- one callback

    def _signed(self, openid: str, body: str) -> tuple[dict[str, str], bytes]:
        """As WeChat posts it in safe mode: encrypted for the AppId, signed with the token."""
        follower = self.stub.followers.setdefault(openid, Follower(openid))
        follower.last_message_at, follower.sent_since = self.stub.clock(), 0
        stamp, nonce = str(int(time.time())), secrets.token_hex(5)
        encrypted = self.stub.crypto.encrypt(body, self.stub.appid).decode()
        params = {
            "timestamp": stamp,
            "nonce": nonce,
            "openid": openid,
            "signature": sign(self.stub.token, stamp, nonce),
            "msg_signature": sign(self.stub.token, stamp, nonce, encrypted),
            "encrypt_type": "aes",
        }
        payload = (
            "<xml><ToUserName><![CDATA[gh_account]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
        return params, payload.encode()

    async def post(self, who: Resident, body: str, expect: Iterable[str]) -> str:
        """One callback when the gate lets it through; the answer's text, checked."""
        params, payload = self._signed(who.openid, body)
        await self.gate.enter()
        phase = self.phase
        try:
            started = time.perf_counter()
            for attempt in range(1, TRIES + 1):
                client = self.clients.take()
                try:
                    response = await client.post("/wechat", params=params, content=payload)
                    break
                except httpx.TransportError:
                    if attempt == TRIES:
                        raise
                    phase.retried += 1  # the same callback again, as WeChat would
                finally:
                    self.clients.give(client)
            finished = time.perf_counter()
        finally:
            self.gate.leave()
        self.callbacks += 1
        phase.latencies.append((finished - started) * 1000)
        phase.finished.append(finished)
        phase.statuses[response.status_code] += 1
        if response.status_code != 200:
            raise DialogueError(f"HTTP {response.status_code}: {response.text[:200]!r}")
        text = self.stub.reply_text(response)
        if text is not None:
            phase.passive += 1
        expected = tuple(expect)
        if text is None:  # `success`: the answer comes through the customer-service API
            text = await self._from_api(who, expected)
        if not any(fragment in text for fragment in expected):
            raise DialogueError(f"expected one of {expected}, got {text!r}")
        return text

    def _api_texts(self, openid: str) -> list[str]:
        """Customer-service texts the stub took for `openid`, indexed as they come."""
        sent = self.stub.sent
        for message in sent[self._scanned :]:
            if "text" in message:
                self._texts[str(message["touser"])].append(message["text"]["content"])
        self._scanned = len(sent)
        return self._texts[openid]

    async def _from_api(self, who: Resident, expected: tuple[str, ...]) -> str:
        """After `success`: the texts the bot sends through the API, once the expected one is
        in (or after LATE_PATIENCE seconds: the reply is counted lost)."""
        waited = time.perf_counter()
        deadline = waited + LATE_PATIENCE
        phase = self.phase
        self.awaiting += 1
        self.none_awaiting.clear()
        try:
            while True:
                texts = self._api_texts(who.openid)
                fresh = "\n".join(texts[who.api_texts_seen :])
                if any(fragment in fresh for fragment in expected):
                    who.api_texts_seen = len(texts)
                    phase.late_replies.append(time.perf_counter() - waited)
                    return fresh
                if time.perf_counter() > deadline:
                    phase.lost_replies += 1
                    return fresh
                await asyncio.sleep(0.05)
        finally:
            self.awaiting -= 1
            if not self.awaiting:
                self.none_awaiting.set()

    async def settled(self) -> None:
        """No callback in flight, and no resident still waiting for a reply through the API."""
        await self.gate.drained()
        await self.none_awaiting.wait()

    def text(self, who: Resident, content: str) -> str:
        return self.stub.text(who.openid, content)

    # -------------------------------------------------------------- dialogues

    async def register(self, who: Resident) -> None:
        scan = self.stub.event(who.openid, "subscribe", f"qrscene_{self.code}")
        await self.post(who, scan, [ASK_ROOM])
        await self.post(who, self.text(who, who.room), [ASK_NAME])
        await self.post(who, self.text(who, who.name), [REGISTERED])
        who.registered = True

    async def report(self, who: Resident) -> None:
        asked = await self.post(who, self.text(who, "/report"), [ASK_PHOTOS])
        with_photo = who.photo_every and (who.n + who.reports) % who.photo_every == 0
        if with_photo:
            media_id = f"bench-photo-{who.n}-{who.reports}"
            self.stub.media[media_id] = self.jpeg
            image = self.stub.xml(
                who.openid,
                MsgType="image",
                MediaId=media_id,
                PicUrl="http://x",
                MsgId=10**9 + who.n * 1000 + who.reports,
            )
            asked = await self.post(who, image, [PHOTO_KEPT])
            kinds = await self.post(who, self.text(who, option(asked, DONE_PHOTOS)), [ASK_CATEGORY])
            # Any kind will do with a photo; take them in turn.
            digits = [d for d, _ in OPTION.findall(kinds)]
            kind = digits[(who.n + who.reports) % len(digits)]
        else:
            kinds = await self.post(who, self.text(who, option(asked, NO_PHOTO)), [ASK_CATEGORY])
            kind = option(kinds, OTHER)
        places = await self.post(who, self.text(who, kind), [ASK_PLACE])
        # My building, or one of the shared places, in turn.
        digits = [d for d, _ in OPTION.findall(places)]
        place = digits[(who.n + who.reports) % len(digits)]
        detail = await self.post(who, self.text(who, place), [ASK_DETAIL])
        await self.post(who, self.text(who, option(detail, SKIP)), [ASK_DESCRIPTION])
        problem = f"{PROBLEMS[(who.n + who.reports) % len(PROBLEMS)]}（{who.room} 室）"
        check = await self.post(who, self.text(who, problem), [DUPLICATES, CHECK])
        if DUPLICATES in check and CHECK not in check:
            check = await self.post(who, self.text(who, option(check, DIFFERENT)), [CHECK])
        await self.post(who, self.text(who, option(check, SUBMIT)), [SUBMITTED])
        who.reports += 1

    async def live(self, who: Resident) -> None:
        """Register, then report one thing after another, until cancelled at the end."""
        try:
            await self.register(who)
            while True:
                await self.report(who)
        except (DialogueError, httpx.HTTPError) as exc:
            self.errors.append(f"{who.openid}: {type(exc).__name__}: {exc}")


def residents(users: int, photo_every: int) -> list[Resident]:
    """Rooms 101–604 (6 floors of 4 homes, the demo layout), names all different."""
    rooms = [f"{floor}{home:02d}" for floor in range(1, 7) for home in range(1, 5)]
    return [
        Resident(
            n=i,
            openid=f"o_bench_{i:05d}_{secrets.token_hex(4)}",
            room=rooms[i % len(rooms)],
            name=f"居民{i:04d}",
            photo_every=photo_every,
        )
        for i in range(users)
    ]


@contextlib.asynccontextmanager
async def profiled(
    command: list[str], env: dict[str, str], streams: dict[str, Any]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """As tests/processes.py's linli_process, with the interpreter's arguments given."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, cwd=ROOT, env=env, **streams
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_healthy(client: httpx.AsyncClient, bot: asyncio.subprocess.Process) -> None:
    for _ in range(600):
        if bot.returncode is not None:
            raise SystemExit("linli run exited at start-up (see its log)")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("linli run never became healthy")


def handler_ms(log: str) -> list[tuple[str, float]]:
    return [(m.group(3), float(m.group(4))) for m in LOG_MS.finditer(log)]


def count_in_database(path: Path) -> tuple[int, int]:
    """People registered through WeChat (active), and reports."""
    with sqlite3.connect(path) as db:
        people = db.execute(
            "SELECT count(DISTINCT p.id) FROM person p JOIN identity i ON i.person_id = p.id "
            "WHERE i.channel = 'wechat' AND p.status = 'active' AND p.household_id IS NOT NULL"
        ).fetchone()[0]
        reports = db.execute("SELECT count(*) FROM report").fetchone()[0]
    return int(people), int(reports)


# ---------------------------------------------------------------------- the run


async def bench(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-wechat-"))
    db_path = workdir / "linli.db"
    port = free_port()
    async with WeChatStub() as stub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
        env.update(
            LINLI_DATABASE__URL=f"sqlite+aiosqlite:///{db_path}",
            LINLI_WEB__PORT=str(port),
            LINLI_REPORT__MEDIA_DIR=str(workdir / "media"),
            LINLI_LOG__LEVEL="INFO",
            **stub.env("safe"),
        )
        if args.reply_budget is not None:
            env["LINLI_WECHAT__REPLY_BUDGET_SECONDS"] = str(args.reply_budget)
        await run_linli(env, "init")
        out = await run_linli(
            env, "invite", "--building", "Building 1", "--uses", str(args.users + 1)
        )
        code = re.search(r"code: (\w+)", out).group(1)  # type: ignore[union-attr]
        if args.staff:
            # Grid 1's grid worker, on WeChat: reports are dispatched to them when submitted.
            grant = ["admin", "grant", "--role", "grid_worker", "--grid", "Grid 1"]
            await run_linli(env, *grant, "--wechat-openid", WORKER)
        log_path = workdir / "bot.log"
        with log_path.open("wb") as log:
            streams = {"stdin": asyncio.subprocess.DEVNULL, "stdout": log, "stderr": log}
            if args.profile_bot:  # `linli run` under cProfile, written when it stops
                command = ["-m", "cProfile", "-o", str(args.profile_bot), "-m", "bot", "run"]
                started = profiled(command, env, streams)
            else:
                started = linli_process("run", env=env, **streams)
            async with (
                started as bot,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            ):
                await wait_healthy(client, bot)
                gate = Gate(lockstep=args.lockstep)
                clients = Clients(f"http://127.0.0.1:{port}", args.concurrency + 16)
                driver = Driver(stub, clients, gate, code, photo(1280, 960))
                # One resident first, alone: the access token, the connections, the caches.
                warm = residents(1, args.photo_every)[0]
                warm.openid = "o_bench_warm_up"
                gate.limit = 1
                await driver.register(warm)
                await driver.report(warm)
                if args.staff:  # the worker writes once: WeChat's 48 h window opens
                    worker = residents(1, 0)[0]
                    worker.openid = WORKER
                    await driver.post(worker, driver.text(worker, "/help"), [""])
                gate.limit = 0
                people = residents(args.users, args.photo_every)
                tasks = [asyncio.create_task(driver.live(who)) for who in people]
                await gate.until_waiting(len(tasks))  # all ready before the clock starts
                phases: list[Phase] = []
                names = ["sustained"] + (["saturated"] if args.saturate_seconds > 0 else [])
                for name in names:
                    phase = driver.phase = Phase(name)
                    phases.append(phase)
                    before = driver.callbacks
                    cpu_before = cpu_seconds(bot.pid)
                    own_before, machine_before = own_cpu_seconds(), machine_busy_seconds()
                    phase.started = time.perf_counter()
                    if name == "sustained":
                        await gate.offer(args.rate, args.seconds)
                    else:
                        await gate.saturate(args.concurrency, args.saturate_seconds)
                    phase.ended = time.perf_counter()
                    await driver.settled()  # what is in flight finishes in its phase
                    phase.drained = time.perf_counter()
                    phase.cpu_seconds = cpu_seconds(bot.pid) - cpu_before
                    phase.driver_cpu_seconds = own_cpu_seconds() - own_before
                    phase.machine_busy_seconds = machine_busy_seconds() - machine_before
                    phase.log_lines = driver.callbacks - before
                    print(
                        f"{name}: {len(phase.latencies)} callbacks, "
                        f"bot peak RSS so far {peak_rss_mb(bot.pid):.0f} MB",
                        flush=True,
                    )
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await clients.aclose()
                rss = peak_rss_mb(bot.pid)
                # Customer-service replies still on their way, then a clean stop.
                await asyncio.sleep(0.5)
                bot.send_signal(signal.SIGTERM)
                try:
                    status = await asyncio.wait_for(bot.wait(), 30)
                except TimeoutError:
                    status = None
    log_text = log_path.read_text(errors="replace")
    handled = handler_ms(log_text)
    warm_up_lines = len(handled) - sum(p.log_lines for p in phases)
    registered = sum(who.registered for who in people) + 1
    reports = sum(who.reports for who in people) + 1
    in_db = count_in_database(db_path)

    print()
    for phase in phases:
        lines = handled[warm_up_lines:][: phase.log_lines]
        warm_up_lines += phase.log_lines
        report_phase(phase, lines, args, gate.late_slots)
    print(f"peak RSS: {rss:.0f} MB (linli run, VmHWM)")
    print(
        f"database: {in_db[0]} people registered through WeChat (residents registered "
        f"{registered}), {in_db[1]} reports (residents submitted {reports})"
    )
    refused = sum(n for p in phases for s, n in p.statuses.items() if s != 200)
    outcomes = collections.Counter(outcome for outcome, _ in handled)
    print(f"handler outcomes: {dict(outcomes)}")
    ok = True
    if refused:
        print(f"FAIL: {refused} callbacks got a status other than 200")
        ok = False
    if driver.errors:
        print(f"FAIL: {len(driver.errors)} residents stopped on an error, e.g.:")
        for error in driver.errors[:5]:
            print(f"  {error[:300]}")
        ok = False
    if in_db != (registered, reports):
        print("FAIL: the database does not match what the residents did")
        ok = False
    if registered < args.users + 1:
        print(f"note: only {registered - 1} of {args.users} residents got through registration")
    if status != 0:
        print(f"FAIL: linli run stopped with status {status}")
        ok = False
    serving, _, stopping = log_text.partition(" INFO linli stopping")
    if "Traceback" in serving:
        print("FAIL: tracebacks in the bot's log")
        ok = False
    if "Traceback" in stopping:
        print("note: a traceback in the bot's log after SIGTERM (stopping, not under load)")
    print(f"result: {'OK' if ok else 'FAILED'} (bot log: {log_path})")
    return 0 if ok else 1


def report_phase(
    phase: Phase, handled: list[tuple[str, float]], args: argparse.Namespace, late: int
) -> None:
    n = len(phase.latencies)
    if not n:
        print(f"{phase.name}: no callbacks")
        return
    p50, p99 = statistics.median(phase.latencies), percentile(phase.latencies, 0.99)
    worst = max(phase.latencies)
    if phase.name == "sustained":
        # Handled: responses that arrived while the rate was offered, after the first second.
        window = phase.ended - phase.started
        steady = [t for t in phase.finished if 1.0 <= t - phase.started <= window]
        print(
            f"sustained: {n / window:.1f} callbacks/s offered, "
            f"{len(steady) / (window - 1.0):.1f} handled, p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"(max {worst:.1f} ms; {n} callbacks in {window:.1f} s at {args.rate:.0f}/s asked; "
            f"{late} slots found no resident ready)"
        )
    else:
        window = phase.finished[-1] - phase.started
        print(
            f"saturated: {n / window:.1f} callbacks/s with "
            f"{min(args.concurrency, args.users)} in flight, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (max {worst:.1f} ms; {n} callbacks in "
            f"{window:.1f} s)"
        )
    ms = [t for _, t in handled]
    if ms:
        print(
            f"  handler (the bot's log line): p50 {statistics.median(ms):.1f} ms, "
            f"p99 {percentile(ms, 0.99):.1f} ms; "
            f"{phase.passive * 100 / n:.0f} % answered in place"
        )
    if phase.retried:
        print(f"  {phase.retried} posts failed on their connection and were sent again")
    if phase.late_replies or phase.lost_replies:
        late = sorted(phase.late_replies)
        waits = (
            f"p50 {statistics.median(late):.1f} s, max {late[-1]:.1f} s after it" if late else ""
        )
        print(
            f"  over the reply budget: {n - phase.passive} callbacks answered `success`; "
            f"{len(late)} replies came through the customer-service API ({waits}), "
            f"{phase.lost_replies} not within {LATE_PATIENCE:.0f} s"
        )
    wall = phase.drained - phase.started
    cores = os.cpu_count() or 1
    others = phase.machine_busy_seconds - phase.cpu_seconds - phase.driver_cpu_seconds
    print(
        f"  CPU: bot {phase.cpu_seconds * 1000 / n:.2f} ms/callback "
        f"({phase.cpu_seconds * 100 / wall:.0f} % of a core), driver and stub "
        f"{phase.driver_cpu_seconds * 100 / wall:.0f} % of a core, other processes "
        f"{max(0.0, others) * 100 / wall:.0f} % of a core; machine busy "
        f"{phase.machine_busy_seconds * 100 / (wall * cores):.0f} % of {cores} cores"
    )
    if others / wall > BUSY_MACHINE:
        print("  warning: other processes were busy on this machine; figures not comparable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500, help="residents (default 500)")
    parser.add_argument("--rate", type=float, default=300.0, help="offered callbacks/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to offer the rate")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="callbacks in flight when saturating"
    )
    parser.add_argument(
        "--saturate-seconds", type=float, default=10.0, help="how long to saturate (0: skip)"
    )
    parser.add_argument(
        "--photo-every",
        type=int,
        default=0,
        metavar="N",
        help="one report in N starts with a photo (0: none, text steps only)",
    )
    parser.add_argument(
        "--reply-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the bot's [wechat] reply_budget_seconds (replies slower than this go through "
        "the customer-service API)",
    )
    parser.add_argument(
        "--no-staff",
        dest="staff",
        action="store_false",
        help="no grid worker: every report stays undispatched, and the scheduler tick (every "
        "15 s) tries them all again, holding SQLite's writer longer as they pile up",
    )
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="let residents in oldest first: all of them at the same step at once",
    )
    parser.add_argument(
        "--profile-bot",
        type=Path,
        default=None,
        metavar="FILE",
        help="run the bot under cProfile and write its profile here (it then runs slower)",
    )
    args = parser.parse_args()
    print(
        f"bench/wechat.py users={args.users} rate={args.rate:.0f}/s for {args.seconds:.0f} s, "
        f"then saturate with {args.concurrency} in flight for {args.saturate_seconds:.0f} s, "
        f"photo every {args.photo_every or '-'} reports, "
        f"{'lockstep' if args.lockstep else 'steps mixed'}, "
        f"{'a grid worker' if args.staff else 'no staff'}, sqlite, cores={os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    sys.exit(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
