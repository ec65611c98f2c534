"""A broadcast to 10,000 private chats and 50 group chats through the Telegram Bot API stub with
Telegram's limits on (30 messages/s per bot, about 1/s per chat, 20/min per group; past them
the stub answers 429 with retry_after), sent by real `linli run` processes: one on SQLite, two
sharing PostgreSQL. While it runs, a resident sends /help every ~1.5 s and waits for the answer.

    .venv/bin/python bench/broadcast.py [--db sqlite|postgres|both] [--chats 10000]
                                        [--groups 50]

Prints, per run: the private-chat rate (messages/s from the first to the last private message)
as a fraction of 30/s, the sends answered 429, duplicates and losses (chats that got the
message more than once, or never), the time to finish (from `linli broadcast` to the last
message) and the p50/p99 latency of the interactive replies sent meanwhile.

Targets: >= 0.93 of the limit (>= 28 messages/s); <= 0.1% of sends answered 429; zero
duplicates and zero losses; interactive replies with p99 < 500 ms. Exit status 1 if any is
missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Outcome,
    drop_database,
    linli_environment,
    met,
    new_database,
    percentile,
)
from bot.app import assemble
from bot.config import load_settings
from tests.broadcast_cast import linked_groups, residents_with_chats
from tests.processes import ROOT, linli_process, run_linli
from tests.telegram_harness import TelegramUser, telegram_env
from tests.telegram_stub import BotApiStub, Limits

TEXT = "停水通知 Water off tomorrow 9:00–12:00"
LIMIT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ask(stub: BotApiStub, user: TelegramUser, webhook: bool) -> None:
    """/help, by the way updates reach the bots, until the answer is sent."""
    if not webhook:
        await user.send("/help", expect="", patience=30)
        return
    mark = len(stub.sent)
    await stub.deliver_webhook(stub.message_update(user.id, "/help", first_name=user.name))
    await stub.wait_for_message(user.id, after=mark, timeout=30)


async def ask_help(
    stub: BotApiStub,
    user: TelegramUser,
    stop: asyncio.Event,
    latencies: list[float],
    webhook: bool,
) -> None:
    """A resident in the middle of a dialogue: /help, wait for the answer, again."""
    while not stop.is_set():
        mark = time.perf_counter()
        try:
            await ask(stub, user, webhook)
        except (AssertionError, TimeoutError):
            latencies.append(30.0)
            continue
        latencies.append(time.perf_counter() - mark)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.5)


async def run(db: str, chats: int, groups: int, workdir: Path) -> Outcome:
    outcome = Outcome()
    processes = 2 if db == "postgres" else 1
    print(f"\n== {db}: {chats} private chats + {groups} groups, {processes} process(es)")
    url = await new_database(db, workdir, "linli_bench_broadcast")
    stub = BotApiStub()
    await stub.start()
    stub.limits = Limits()
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LINLI_")},
            **linli_environment(url, workdir, b"bench-voter-key-0123456789abcdef"),
            **telegram_env(stub),
        }
        await run_linli(env, "init")
        linli = assemble(load_settings(ROOT / "bot.toml", environ={"LINLI_DATABASE__URL": url}))
        try:
            mark = time.perf_counter()
            ids = await residents_with_chats(linli, chats, datetime.now(UTC))
            group_ids = await linked_groups(linli, groups, datetime.now(UTC))
            print(f"  setup: {time.perf_counter() - mark:.1f} s", flush=True)
        finally:
            await linli.close()
        text_file = workdir / "notice.html"
        text_file.write_text(TEXT, encoding="utf-8")
        async with contextlib.AsyncExitStack() as stack:
            bots = []
            for _ in range(processes):
                port = free_port()
                bot_env = {**env, "LINLI_WEB__PORT": str(port)}
                if processes > 1:
                    # Workers behind webhooks, as DESIGN.md "Scale" has them: Telegram allows
                    # one getUpdates poller; the last webhook set gets the updates, and every
                    # worker sends broadcasts.
                    bot_env.update(
                        LINLI_TELEGRAM__MODE="webhook",
                        LINLI_TELEGRAM__WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/webhook",
                        LINLI_TELEGRAM__WEBHOOK_SECRET="bench-secret",
                    )
                bots.append(
                    await stack.enter_async_context(
                        linli_process("run", env=bot_env, stdout=None, stderr=None)
                    )
                )
            resident = TelegramUser(stub, 42, "Asker")
            webhook = processes > 1
            for _ in range(600):  # the bots are up (the last webhook set is the one)
                if (not webhook or len(stub.calls_to("setWebhook")) == processes) and (
                    webhook or stub.calls_to("getUpdates")
                ):
                    break
                await asyncio.sleep(0.1)
            await ask(stub, resident, webhook)
            stop = asyncio.Event()
            latencies: list[float] = []
            asking = asyncio.create_task(ask_help(stub, resident, stop, latencies, webhook))
            start = time.perf_counter()
            said = await run_linli(
                env, "broadcast", "--scope", "community", "--text-file", str(text_file)
            )
            print(f"  linli broadcast: {said.strip()}", flush=True)
            wanted = set(ids) | set(group_ids)
            last_report = 0.0
            while True:
                got = {str(m["chat_id"]) for m in stub.sent if m.get("text") == TEXT}
                if wanted <= got:
                    break
                if time.perf_counter() - start > 3600:
                    outcome.fail("not finished within an hour")
                    break
                if time.perf_counter() - last_report > 30:
                    last_report = time.perf_counter()
                    print(f"  … {len(got)}/{len(wanted)}", flush=True)
                await asyncio.sleep(0.5)
            finished = time.perf_counter() - start
            stop.set()
            await asking
            for bot in bots:
                bot.send_signal(signal.SIGTERM)
            for bot in bots:
                await asyncio.wait_for(bot.wait(), 30)
    finally:
        await stub.stop()
        await drop_database(db, "linli_bench_broadcast")
    broadcast = [m for m in stub.sent if m.get("text") == TEXT]
    per_chat = Counter(str(m["chat_id"]) for m in broadcast)
    private = sorted(m["at"] for m in broadcast if not str(m["chat_id"]).startswith("-"))
    rate = (len(private) - 1) / (private[-1] - private[0]) if len(private) > 1 else 0.0
    sends = len([c for c in stub.calls if c[0].lower().startswith("send")])
    duplicates = sum(n - 1 for n in per_chat.values() if n > 1)
    losses = len(wanted - set(per_chat))
    share_429 = stub.too_many / max(sends, 1)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(f"  private-chat rate: {rate:.2f} messages/s = {rate / LIMIT:.3f} of 30/s")
    print(f"  sends answered 429: {stub.too_many} of {sends} ({100 * share_429:.3f}%)")
    print(f"  duplicates: {duplicates}; losses: {losses}")
    print(f"  time to finish: {finished:.1f} s for {len(wanted)} chats")
    print(
        f"  interactive replies meanwhile: {len(latencies)}, p50 {1000 * p50:.0f} ms, "
        f"p99 {1000 * p99:.0f} ms"
    )
    print(
        f"  targets: rate >= 0.93 {met(rate / LIMIT >= 0.93)}; 429 <= 0.1% "
        f"{met(share_429 <= 0.001)}; no duplicate or loss {met(not duplicates and not losses)}; "
        f"p99 < 500 ms {met(p99 < 0.5)}",
        flush=True,
    )
    ok = rate / LIMIT >= 0.93 and share_429 <= 0.001 and not duplicates and not losses
    if not ok or p99 >= 0.5:
        outcome.fail("a target was missed")
    return outcome


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=50)
    args = parser.parse_args()
    ok = True
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        workdir = Path(tempfile.mkdtemp(prefix="linli-bench-broadcast-"))
        try:
            ok &= (await run(db, args.chats, args.groups, workdir)).ok
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
