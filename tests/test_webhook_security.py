"""The Telegram webhook refuses what it can't trust (issue 8, items 1 and 3).

Everything here goes through real HTTP: the bot talks to the Bot API stub, and the web app is
served by uvicorn on a free port, so body limits are about reading a real request stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from bot.app import Linli
from bot.config import ConfigError, load_settings
from models import Identity
from services import outbox, people
from tests.conftest import ROOT, FakeClock
from tests.processes import linli_process
from tests.telegram_harness import TelegramUser, running_bot
from tests.telegram_stub import AsgiServer, BotApiStub, serve_asgi

SECRET = "s3cret-Token_1"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MB = 1 << 20


@asynccontextmanager
async def webhook_bot(
    db_url: str, stub: BotApiStub, clock: FakeClock
) -> AsyncIterator[tuple[Linli, str]]:
    """A bot in webhook mode whose web app uvicorn serves; yields it and the webhook's URL."""
    holder: dict[str, Any] = {}

    async def late_bound(scope: Any, receive: Any, send: Any) -> None:
        await holder["app"](scope, receive, send)

    server = AsgiServer(late_bound)
    await server.start()
    url = f"{server.url}/telegram/webhook"
    env = {
        "LINLI_TELEGRAM__MODE": "webhook",
        "LINLI_TELEGRAM__WEBHOOK_URL": url,
        "LINLI_TELEGRAM__WEBHOOK_SECRET": SECRET,
    }
    try:
        async with running_bot(db_url, stub, clock, **env) as linli:
            holder["app"] = linli.web
            yield linli, url
    finally:
        await server.stop()


async def identity(linli: Linli, external_id: int) -> Identity | None:
    async with linli.sessions() as session:
        return await session.scalar(
            select(Identity).where(
                Identity.channel == "telegram", Identity.external_id == str(external_id)
            )
        )


# ------------------------------------------------------------------ item 1: who may post


async def test_polling_mode_serves_no_webhook_route(
    sqlite_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with running_bot(sqlite_url, stub, clock) as linli:
        assert linli.web is not None
        forged = stub.message_update(4242, "/help", first_name="Staff")
        async with serve_asgi(linli.web) as base, httpx.AsyncClient() as client:
            posted = await client.post(f"{base}/telegram/webhook", json=forged)
            health = await client.get(f"{base}/healthz")
        assert posted.status_code == 404
        assert health.status_code == 200
        await stub.wait_idle()
        assert stub.messages_to(4242) == []
        assert await identity(linli, 4242) is None


def test_webhook_mode_needs_a_secret() -> None:
    environ = {
        "LINLI_TELEGRAM__TOKEN": "1:abc",
        "LINLI_TELEGRAM__MODE": "webhook",
        "LINLI_TELEGRAM__WEBHOOK_URL": "https://bot.example.org/telegram/webhook",
    }
    with pytest.raises(ConfigError, match=r"telegram\.webhook_secret"):
        load_settings(ROOT / "bot.toml", environ=environ)
    with pytest.raises(ConfigError, match=r"telegram\.webhook_secret"):
        load_settings(ROOT / "bot.toml", environ={**environ, "LINLI_TELEGRAM__WEBHOOK_SECRET": ""})
    settings = load_settings(
        ROOT / "bot.toml", environ={**environ, "LINLI_TELEGRAM__WEBHOOK_SECRET": SECRET}
    )
    assert settings.telegram.webhook_secret == SECRET
    # Polling needs no secret: nothing listens for Telegram on the web port.
    assert load_settings(ROOT / "bot.toml", environ={"LINLI_TELEGRAM__TOKEN": "1:abc"})


def test_webhook_mode_needs_a_url() -> None:
    environ = {
        "LINLI_TELEGRAM__TOKEN": "1:abc",
        "LINLI_TELEGRAM__MODE": "webhook",
        "LINLI_TELEGRAM__WEBHOOK_SECRET": SECRET,
    }
    with pytest.raises(ConfigError, match=r"telegram\.webhook_url"):
        load_settings(ROOT / "bot.toml", environ=environ)


async def test_run_in_webhook_mode_without_secret_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
    env.update(
        LINLI_DATABASE__URL=f"sqlite+aiosqlite:///{tmp_path / 'linli.db'}",
        LINLI_TELEGRAM__TOKEN="1:abc",
        LINLI_TELEGRAM__MODE="webhook",
        LINLI_TELEGRAM__WEBHOOK_URL="https://bot.example.org/telegram/webhook",
    )
    async with linli_process("run", env=env, stdin=asyncio.subprocess.DEVNULL) as process:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "telegram.webhook_secret" in lines[0], lines
    assert out == b""
    assert not (tmp_path / "linli.db").exists()  # stopped before touching anything


async def test_webhook_mode_refuses_a_wrong_or_missing_secret(
    sqlite_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with webhook_bot(sqlite_url, stub, clock) as (linli, _url):
        update = stub.message_update(4343, "/help", first_name="Web")
        assert await stub.deliver_webhook(update, secret="wrong") == 403
        assert await stub.deliver_webhook(update, secret=None) == 403
        assert await stub.deliver_webhook(update, secret="") == 403
        await stub.wait_idle()
        assert stub.messages_to(4343) == []
        assert await identity(linli, 4343) is None
        assert await stub.deliver_webhook(update) == 200
        await stub.wait_for_message(4343, contains="what you can do")


async def test_forged_private_chat_is_refused(
    sqlite_url: str,
    stub: BotApiStub,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(sqlite_url, stub, clock) as linli:
        alice = TelegramUser(stub, 5001, "Alice")
        await alice.send("/help", expect="what you can do")
        known = await identity(linli, 5001)
        assert known is not None and known.private_chat_id == "5001"

        # Alice's id, in a "private chat" that is somebody else's: Telegram never sends this.
        mark = len(stub.sent)
        stub.send_text(5001, "/help", chat_id=6666, chat_type="private", first_name="Alice")
        await stub.wait_idle()
        assert stub.sent[mark:] == []
        after = await identity(linli, 5001)
        assert after is not None and after.private_chat_id == "5001"
        refused = [r for r in caplog.records if "6666" in r.getMessage()]
        assert refused and all(r.levelno >= logging.WARNING for r in refused)
        for record in refused:
            line = record.getMessage()
            assert "5001" in line and "Alice" not in line and "/help" not in line

        # What the bot sends Alice later still reaches her own chat, not the forged one.
        async with linli.sessions() as session, session.begin():
            person = await people.by_identity(session, "telegram", "5001")
            assert person is not None
            outbox.enqueue(session, person.id, {"text": "a notice for Alice"}, clock())
        assert await linli.dispatcher.run_once() == 1
        await stub.wait_for_message(5001, contains="a notice for Alice")
        await alice.send("/help", expect="what you can do")
        assert stub.messages_to(6666) == []


async def test_forged_private_chat_is_refused_on_the_webhook_too(
    sqlite_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with webhook_bot(sqlite_url, stub, clock) as (linli, _url):
        forged = stub.message_update(5101, "/help", chat_id=6767, chat_type="private")
        assert await stub.deliver_webhook(forged) == 200  # Telegram must not redeliver it
        await stub.wait_idle()
        assert stub.messages_to(6767) == [] and stub.messages_to(5101) == []
        assert await identity(linli, 5101) is None


# ------------------------------------------------------------------ item 3: what may be posted


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_reply_chain(depth: int) -> bytes:
    """A message whose reply_to_message nests `depth` deep: valid JSON, absurd as an update."""
    base = {"message_id": 1, "date": 0, "chat": {"id": 7001, "type": "private"}}
    inner: dict[str, Any] = dict(base)
    for _ in range(depth):
        inner = {**base, "reply_to_message": inner}
    return json.dumps({"update_id": 1, "message": inner}).encode()


MALFORMED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not json", b"{not json"),
    ("invalid utf-8", b'{"update_id": 1, "message": "\xff\xfe"}'),
    ("array", b"[]"),
    ("null", b"null"),
    ("string", b'"hi"'),
    ("number", b"17"),
    ("object without update_id", b"{}"),
    ("update_id as text", b'{"update_id": "1"}'),
    ("update_id as boolean", b'{"update_id": true}'),
    ("message as string", b'{"update_id": 1, "message": "hi"}'),
    ("message as array", b'{"update_id": 1, "message": []}'),
    ("message as null", b'{"update_id": 1, "message": null}'),
    ("callback as number", b'{"update_id": 1, "callback_query": 5}'),
    ("chat as string", b'{"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": "x"}}'),
    (
        "chat id as list",
        b'{"update_id": 1, "message": {"message_id": 1, "date": 0,'
        b' "chat": {"id": [1], "type": "private"}}}',
    ),
    (
        "sender as list",
        b'{"update_id": 1, "message": {"message_id": 1, "date": 0,'
        b' "chat": {"id": 1, "type": "private"}, "from": []}}',
    ),
    (
        "text as object",
        b'{"update_id": 1, "message": {"message_id": 1, "date": 0,'
        b' "chat": {"id": 1, "type": "private"}, "from": {"id": 1, "is_bot": false,'
        b' "first_name": "x"}, "text": {}}}',
    ),
    ("message without its fields", b'{"update_id": 1, "message": {"chat": {"id": 1}}}'),
    ("100000 nested lists", _nested(100_000)),
    ("100000 nested lists in a message", b'{"update_id": 1, "message": ' + _nested(100_000) + b"}"),
    ("deep reply chain", _deep_reply_chain(900)),
]


async def test_malformed_bodies_get_400_and_a_valid_update_still_works(
    sqlite_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with webhook_bot(sqlite_url, stub, clock) as (_linli, url):
        headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=10) as client:
            answers = {
                name: (await client.post(url, content=body, headers=headers)).status_code
                for name, body in MALFORMED
            }
        assert answers == {name: 400 for name, _ in MALFORMED}
        update = stub.message_update(7001, "/help", first_name="Still")
        assert await stub.deliver_webhook(update) == 200
        await stub.wait_for_message(7001, contains="what you can do")


async def raw_post(url: str, head: Iterable[str], chunks: Iterable[bytes]) -> int:
    """POST over a bare socket, send `chunks` (never finishing a chunked body), read the status.

    The body is never completed, so an answer proves the server refused before reading it whole.
    """
    where = urlsplit(url)
    assert where.hostname is not None and where.port is not None
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        lines = [
            f"POST {where.path} HTTP/1.1",
            f"Host: {where.netloc}",
            f"{SECRET_HEADER}: {SECRET}",
            "Content-Type: application/json",
            *head,
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass  # the server may hang up once it has answered; its answer is still there
        status = await asyncio.wait_for(reader.readline(), timeout=10)
        return int(status.split()[1])
    finally:
        writer.close()


def _chunked(size: int, piece: int = 64 * 1024) -> Iterable[bytes]:
    """`size` bytes of a JSON-ish body in chunked framing, without the terminating chunk."""
    sent = 0
    while sent < size:
        data = b" " * min(piece, size - sent)
        sent += len(data)
        yield f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def test_bodies_over_1_mb_are_refused_before_they_are_read(
    sqlite_url: str, stub: BotApiStub, clock: FakeClock
) -> None:
    async with webhook_bot(sqlite_url, stub, clock) as (_linli, url):
        # A declared 64 MB, of which only 64 KB ever arrive.
        declared = await raw_post(url, [f"Content-Length: {64 * MB}"], [b" " * (64 * 1024)])
        assert declared == 413
        # No Content-Length: the bytes are counted as they stream in.
        streamed = await raw_post(url, ["Transfer-Encoding: chunked"], _chunked(MB + 64 * 1024))
        assert streamed == 413
        # The secret is checked first: a stranger learns nothing about the limits.
        async with httpx.AsyncClient(timeout=10) as client:
            stranger = await client.post(url, content=b" " * (2 * MB), headers={})
        assert stranger.status_code == 403
        update = stub.message_update(7101, "/help", first_name="After")
        assert await stub.deliver_webhook(update) == 200
        await stub.wait_for_message(7101, contains="what you can do")
