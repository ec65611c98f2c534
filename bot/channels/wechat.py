"""WeChat Official Account (公众号): callbacks at /wechat on the web app, replies in place or
through the customer-service API (DESIGN.md "WeChat's deadline").

wechatpy does the message crypto and reply XML; its HTTP client is synchronous, so every
outbound call goes through our own httpx client, against `api_base_url`. Signatures are checked
here, in constant time, before anything is decrypted or parsed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import xmltodict
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from wechatpy.crypto import PrpCrypto

from bot.config import WeChatSettings
from bot.delivery import RecipientBlocked
from bot.pace import MemoryPace, Pace
from handlers.messages import (
    Capabilities,
    ChatRef,
    FileRef,
    Incoming,
    Kind,
    Outgoing,
    Reply,
    Sender,
    numbered,
)
from handlers.reports.intake import FileTooBig
from services import cards, people, platform_tokens
from services.media import MediaStorage
from services.sql import Transaction

log = logging.getLogger("linli.wechat")

CHANNEL = "wechat"
PATH = "/wechat"
# A callback is a few hundred bytes; anything this big is not from WeChat.
MAX_BODY = 64 * 1024
# Callbacks older (or newer) than this are replays, not deliveries.
TIMESTAMP_WINDOW = 300
# WeChat shows at most 2048 bytes of text in one message; stay well inside it.
MAX_TEXT_BYTES = 2000
SUCCESS = "success"
# A temporary QR code lives at most 30 days.
QR_LIFETIME = 30 * 24 * 3600
# How many keys answered with `success` are remembered, for their retries.
LATE_KEPT = 10_000
# Scanning a parametric QR code: "qrscene_<code>" when it subscribes, "<code>" when it doesn't.
SCENE_PREFIX = "qrscene_"
# Errors that mean the cached access token is no good: refresh once, then retry.
STALE_TOKEN = {40001, 42001, 40014}
# The token fetch must not hang: others wait for it, up to its lease.
TOKEN_TIMEOUT = 5.0
LEASE = timedelta(seconds=TOKEN_TIMEOUT + 5)
# How often a process waiting for another one's refresh looks for the new token.
TOKEN_POLL = 0.05
OUTSIDE_WINDOW = 45015
OUT_OF_QUOTA = 45047
CLOSED_BECAUSE = {
    OUTSIDE_WINDOW: "outside WeChat's 48 h customer-service window",
    OUT_OF_QUOTA: "WeChat's customer-service quota used up until they write again",
}
NOT_FOLLOWING = 43004

Handle = Callable[[Incoming], Awaitable[Reply]]
Clock = Callable[[], float]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BadCallback(Exception):
    """Not a callback WeChat sent: refused with a 4xx, logged, and nothing changes."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class WeChatError(Exception):
    """WeChat answered a call with an error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"WeChat error {code}: {message}")
        self.code = code


def signature(*parts: str) -> str:
    """WeChat's SHA-1 over the sorted parts (token, timestamp, nonce[, encrypted body])."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def cdata_safe(text: str) -> str:
    """wechatpy wraps reply fields in CDATA without escaping: "]]>" would end it early."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def split_text(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Text in pieces WeChat accepts, cut at line breaks where possible (limits are in bytes)."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) <= limit:
            current = candidate
            continue
        if current:
            chunks.append(current)
        while len(line.encode()) > limit:
            cut = limit
            while len(line[:cut].encode()) > limit:
                cut -= 1
            chunks.append(line[:cut])
            line = line[cut:]
        current = line
    if current or not chunks:
        chunks.append(current)
    return chunks


def render_text(message: Outgoing) -> str:
    """Options as the engine's numbered list, answered with the digit or the option's text."""
    lines = [message.plain_text]
    lines += [f"{n} {option.label}" for n, option in numbered(message.options)]
    return "\n".join(line for line in lines if line)


def _unsubscribed(msg: dict[str, Any]) -> bool:
    return msg.get("MsgType") == "event" and str(msg.get("Event") or "").lower() == "unsubscribe"


def to_incoming(msg: dict[str, Any]) -> Incoming | None:
    """The one place that reads WeChat's message fields; None: nothing for the dialogue."""
    sender = str(msg.get("FromUserName") or "")
    kind = str(msg.get("MsgType") or "")
    if not sender or not kind:
        return None
    chat = ChatRef(CHANNEL, sender, True)
    who = Sender(sender)
    if kind == "event":
        event = str(msg.get("Event") or "").lower()
        scene = str(msg.get("EventKey") or "")
        # (FromUserName, CreateTime, Event), and which menu button or QR code: two taps on
        # different buttons within one second are two updates, a retry of either is not.
        key = f"{sender}:{msg.get('CreateTime')}:{event}"
        if scene:
            key += ":" + hashlib.sha1(scene.encode()).hexdigest()[:12]
        base = {"chat": chat, "sender": who, "update_key": key}
        if event in ("subscribe", "scan"):
            code = scene.removeprefix(SCENE_PREFIX)
            text = f"/start {code}".strip()
            return Incoming(kind=Kind.COMMAND, text=text, command="start", args=code, **base)
        if event == "click" and scene:
            command, _, args = scene.partition(" ")
            return Incoming(
                kind=Kind.COMMAND, text=f"/{scene}", command=command.lower(), args=args, **base
            )
        return None  # unsubscribe, view, location reports: nothing to answer
    base = {"chat": chat, "sender": who, "update_key": f"{sender}:{msg.get('MsgId')}"}
    if kind == "text":
        text = str(msg.get("Content") or "")
        if text.startswith("/") and len(text) > 1:
            command, _, args = text[1:].partition(" ")
            return Incoming(
                kind=Kind.COMMAND, text=text, command=command.lower(), args=args.strip(), **base
            )
        return Incoming(kind=Kind.TEXT, text=text, **base)
    if kind == "image":
        media_id = str(msg.get("MediaId") or "")
        return Incoming(kind=Kind.PHOTO, photo=FileRef(media_id, mime_type="image/jpeg"), **base)
    if kind == "voice":
        media_id = str(msg.get("MediaId") or "")
        # With speech recognition on, what was said comes with it: offered as the text.
        spoken = str(msg.get("Recognition") or "")
        return Incoming(
            kind=Kind.VOICE,
            text=spoken,
            voice=FileRef(media_id, mime_type="audio/amr"),
            **base,
        )
    if kind == "location":
        try:
            where = (float(msg["Location_X"]), float(msg["Location_Y"]))
        except (KeyError, TypeError, ValueError):
            return None
        return Incoming(kind=Kind.LOCATION, location=where, **base)
    return Incoming(kind=Kind.OTHER, other_kind=kind, **base)


class WeChatApi:
    """The outbound calls, on an async client, with the access token shared through the
    database (services/platform_tokens.py) and kept in memory until it is due."""

    def __init__(
        self,
        settings: WeChatSettings,
        transaction: Transaction,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.transaction = transaction
        self.now = now
        self.http = httpx.AsyncClient(base_url=settings.api_base_url, timeout=10.0)
        self.name = f"wechat:{settings.appid}"
        self._token: platform_tokens.Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many tokens this process fetched (tests, logs)
        # Set once this process has waited for another one's refresh (tests).
        self.waiting = asyncio.Event()

    async def close(self) -> None:
        await self.http.aclose()

    async def token(self, *, refused: str | None = None) -> str:
        """A token to call with: `refused` is the one WeChat just called stale, so any other
        valid token will do. One process fetches (the lease in services/platform_tokens.py);
        the others wait for the token it stores."""
        cached = self._token
        if cached is not None and cached.usable(self.now(), not_this=refused):
            return cached.value
        async with self._lock:  # one refresher per process
            deadline = self.now() + LEASE * 2
            while True:
                async with self.transaction() as session:
                    stored = await platform_tokens.read(session, self.name)
                if stored is not None and stored.usable(self.now(), not_this=refused):
                    self._token = stored
                    return stored.value
                async with self.transaction() as session:
                    mine = await platform_tokens.lease(
                        session, self.name, self.now(), LEASE, refused=refused
                    )
                if mine:
                    return await self._refresh(force=refused is not None)
                if self.now() > deadline:
                    raise WeChatError(-1, "no access token: another process's refresh hangs")
                # Another process is fetching: its token is in the database within moments.
                self.waiting.set()
                await asyncio.sleep(TOKEN_POLL)

    async def _refresh(self, *, force: bool) -> str:
        try:
            fetched = await self._fetch_token(force_refresh=force)
        except BaseException:
            async with self.transaction() as session:
                await platform_tokens.give_up(session, self.name)
            raise
        async with self.transaction() as session:
            await platform_tokens.store(session, self.name, fetched, self.now())
        self._token = fetched
        return fetched.value

    async def _fetch_token(self, *, force_refresh: bool) -> platform_tokens.Token:
        # stable_token: the same token for every caller until it expires, so a second fetch
        # does not cut off whoever still holds the first one.
        self.fetches += 1
        data = await self._json(
            "POST",
            "/cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": self.settings.appid,
                "secret": self.settings.secret,
                "force_refresh": force_refresh,
            },
            timeout=TOKEN_TIMEOUT,
        )
        # Refreshed five minutes early: a token that runs out mid-call costs a retry.
        lifetime = float(data.get("expires_in", 7200)) - 300
        log.info("wechat access token fetched (refresh=%s)", force_refresh)
        return platform_tokens.Token(
            str(data["access_token"]), self.now() + timedelta(seconds=max(lifetime, 60))
        )

    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = await self.http.request(method, path, **kw)
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WeChatError(-1, f"{type(exc).__name__} calling {path}") from exc
        if not isinstance(data, dict):
            raise WeChatError(-1, f"unexpected answer from {path}")
        code = int(data.get("errcode") or 0)
        if code:
            raise WeChatError(code, str(data.get("errmsg") or ""))
        return data

    async def call(
        self, path: str, *, params: dict[str, str] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """An API call with the access token; a stale token is refreshed once."""
        token = await self.token()
        try:
            return await self._json(
                "POST", path, params={**(params or {}), "access_token": token}, **kw
            )
        except WeChatError as exc:
            if exc.code not in STALE_TOKEN:
                raise
        token = await self.token(refused=token)
        return await self._json(
            "POST", path, params={**(params or {}), "access_token": token}, **kw
        )

    async def download(self, media_id: str, limit: int) -> bytes:
        token = await self.token()
        try:
            return await self._download(media_id, limit, token)
        except WeChatError as exc:
            if exc.code not in STALE_TOKEN:
                raise
        return await self._download(media_id, limit, await self.token(refused=token))

    async def _download(self, media_id: str, limit: int, token: str) -> bytes:
        async with self.http.stream(
            "GET", "/cgi-bin/media/get", params={"access_token": token, "media_id": media_id}
        ) as response:
            if response.headers.get("content-type", "").startswith(("application/json", "text")):
                # An error comes as JSON instead of the file.
                try:
                    data = orjson.loads(await response.aread())
                    code = int(data.get("errcode") or -1)
                except (ValueError, TypeError, AttributeError):
                    code = -1
                raise WeChatError(code, f"no media {media_id}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise FileTooBig(len(body))
            return bytes(body)


class ServiceWindow:
    """What this process knows of each follower's customer-service window: it opens for
    `hours` when they write and takes `quota` messages until they write again (WeChat's rules).
    Only a hint that saves calls bound to fail: WeChat's 45015 and 45047 are what count, and a
    follower this process has not heard from is tried."""

    def __init__(self, seconds: float, quota: int, clock: Clock, kept: int = 50_000) -> None:
        self.seconds, self.quota, self.clock, self.kept = seconds, quota, clock, kept
        self._followers: OrderedDict[str, list[float]] = OrderedDict()  # [opened, spent]

    def open(self, openid: str) -> None:
        self._followers[openid] = [self.clock(), 0]
        self._followers.move_to_end(openid)
        while len(self._followers) > self.kept:
            self._followers.popitem(last=False)

    def closed_because(self, openid: str, messages: int) -> str | None:
        """Why `messages` more can't go to them as customer-service messages; None: try."""
        known = self._followers.get(openid)
        if known is None:
            return None
        opened, spent = known
        if self.clock() - opened >= self.seconds:
            return CLOSED_BECAUSE[OUTSIDE_WINDOW]
        if spent + messages > self.quota:
            return CLOSED_BECAUSE[OUT_OF_QUOTA]
        return None

    def spend(self, openid: str) -> None:
        known = self._followers.get(openid)
        if known is not None:
            known[1] += 1

    def close(self, openid: str, code: int) -> None:
        """WeChat said no (45015 or 45047): nothing more until they write again."""
        if code == OUTSIDE_WINDOW:
            self._followers[openid] = [self.clock() - self.seconds, 0]
        else:
            self._followers[openid] = [self.clock(), self.quota]


# How a message went (a broadcast's counts say): inside the 48 h customer-service window, or
# as a template message outside it.
VIA_SERVICE, VIA_TEMPLATE = "wechat_cs", "wechat_template"


class WeChatChannel:
    name = CHANNEL
    capabilities = Capabilities(
        buttons=False, edits=False, press_answers=False, files_keep_location=False, locations=True
    )
    reach: frozenset[str] | None = None

    def __init__(
        self,
        settings: WeChatSettings,
        handle: Handle,
        *,
        media: MediaStorage,
        transaction: Transaction,
        clock: Clock = time.time,
        pace: Pace | None = None,
    ) -> None:
        self.settings = settings
        self.pace: Pace = pace or MemoryPace()
        self.handle = handle
        self.media = media
        self.clock = clock
        self.transaction = transaction
        self.api = WeChatApi(settings, transaction)
        self.window = ServiceWindow(settings.window_hours * 3600, settings.window_quota, clock)
        self.crypto = PrpCrypto(_aes_key(settings.aes_key)) if settings.mode != "plain" else None
        # Callbacks being handled, by update key: WeChat retries one it got no answer to, and
        # the retry must neither start it again nor lose its reply.
        self._running: dict[str, asyncio.Task[Reply]] = {}
        # Keys answered with `success` whose replies go out through the API (oldest first).
        self._late: dict[str, None] = {}
        self._sending: set[asyncio.Future[None]] = set()

    def routes(self) -> list[Route]:
        return [Route(PATH, self._callback, methods=["GET", "POST"])]

    async def drain(self) -> None:
        """Wait for callbacks being handled and replies being sent (tests, shutdown)."""
        while self._running or self._sending:
            await asyncio.gather(*self._running.values(), *self._sending, return_exceptions=True)
            await asyncio.sleep(0)

    async def close(self) -> None:
        await self.drain()
        await self.api.close()

    # ------------------------------------------------------------------ inbound

    def _check(self, request: Request, *extra: str) -> None:
        query = request.query_params
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        given = query.get("msg_signature" if extra else "signature", "")
        expected = signature(self.settings.token, timestamp, nonce, *extra)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise BadCallback(403, "bad signature")
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > TIMESTAMP_WINDOW:
            raise BadCallback(403, "timestamp outside the window")

    async def _callback(self, request: Request) -> Response:
        try:
            if request.method == "GET":
                # The handshake when the URL is configured: echo `echostr` if the signature holds.
                self._check(request)
                return PlainTextResponse(request.query_params.get("echostr", ""))
            message = await self._read(request)
        except BadCallback as exc:
            log.info("wechat callback refused (%d): %s", exc.status, exc)
            return PlainTextResponse("", status_code=exc.status)
        if _unsubscribed(message):
            await self._unfollowed(str(message.get("FromUserName") or ""))
            return PlainTextResponse(SUCCESS)
        incoming = to_incoming(message)
        if incoming is None:
            return PlainTextResponse(SUCCESS)
        if incoming.chat.private:
            self.window.open(incoming.chat.chat_id)
        return await self._answer(request, incoming)

    async def _unfollowed(self, openid: str) -> None:
        """They can no longer be written to here: their notices go to another app they linked,
        or are settled unreachable, without a call WeChat would refuse. Following again (any
        message from them) makes the chat reachable once more."""
        if openid:
            async with self.transaction() as session:
                await people.unreachable(session, CHANNEL, openid)
            log.info("wechat follower left openid=%s", openid)

    async def _read(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise BadCallback(413, "body too large")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    raise BadCallback(413, "body too large")
        except ClientDisconnect as exc:
            raise BadCallback(400, "incomplete body") from exc
        outer = _parse(bytes(body))
        if self.settings.mode == "plain" or "Encrypt" not in outer:
            if self.settings.mode == "safe":
                raise BadCallback(400, "safe mode takes encrypted callbacks only")
            self._check(request)
            return outer
        encrypted = str(outer["Encrypt"])
        self._check(request, encrypted)
        assert self.crypto is not None
        try:
            inner = self.crypto.decrypt(encrypted, self.settings.appid)
        except Exception as exc:  # a wrong AppId or a damaged body: not our callback
            raise BadCallback(400, f"cannot decrypt ({type(exc).__name__})") from exc
        return _parse(inner.encode())

    async def _answer(self, request: Request, incoming: Incoming) -> Response:
        """Within the budget: the reply in place if it is one short text, else `success` and the
        customer-service API. A retry of a callback still being handled waits for the same
        work; one already answered with `success` gets `success` again."""
        key = incoming.update_key or ""
        task = self._running.get(key)
        if task is None:
            if key in self._late:
                return PlainTextResponse(SUCCESS)
            task = asyncio.create_task(self.handle(incoming))
            self._running[key] = task
        try:
            reply = await asyncio.wait_for(
                asyncio.shield(task), timeout=self.settings.reply_budget_seconds
            )
        except TimeoutError:
            if key not in self._late:
                self._late[key] = None
                task.add_done_callback(lambda done: self._deliver_late(key, incoming, done))
            return PlainTextResponse(SUCCESS)
        self._running.pop(key, None)
        if key in self._late or reply.outcome == "duplicate":
            return PlainTextResponse(SUCCESS)
        passive = self._passive(incoming, reply)
        if passive is None:
            self._spawn(self._send_replies(incoming, reply))
            return PlainTextResponse(SUCCESS)
        reply.sent()
        return Response(passive, media_type="application/xml")

    def _deliver_late(self, key: str, incoming: Incoming, task: asyncio.Task[Reply]) -> None:
        self._running.pop(key, None)
        while len(self._late) > LATE_KEPT:
            del self._late[next(iter(self._late))]
        if task.cancelled() or task.exception() is not None:
            return
        reply = task.result()
        if reply.outcome != "duplicate":
            self._spawn(self._send_replies(incoming, reply))

    def _spawn(self, work: Awaitable[None]) -> None:
        sending = asyncio.ensure_future(work)
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)

    def _passive(self, incoming: Incoming, reply: Reply) -> str | None:
        """The reply as one passive text message, or None if it is not one short text."""
        if len(reply.messages) != 1:
            return None
        message = reply.messages[0]
        text = render_text(message)
        if message.image_key or message.attachments or len(split_text(text)) > 1:
            return None
        now = str(int(self.clock()))
        xml = (
            f"<xml><ToUserName><![CDATA[{cdata_safe(incoming.chat.chat_id)}]]></ToUserName>"
            f"<FromUserName><![CDATA[{cdata_safe(self.settings.appid)}]]></FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{cdata_safe(text)}]]></Content></xml>"
        )
        if self.crypto is None:
            return xml
        nonce = hashlib.sha1(f"{now}{incoming.update_key}".encode()).hexdigest()[:16]
        encrypted = self.crypto.encrypt(xml, self.settings.appid).decode()
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{signature(self.settings.token, now, nonce, encrypted)}]]></MsgSignature>"
            f"<TimeStamp>{now}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )

    async def _send_replies(self, incoming: Incoming, reply: Reply) -> None:
        try:
            for message in reply.messages:
                await self.send(incoming.chat.chat_id, message)
        except Exception as exc:  # kept on the update: the tick sends replies left behind
            log.warning("wechat reply not sent key=%s: %s", incoming.update_key, exc)
            return
        reply.sent()

    # ------------------------------------------------------------------ outbound

    async def send(self, chat_id: str, message: Outgoing, *, bulk: bool = False) -> str | None:
        """Customer-service messages: a picture as an image message, then the text (with the
        options as a numbered list) in as many pieces as it takes. Outside the window or the
        quota, as far as this process knows or WeChat says, a template message instead.

        WeChat can't edit a message, so an updated card is a new message, and only when it is
        worth one: its picture is sent once, and a card whose text did not change is not sent
        again."""
        text = render_text(message)
        shown = await self._card_shown(chat_id, message)
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        if shown is not None and shown.message_id == digest:
            log.info("wechat card unchanged, not sent again chat=%s", chat_id)
            return None
        image = message.image_key if shown is None or not shown.has_image else None
        pieces = split_text(text)
        if bulk and self.settings.messages_per_second > 0:
            # A broadcast keeps to the account's own rate (configuration), each message's
            # API calls counted.
            for _ in range(len(pieces) + (image is not None)):
                await self.pace.wait(CHANNEL, 1 / self.settings.messages_per_second, bulk=True)
        closed = self.window.closed_because(chat_id, len(pieces) + (image is not None))
        if closed is not None:
            await self._template(chat_id, message, closed)
            return VIA_TEMPLATE
        try:
            if image:
                media_id = await self._upload(image)
                await self._custom(chat_id, {"msgtype": "image", "image": {"media_id": media_id}})
            for piece in pieces:
                await self._custom(chat_id, {"msgtype": "text", "text": {"content": piece}})
        except WeChatError as exc:
            if exc.code in (OUTSIDE_WINDOW, OUT_OF_QUOTA):
                self.window.close(chat_id, exc.code)
                await self._template(chat_id, message, CLOSED_BECAUSE[exc.code])
                return VIA_TEMPLATE
            if exc.code == NOT_FOLLOWING:
                raise RecipientBlocked(str(exc)) from exc
            raise
        if message.card is not None:
            async with self.transaction() as session:
                await cards.remember(
                    session,
                    CHANNEL,
                    chat_id,
                    message.card.kind,
                    message.card.subject,
                    cards.Shown(digest, image is not None or bool(shown and shown.has_image)),
                    self.api.now(),
                )
        return VIA_SERVICE

    async def _custom(self, chat_id: str, body: dict[str, Any]) -> None:
        await self.api.call("/cgi-bin/message/custom/send", json={"touser": chat_id, **body})
        self.window.spend(chat_id)

    async def _card_shown(self, chat_id: str, message: Outgoing) -> cards.Shown | None:
        if message.card is None:
            return None
        async with self.transaction() as session:
            return await cards.find(
                session, CHANNEL, chat_id, message.card.kind, message.card.subject
            )

    async def _template(self, chat_id: str, message: Outgoing, closed: str) -> None:
        """Outside the customer-service window or quota only a template message reaches the
        person: the one mapped to this notification kind in bot.toml ([wechat.templates]), with
        the text as its `content` field. A kind with no template can't be delivered on WeChat:
        recorded with the reason (`closed`), not retried."""
        template = self.settings.templates.get(message.notice or "")
        if template is None:
            raise RecipientBlocked(
                f"{closed}, and no template for {message.notice or 'a reply'}", lasting=False
            )
        await self.api.call(
            "/cgi-bin/message/template/send",
            json={
                "touser": chat_id,
                "template_id": template,
                "data": {"content": {"value": render_text(message)[:200]}},
            },
        )

    async def _upload(self, key: str) -> str:
        data = await asyncio.to_thread(self.media.get, key)
        uploaded = await self.api.call(
            "/cgi-bin/media/upload",
            params={"type": "image"},
            files={"media": (f"{key[:16]}.jpg", data, "image/jpeg")},
        )
        return str(uploaded["media_id"])

    async def invite_link(self, code: str) -> str:
        """A parametric QR code whose scene is the invite code (valid 30 days, WeChat's
        longest for a temporary code): the URL its image encodes."""
        made = await self.api.call(
            "/cgi-bin/qrcode/create",
            json={
                "expire_seconds": QR_LIFETIME,
                "action_name": "QR_STR_SCENE",
                "action_info": {"scene": {"scene_str": code}},
            },
        )
        return str(made["url"])

    async def install_menu(self) -> int:
        """The account's menu from bot.toml ([[wechat.menu]]): each click runs its command."""
        buttons = [_menu_button(entry) for entry in self.settings.menu]
        await self.api.call("/cgi-bin/menu/create", json={"button": buttons})
        return sum(len(b.get("sub_button", [])) or 1 for b in buttons)

    async def fetch(self, ref: FileRef, limit: int) -> bytes:
        return await self.api.download(ref.file_ref, limit)


def _menu_button(entry: Any) -> dict[str, Any]:
    if entry.items:
        return {"name": entry.name, "sub_button": [_menu_button(i) for i in entry.items]}
    return {"type": "click", "name": entry.name, "key": entry.command}


def _aes_key(encoded: str) -> bytes:
    import base64

    return base64.b64decode(encoded + "=")


def _parse(body: bytes) -> dict[str, Any]:
    """WeChat's XML, flat. No DOCTYPE at all: entity expansion bombs stop here."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise BadCallback(400, "a DOCTYPE in a callback")
    try:
        parsed = xmltodict.parse(body, disable_entities=True)
    except Exception as exc:  # expat's errors, and xmltodict's
        raise BadCallback(400, f"malformed XML ({type(exc).__name__})") from exc
    root = parsed.get("xml") if isinstance(parsed, dict) else None
    if not isinstance(root, dict) or any(not isinstance(v, str | None) for v in root.values()):
        raise BadCallback(400, "not a WeChat message")
    return root


__all__ = ["WeChatChannel", "to_incoming"]
