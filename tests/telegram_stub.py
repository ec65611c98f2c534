"""A fake Telegram Bot API server that a real python-telegram-bot talks HTTP to.

Why a server and not mocks: patching ``telegram.Bot`` methods skips exactly the layer where
production bugs live - how PTB encodes parameters, keyboards it cannot serialise, callback_data
over 64 bytes, HTML Telegram refuses to parse, the inline keyboard that ``editMessageText``
silently drops, updates delivered twice, 429s and blocked users.  With this stub the bot under
test runs its real request path (``HTTPXRequest`` -> HTTP -> JSON) against a server that keeps
Telegram's observable semantics, so a passing end-to-end test means something.

Typical use::

    async with BotApiStub() as stub:
        app = (ApplicationBuilder().token(stub.token).base_url(stub.api_base_url)
               .base_file_url(stub.file_base_url).build())
        ...
        stub.send_text(42, "/start")
        msg = await stub.wait_for_message(42, contains="Welcome")
        stub.press(42, stub.buttons(msg)[0][1])

Fidelity notes (deliberate, so tests fail where Telegram would fail):

* ``getUpdates`` honours ``offset``/``limit``/``timeout`` (a real long poll that wakes on push),
  returns 409 when a newer ``getUpdates`` supersedes a waiting one or while a webhook is set,
  and applies Telegram's default ``allowed_updates`` (``chat_member``, ``message_reaction`` and
  ``message_reaction_count`` are only delivered when explicitly requested).
* ``parse_mode`` HTML and MarkdownV2 are validated; the recorded ``text`` is what the user sees.
* ``editMessageText``/``editMessageCaption`` without ``reply_markup`` remove the keyboard, and an
  edit that changes nothing returns "message is not modified".
* Text > 4096 / caption > 1024 UTF-16 units and callback_data > 64 bytes are rejected.
* Webhook URLs are not checked for https or allowed ports.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import html.parser
import io
import itertools
import json
import math
import mimetypes
import re
import socket
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.message import Message as _MimeHeaders
from email.utils import collapse_rfc2231_value
from typing import Any, Final
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

try:
    from PIL import Image as _PILImage
except ImportError:  # pragma: no cover - Pillow is a project dependency
    _PILImage = None  # type: ignore[assignment]

JSONDict = dict[str, Any]
ChatId = int | str

USE_REGISTERED: Final = "use-registered"
"""Default for ``deliver_webhook(secret=...)``: send the secret given to ``setWebhook``."""

# Telegram's default when allowed_updates was never set (or set to []): everything but these.
_OPT_IN_UPDATE_TYPES: Final = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)

# Parameters that are free text or file references: PTB sends str values unencoded, so these
# must never be JSON-decoded (a user typing "123" must stay the string "123").
_STRING_PARAMS: Final = frozenset(
    {
        "action",
        "address",
        "animation",
        "audio",
        "business_connection_id",
        "caption",
        "callback_query_id",
        "currency",
        "custom_title",
        "description",
        "document",
        "emoji",
        "error_message",
        "explanation",
        "file_id",
        "first_name",
        "foursquare_id",
        "foursquare_type",
        "google_place_id",
        "google_place_type",
        "inline_message_id",
        "inline_query_id",
        "invite_link",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "next_offset",
        "parse_mode",
        "payload",
        "phone_number",
        "photo",
        "pre_checkout_query_id",
        "provider_token",
        "query",
        "question",
        "result_id",
        "secret_token",
        "shipping_query_id",
        "short_description",
        "start_parameter",
        "sticker",
        "text",
        "thumbnail",
        "title",
        "url",
        "vcard",
        "video",
        "video_note",
        "voice",
    }
)
_NUMBER_RE: Final = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")

# Keys added to ``sent`` entries on top of the Message fields; stripped before such an entry is
# handed back to the bot (e.g. as ``callback_query.message``).
_ENTRY_KEYS: Final = frozenset(
    {"method", "chat_id", "index", "raw_text", "raw_caption", "parse_mode", "file", "file_id"}
)
_MEDIA_KINDS: Final = (
    "photo",
    "document",
    "video",
    "audio",
    "voice",
    "animation",
    "sticker",
    "video_note",
)
_MEDIA_FOLDERS: Final = {
    "photo": "photos",
    "document": "documents",
    "video": "videos",
    "audio": "music",
    "voice": "voice",
    "animation": "animations",
    "sticker": "stickers",
    "video_note": "video_notes",
}

# 8x8 JPEG used when Pillow is unavailable, so photo updates still carry a decodable image.
_FALLBACK_JPEG: Final = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERX"
    "RTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAEC"
    "AwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2Jy"
    "ggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWW"
    "l5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEA"
    "AwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMi"
    "MoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0"
    "dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn"
    "6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCSiiivGPWP/9k="
)

_MAX_TEXT: Final = 4096
_MAX_CAPTION: Final = 1024
_MAX_CALLBACK_DATA: Final = 64


# --------------------------------------------------------------------------------------------
# small value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """A multipart file part as received; kept in ``calls`` so tests can inspect uploads."""

    filename: str | None
    content_type: str | None
    content: bytes

    def __repr__(self) -> str:
        # The default repr would dump whole images into assertion messages.
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, {len(self.content)} B)"


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    content: bytes
    file_path: str
    file_name: str
    mime_type: str | None


@dataclass
class _Pending:
    update: JSONDict
    delivered: bool = False


class _ApiError(Exception):
    """Raised by method handlers; becomes Telegram's ``{"ok": false, ...}`` error envelope."""

    def __init__(
        self, error_code: int, description: str, parameters: JSONDict | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def response(self) -> JSONResponse:
        body: JSONDict = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return JSONResponse(body, status_code=self.error_code)


@dataclass
class _Failure:
    """An injected error, raised once ``passes`` more calls have succeeded."""

    error: _ApiError
    passes: int = 0


def _bad_request(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


def _utf16_len(text: str) -> int:
    # Telegram measures lengths and entity offsets in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------------------------
# ASGI server helper
# --------------------------------------------------------------------------------------------


class _InProcessServer(uvicorn.Server):
    """uvicorn server that leaves signal handlers alone.

    ``Server.serve`` normally swaps SIGINT/SIGTERM handlers for its own, which would swallow a
    Ctrl-C aimed at pytest while a test is running.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AsgiServer:
    """Runs an ASGI app on 127.0.0.1 in the current event loop.

    The socket is bound (port 0) before serving so the URL is known up front without racing
    for a "free" port.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._server: _InProcessServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("server already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = _InProcessServer(config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[sock]), name=f"asgi-server:{self.port}"
        )
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces the startup exception
                raise RuntimeError("uvicorn exited during startup")
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._server = self._task = None
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=3)
        except TimeoutError:
            # Something holds a connection open; tests must not hang on it.
            server.force_exit = True
            await task


@contextlib.asynccontextmanager
async def serve_asgi(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` for the duration of the block; yields its base URL (no trailing slash)."""
    server = AsgiServer(app)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


# --------------------------------------------------------------------------------------------
# request decoding
# --------------------------------------------------------------------------------------------


def _decode_value(name: str, raw: str) -> Any:
    """Undo PTB's encoding: non-str values arrive JSON-encoded, str values arrive verbatim."""
    if name in _STRING_PARAMS:
        return raw
    stripped = raw.strip()
    if not stripped:
        return raw
    if (
        stripped[0] in "{["
        or stripped in ("true", "false", "null")
        or _NUMBER_RE.fullmatch(stripped)
    ):
        try:
            return json.loads(stripped)
        except ValueError:
            return raw
    return raw


def _header_param(headers: _MimeHeaders, param: str, header: str) -> str | None:
    value = headers.get_param(param, header=header)
    if value is None:
        return None
    return collapse_rfc2231_value(value)  # type: ignore[arg-type]


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Split a multipart/form-data body into text fields and file parts.

    Hand-rolled because Starlette's form parser needs python-multipart, which the project does
    not depend on; PTB (via httpx) only produces simple, non-nested form-data.
    """
    ctype = _MimeHeaders()
    ctype["content-type"] = content_type
    boundary = _header_param(ctype, "boundary", "content-type")
    if not boundary:
        raise _bad_request("multipart body without boundary")
    fields: dict[str, str] = {}
    files: dict[str, Any] = {}
    for chunk in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, payload = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        payload = payload.removesuffix(b"\r\n")
        part = _MimeHeaders()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip():
                part[key.strip()] = value.strip()
        name = _header_param(part, "name", "content-disposition")
        if name is None:
            continue
        filename = part.get_filename()
        if filename is None and part.get_content_type() == "text/plain":
            fields[name] = payload.decode("utf-8")
        else:
            files[name] = UploadedFile(filename, part.get("content-type"), payload)
    return fields, files


# --------------------------------------------------------------------------------------------
# parse_mode validation / rendering
# --------------------------------------------------------------------------------------------

_HTML_TAGS: Final = frozenset(
    {
        "a",
        "b",
        "blockquote",
        "code",
        "del",
        "em",
        "i",
        "ins",
        "pre",
        "s",
        "span",
        "strike",
        "strong",
        "tg-emoji",
        "tg-spoiler",
        "u",
    }
)


class _TelegramHtml(html.parser.HTMLParser):
    """Renders Telegram-HTML to plain text and records the first error Telegram would report."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.error:
            return
        if tag not in _HTML_TAGS:
            self.error = f'Unsupported start tag "{tag}"'
        elif tag == "span" and ("class", "tg-spoiler") not in attrs:
            self.error = 'Tag "span" must have class "tg-spoiler"'
        else:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.error:
            self.error = f'Unsupported start tag "{tag}"'

    def handle_endtag(self, tag: str) -> None:
        if self.error:
            return
        if not self.stack:
            self.error = f'Unexpected end tag "{tag}"'
        elif self.stack[-1] != tag:
            self.error = f'Unmatched end tag "{tag}", expected "</{self.stack[-1]}>"'
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def render(self, text: str) -> str:
        self.feed(text)
        self.close()
        if not self.error and self.stack:
            self.error = f'Can\'t find end tag corresponding to start tag "{self.stack[-1]}"'
        if self.error:
            raise _bad_request(f"can't parse entities: {self.error}")
        return "".join(self.out)


_MD2_RESERVED: Final = frozenset("_*[]()~`>#+-=|{}.!")
_MD2_ENTITY_NAMES: Final = {
    "*": "Bold",
    "_": "Italic",
    "__": "Underline",
    "~": "Strikethrough",
    "||": "Spoiler",
    "[": "TextUrl",
}


def _render_markdown_v2(text: str) -> str:
    """Approximates Telegram's MarkdownV2 parser closely enough to catch unescaped characters.

    Unescaped '.', '-', '!' and friends are the classic production failure of MarkdownV2 bots,
    and they are invisible unless something rejects them the way Telegram does.
    """

    def fail(message: str) -> _ApiError:
        return _bad_request(f"can't parse entities: {message}")

    def offset(pos: int) -> int:
        return len(text[:pos].encode("utf-8"))

    out: list[str] = []
    open_marks: list[tuple[str, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                raise fail("Character '\\' is reserved and must be escaped with the preceding '\\'")
            out.append(text[i + 1])
            i += 2
            continue
        if c == "`":
            fence = "```" if text.startswith("```", i) else "`"
            j = i + len(fence)
            body: list[str] = []
            while j < n and not text.startswith(fence, j):
                if text[j] == "\\" and j + 1 < n:
                    body.append(text[j + 1])
                    j += 2
                else:
                    body.append(text[j])
                    j += 1
            if j >= n:
                kind = "Pre" if fence == "```" else "Code"
                raise fail(f"Can't find end of {kind} entity at byte offset {offset(i)}")
            rendered = "".join(body)
            if fence == "```":
                first, nl, rest = rendered.partition("\n")
                if nl and first and " " not in first:
                    rendered = rest  # the first line was a language tag
            out.append(rendered)
            i = j + len(fence)
            continue
        mark = next((m for m in ("||", "__") if text.startswith(m, i)), None)
        if mark is None and c in "*_~":
            mark = c
        if mark is not None:
            positions = [m for m, _ in open_marks]
            if mark in positions:
                del open_marks[len(positions) - 1 - positions[::-1].index(mark)]
            else:
                open_marks.append((mark, i))
            i += len(mark)
            continue
        if c == "[":
            open_marks.append(("[", i))
            i += 1
            continue
        if c == "]":
            if not open_marks or open_marks[-1][0] != "[":
                raise fail("Character ']' is reserved and must be escaped with the preceding '\\'")
            open_marks.pop()
            if text.startswith("(", i + 1):
                j = i + 2
                while j < n and text[j] != ")":
                    j += 2 if text[j] == "\\" else 1
                if j >= n:
                    raise fail(f"Can't find end of a URL at byte offset {offset(i + 1)}")
                i = j + 1
            else:
                i += 1
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # blockquote marker
            continue
        if c == "!" and text.startswith("![", i):
            i += 1  # custom emoji
            continue
        if c in _MD2_RESERVED:
            raise fail(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        out.append(c)
        i += 1
    if open_marks:
        mark, pos = open_marks[0]
        raise fail(
            f"Can't find end of {_MD2_ENTITY_NAMES[mark]} entity at byte offset {offset(pos)}"
        )
    return "".join(out)


def _render(text: str, parse_mode: str | None) -> str:
    if not parse_mode:
        return text
    mode = parse_mode.lower()
    if mode == "html":
        return _TelegramHtml().render(text)
    if mode == "markdownv2":
        return _render_markdown_v2(text)
    if mode == "markdown":
        return text  # legacy mode: too lenient to be worth emulating
    raise _bad_request(f"unsupported parse_mode {parse_mode!r}")


def _check_markup(markup: Any) -> JSONDict | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= _MAX_CALLBACK_DATA:
                raise _bad_request("BUTTON_DATA_INVALID")
    return markup


def _inline_only(markup: JSONDict | None) -> JSONDict | None:
    # Messages only ever carry inline keyboards; reply keyboards live on the client.
    if markup and "inline_keyboard" in markup:
        return markup
    return None


def _image_size(content: bytes) -> tuple[int, int] | None:
    if _PILImage is None:
        return None
    try:
        with _PILImage.open(io.BytesIO(content)) as image:
            return image.size
    except Exception:
        return None


def _make_jpeg(width: int, height: int, shade: int) -> bytes:
    if _PILImage is None:
        return _FALLBACK_JPEG
    buf = io.BytesIO()
    color = (40 + shade * 37 % 200, 90 + shade * 53 % 150, 160)
    _PILImage.new("RGB", (width, height), color).save(buf, "JPEG", quality=70)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# the stub
# --------------------------------------------------------------------------------------------

_Handler = Callable[[str, JSONDict], Awaitable[Any]]


@dataclass(frozen=True)
class Limits:
    """Telegram's limits as documented for bots: about 30 messages a second in all, about one
    a second to one chat (a short burst passes), 20 a minute to one group; paid broadcasts
    (``allow_paid_broadcast``) up to 1,000 a second."""

    per_second: int = 30
    per_chat: int = 3
    per_chat_seconds: float = 3.0
    per_group_per_minute: int = 20
    group_seconds: float = 60.0  # the group window (a test may shorten it)
    paid_per_second: int = 1000


class BotApiStub:
    """In-process fake of api.telegram.org; see the module docstring for what it emulates."""

    def __init__(
        self, token: str = "123456:TEST", username: str = "linli_test_bot", bot_id: int = 123456
    ) -> None:
        self.token = token
        self.username = username
        self.bot_id = bot_id
        self.bot_user: JSONDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Linli",
            "username": username,
        }
        self.calls: list[tuple[str, JSONDict]] = []
        self.sent: list[JSONDict] = []
        self.limits: Limits | None = None
        """Set: Telegram's rate limits are enforced (429 with retry_after past them)."""
        self.too_many = 0
        """Sends answered 429 because of ``limits``."""
        self._windows: defaultdict[str, deque[float]] = defaultdict(deque)
        self.blocked_chats: set[int] = set()
        # A group upgraded to a supergroup: sends to the old id are refused with the new one.
        self.migrated_chats: dict[int, int] = {}
        """Chats that refuse the bot: a user who blocked it, a group that kicked it (403)."""
        self.strict_private = False
        """Set: like Telegram, the bot can't write first to a user who never wrote to it
        privately (403 "bot can't initiate conversation with a user")."""
        self._started: set[int] = set()
        self.webhook: JSONDict | None = None
        self.webhook_deliveries: list[tuple[JSONDict, int]] = []
        self.dropped_updates: list[JSONDict] = []
        """Updates discarded because the bot's ``allowed_updates`` excluded their type."""
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        """setMyCommands storage keyed by (canonical scope JSON, language_code)."""
        self.chat_member_status: dict[tuple[int, int], str] = {}
        """(chat_id, user_id) -> status returned by getChatMember; default "member"."""
        self.deleted: list[tuple[ChatId, int]] = []
        self.internal_errors: list[Exception] = []
        """Bugs in the stub itself; PTB only sees a 500, which an app may log and swallow."""

        self._server = AsgiServer(
            Starlette(
                routes=[
                    Route("/bot{token}/{method}", self._handle_api, methods=["GET", "POST"]),
                    Route("/file/bot{token}/{path:path}", self._handle_file, methods=["GET"]),
                ]
            )
        )
        self._queue: list[_Pending] = []
        self._queue_changed = asyncio.Event()
        self._sent_changed = asyncio.Event()
        self._poll_generation = 0
        self._allowed_updates: list[str] | None = None
        self._stopping = False
        self._update_ids = itertools.count(1000)
        self._last_update_id = 999
        self._file_seq = itertools.count(1)
        self._callback_seq = itertools.count(1)
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._message_ids: defaultdict[ChatId, int] = defaultdict(int)
        self._messages: dict[tuple[ChatId, int], JSONDict] = {}
        self._last_bot_message: dict[ChatId, int] = {}
        self._chats: dict[ChatId, JSONDict] = {}
        self._users: dict[int, JSONDict] = {}
        self._callback_ids: set[str] = set()
        self._failures: defaultdict[str, deque[_Failure]] = defaultdict(deque)
        self._inflight = 0
        self._last_activity = time.monotonic()
        self._handlers: dict[str, _Handler] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "sendmessage": self._send_message,
            "sendphoto": self._send_media,
            "senddocument": self._send_media,
            "sendvideo": self._send_media,
            "sendaudio": self._send_media,
            "sendvoice": self._send_media,
            "sendanimation": self._send_media,
            "sendsticker": self._send_media,
            "sendvideonote": self._send_media,
            "sendmediagroup": self._send_media_group,
            "sendlocation": self._send_other,
            "sendvenue": self._send_other,
            "sendcontact": self._send_other,
            "senddice": self._send_other,
            "sendpoll": self._send_other,
            "forwardmessage": self._forward_message,
            "copymessage": self._copy_message,
            "editmessagetext": self._edit_message,
            "editmessagecaption": self._edit_message,
            "editmessagereplymarkup": self._edit_message,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "sendchataction": self._send_chat_action,
            "getfile": self._get_file,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
        }

    # ---------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def api_base_url(self) -> str:
        return f"{self._server.url}/bot"

    @property
    def file_base_url(self) -> str:
        return f"{self._server.url}/file/bot"

    async def start(self) -> None:
        self._stopping = False
        await self._server.start()

    async def stop(self) -> None:
        # Wake long polls first, otherwise uvicorn waits for them during graceful shutdown.
        self._stopping = True
        self._notify_queue()
        await self._server.stop()

    async def __aenter__(self) -> BotApiStub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- recorded calls

    def calls_to(self, method: str) -> list[JSONDict]:
        """Params of every call to ``method`` (case-insensitive, like Telegram's routing)."""
        wanted = method.lower()
        return [params for name, params in self.calls if name.lower() == wanted]

    # ---------------------------------------------------------------- inbound updates

    def next_update_id(self) -> int:
        self._last_update_id = next(self._update_ids)
        return self._last_update_id

    def push_update(self, update: JSONDict) -> int:
        """Queue ``update`` for getUpdates.

        A pushed update is always delivered at least once even if its id is below the bot's
        current offset; that is what makes pushing the same dict twice a faithful redelivery
        (Telegram does redeliver after timeouts/restarts) rather than a silently dropped one.
        """
        update_id = update.get("update_id")
        if not isinstance(update_id, int):
            raise ValueError("update must contain an integer update_id")
        if update_id > self._last_update_id:
            self._update_ids = itertools.count(update_id + 1)
            self._last_update_id = update_id
        self._queue.append(_Pending(copy.deepcopy(update)))
        self._touch()
        self._notify_queue()
        return update_id

    def migration_updates(self, user_id: int, old: int, new: int) -> tuple[JSONDict, JSONDict]:
        """What Telegram sends when a group becomes a supergroup: a service message in the old
        chat naming the new one, and one in the new chat naming the old; sends to the old id
        are refused from now on."""
        self.migrated_chats[old] = new
        user = self._user(user_id, "Test", "en")
        title = self._chats.get(old, {}).get("title") or "Test group"
        updates = []
        for chat_id, chat_type, field, other in (
            (old, "group", "migrate_to_chat_id", new),
            (new, "supergroup", "migrate_from_chat_id", old),
        ):
            message: JSONDict = {
                "message_id": self._new_message_id(chat_id),
                "date": int(time.time()),
                "chat": self._remember_chat(chat_id, chat_type, "Test", title),
                "from": user,
                field: other,
            }
            updates.append({"update_id": self.next_update_id(), "message": message})
        return updates[0], updates[1]

    def message_update(
        self,
        user_id: int,
        text: str | None = None,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Test",
        language_code: str | None = "en",
        photo: bool | bytes = False,
        document: JSONDict | None = None,
        location: tuple[float, float] | None = None,
        video: bool = False,
        voice: bool = False,
        chat_title: str | None = None,
    ) -> JSONDict:
        """Build (not push) a message update as a Telegram client would produce it.

        With media, ``text`` becomes the caption.  ``photo`` may be image bytes (e.g. a QR code
        to scan) instead of ``True``.  ``document`` takes Document fields plus an optional
        ``content`` (bytes) that getFile will serve.
        """
        chat_id = user_id if chat_id is None else chat_id
        user = self._user(user_id, first_name, language_code)
        chat = self._remember_chat(chat_id, chat_type, first_name, chat_title)
        if chat_type == "private":
            self._started.add(user_id)
        message: JSONDict = {
            "message_id": self._new_message_id(chat_id),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
        }
        has_media = bool(photo or document or video or voice)
        if photo is not False:
            message["photo"] = self._photo_sizes(photo if isinstance(photo, bytes) else None)
        if document is not None:
            message["document"] = self._document_from(document)
        if video:
            stored = self._store_file(b"\x00\x00\x00\x18ftypmp42stub", "video.mp4", "video")
            message["video"] = {
                **self._file_fields(stored),
                "width": 320,
                "height": 240,
                "duration": 3,
                "mime_type": "video/mp4",
            }
        if voice:
            stored = self._store_file(b"OggS\x00stub-voice", "voice.ogg", "voice")
            message["voice"] = {
                **self._file_fields(stored),
                "duration": 2,
                "mime_type": "audio/ogg",
            }
        if location is not None:
            message["location"] = {"latitude": location[0], "longitude": location[1]}
        if text is not None:
            key = "caption" if has_media else "text"
            message[key] = text
            if text.startswith("/"):
                command = text.split(maxsplit=1)[0]
                entity = {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
                message[f"{key}_entities" if has_media else "entities"] = [entity]
        self._messages[(chat_id, message["message_id"])] = message
        return {"update_id": self.next_update_id(), "message": message}

    def my_chat_member_update(
        self,
        user_id: int,
        chat_id: int,
        *,
        title: str = "Test group",
        old: str = "left",
        new: str = "member",
        first_name: str = "Test",
        language_code: str | None = "en",
    ) -> JSONDict:
        """Build (not push) the update Telegram sends when `user_id` adds the bot to a group
        (old "left", new "member") or removes it (new "left" or "kicked")."""
        chat = self._remember_chat(chat_id, "supergroup", first_name, title)
        bot = dict(self.bot_user)

        def member(status: str) -> JSONDict:
            # A ban carries its end (0: for ever); "member" and "left" carry nothing more.
            return {
                "user": bot,
                "status": status,
                **({"until_date": 0} if status == "kicked" else {}),
            }

        return {
            "update_id": self.next_update_id(),
            "my_chat_member": {
                "chat": chat,
                "from": self._user(user_id, first_name, language_code),
                "date": int(time.time()),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        }

    def send_text(self, user_id: int, text: str, **kw: Any) -> int:
        return self.push_update(self.message_update(user_id, text, **kw))

    def callback_update(
        self,
        user_id: int,
        data: str,
        *,
        message: JSONDict | None = None,
        chat_id: int | None = None,
        language_code: str | None = "en",
    ) -> JSONDict:
        """Build a button press; by default on the last message the bot sent to the chat.

        ``data`` is not checked against the message's buttons so tests can forge stale or
        hostile callback data, which real clients can also send.
        """
        chat_id = user_id if chat_id is None else chat_id
        if message is None:
            last = self._last_bot_message.get(chat_id)
            if last is None or (chat_id, last) not in self._messages:
                raise ValueError(f"the bot has not sent any message to chat {chat_id} yet")
            message = self._messages[(chat_id, last)]
        else:
            # A ``sent`` entry may be passed; prefer the stored state (it reflects later edits).
            chat = message.get("chat") or {"id": message.get("chat_id")}
            stored = self._messages.get((chat["id"], message.get("message_id", 0)))
            if stored is not None:
                message = stored
            else:
                message = {k: v for k, v in message.items() if k not in _ENTRY_KEYS}
        query_id = f"{self.bot_id}{next(self._callback_seq):08d}"
        self._callback_ids.add(query_id)
        known = self._users.get(user_id, {})
        user = self._user(user_id, known.get("first_name", "Test"), language_code)
        return {
            "update_id": self.next_update_id(),
            "callback_query": {
                "id": query_id,
                "from": user,
                "message": copy.deepcopy(message),
                "chat_instance": f"ci{chat_id}",
                "data": data,
            },
        }

    def press(self, user_id: int, data: str, **kw: Any) -> int:
        return self.push_update(self.callback_update(user_id, data, **kw))

    def add_file(self, content: bytes, file_name: str = "file.jpg") -> str:
        """Register a downloadable file; returns its file_id."""
        return self._store_file(content, file_name, "document").file_id

    def file_bytes(self, file_id: str) -> bytes:
        """Content behind a file_id, e.g. a photo the bot uploaded (to decode a QR code)."""
        return self._files[file_id].content

    # ---------------------------------------------------------------- outbound

    def messages_to(self, chat_id: ChatId) -> list[JSONDict]:
        return [entry for entry in self.sent if entry["chat_id"] == chat_id]

    async def wait_for(
        self,
        predicate: Callable[[JSONDict], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a per-call default reads better in tests
    ) -> JSONDict:
        return await self._wait_sent(predicate, 0, timeout, "a matching sent entry")

    async def wait_for_message(
        self,
        chat_id: ChatId,
        *,
        contains: str | None = None,
        after: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109 - see wait_for
    ) -> JSONDict:
        """First entry in ``sent`` at index >= ``after`` to ``chat_id`` containing ``contains``.

        Pass ``after=len(stub.sent)`` taken before an action to ignore earlier messages.
        """

        def matches(entry: JSONDict) -> bool:
            if entry["chat_id"] != chat_id:
                return False
            if contains is None:
                return True
            return contains in (entry.get("text") or "") or contains in (entry.get("caption") or "")

        what = f"a message to {chat_id}" + (f" containing {contains!r}" if contains else "")
        return await self._wait_sent(matches, after, timeout, what)

    async def wait_idle(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - see wait_for
        quiet: float = 0.2,
    ) -> None:
        """Wait until every pushed update was fetched and the bot made no call for ``quiet`` s.

        Quiet time is needed because "fetched" does not mean "handled": the handler may still
        be running; getUpdates polling itself does not count as activity.
        """
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            pending = sum(not p.delivered for p in self._queue)
            if not pending and not self._inflight and now - self._last_activity >= quiet:
                return
            if now >= deadline:
                raise AssertionError(
                    self._dump(
                        f"not idle after {timeout}s: {pending} undelivered update(s), "
                        f"{self._inflight} request(s) in flight"
                    )
                )
            await asyncio.sleep(0.02)

    @staticmethod
    def buttons(message: JSONDict) -> list[tuple[str, str]]:
        """Flattened (text, callback_data | url) of a message's keyboard.

        Reply-keyboard buttons give (text, text) since pressing one just sends its text.
        """
        markup = message.get("reply_markup") or {}
        result: list[tuple[str, str]] = []
        for row in markup.get("inline_keyboard", []):
            for button in row:
                value = (
                    button.get("callback_data")
                    or button.get("url")
                    or (button.get("web_app") or {}).get("url")
                    or (button.get("login_url") or {}).get("url")
                    or button.get("switch_inline_query")
                    or button.get("switch_inline_query_current_chat")
                    or ""
                )
                result.append((button["text"], value))
        for row in markup.get("keyboard", []):
            for button in row:
                text = button if isinstance(button, str) else button["text"]
                result.append((text, text))
        return result

    # ---------------------------------------------------------------- webhook

    async def deliver_webhook(
        self, update: JSONDict, *, secret: str | None = USE_REGISTERED
    ) -> int:
        """POST ``update`` like Telegram's webhook delivery; returns the HTTP status."""
        if not self.webhook or not self.webhook.get("url"):
            raise AssertionError("no webhook registered (setWebhook was not called)")
        headers = {"Content-Type": "application/json"}
        token = self.webhook.get("secret_token") if secret == USE_REGISTERED else secret
        if token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(token)
        self._touch()
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                self.webhook["url"], content=json.dumps(update).encode(), headers=headers
            )
        self._touch()
        self.webhook_deliveries.append((update, response.status_code))
        return response.status_code

    # ---------------------------------------------------------------- rate limits

    def _within_limits(self, chat_id: ChatId, params: JSONDict) -> None:
        """Telegram's limits (``self.limits``), counted over sliding windows of the stub's own
        clock: past one, the send is answered 429 with ``retry_after`` (whole seconds, as
        Telegram gives them) and not delivered."""
        limits = self.limits
        assert limits is not None
        now = time.monotonic()
        paid = bool(params.get("allow_paid_broadcast"))
        windows = [
            ("paid" if paid else "bot", limits.paid_per_second if paid else limits.per_second, 1.0)
        ]
        if isinstance(chat_id, int) and chat_id < 0:
            windows.append((f"group:{chat_id}", limits.per_group_per_minute, limits.group_seconds))
        else:
            windows.append((f"chat:{chat_id}", limits.per_chat, limits.per_chat_seconds))
        for key, most, seconds in windows:
            sent = self._windows[key]
            while sent and sent[0] <= now - seconds:
                sent.popleft()
            if len(sent) >= most:
                self.too_many += 1
                wait = max(1, math.ceil(sent[0] + seconds - now))
                raise _ApiError(
                    429, f"Too Many Requests: retry after {wait}", {"retry_after": wait}
                )
        for key, _, _ in windows:
            self._windows[key].append(now)

    # ---------------------------------------------------------------- failure injection

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        description: str = "Too Many Requests: retry after 1",
        retry_after: int | None = 1,
        *,
        after: int = 0,
    ) -> None:
        """Make the next call to ``method`` fail; repeated calls queue several failures.

        ``after`` lets that many calls to ``method`` succeed first, e.g. to fail the second part
        of a message that is sent in two.
        """
        parameters = {"retry_after": retry_after} if retry_after is not None else None
        self._failures[method.lower()].append(
            _Failure(_ApiError(error_code, description, parameters), after)
        )

    # ---------------------------------------------------------------- HTTP layer

    async def _handle_api(self, request: Request) -> Response:
        method: str = request.path_params["method"]
        try:
            params = await self._read_params(request)
        except _ApiError as exc:
            return exc.response()
        self.calls.append((method, params))
        if request.path_params["token"] != self.token:
            return _ApiError(401, "Unauthorized").response()
        key = method.lower()
        tracked = key != "getupdates"
        if tracked:
            self._inflight += 1
            self._touch()
        try:
            failures = self._failures.get(key)
            if failures:
                if failures[0].passes:
                    failures[0].passes -= 1
                else:
                    raise failures.popleft().error
            handler = self._handlers.get(key, self._default)
            result = await handler(method, params)
            return JSONResponse({"ok": True, "result": result})
        except _ApiError as exc:
            return exc.response()
        except Exception as exc:  # a stub bug must surface as a failing call, not a hang
            self.internal_errors.append(exc)
            return _ApiError(500, f"Internal stub error: {exc!r}").response()
        finally:
            if tracked:
                self._inflight -= 1
                self._touch()

    async def _handle_file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        stored = self._files_by_path.get(request.path_params["path"])
        if stored is None:
            return Response(status_code=404)
        return Response(stored.content, media_type=stored.mime_type or "application/octet-stream")

    @staticmethod
    async def _read_params(request: Request) -> JSONDict:
        params: JSONDict = {k: _decode_value(k, v) for k, v in request.query_params.items()}
        body = await request.body()
        if not body:
            return params
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            try:
                decoded = json.loads(body)
            except ValueError as exc:
                raise _bad_request("can't parse JSON body") from exc
            if isinstance(decoded, dict):
                params.update(decoded)
        elif content_type.startswith("multipart/form-data"):
            fields, files = _parse_multipart(body, content_type)
            params.update({k: _decode_value(k, v) for k, v in fields.items()})
            params.update(files)
            # InputMedia etc. reference uploads as "attach://<part name>".
            for name, value in list(params.items()):
                if isinstance(value, str) and value.startswith("attach://"):
                    params[name] = files.get(value.removeprefix("attach://"), value)
        else:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            params.update({k: _decode_value(k, v) for k, v in pairs})
        return params

    # ---------------------------------------------------------------- internals

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _notify_queue(self) -> None:
        event, self._queue_changed = self._queue_changed, asyncio.Event()
        event.set()

    def _record_sent(self, entry: JSONDict) -> JSONDict:
        entry["index"] = len(self.sent)
        entry["at"] = time.monotonic()  # when it arrived (benches measure rates by it)
        self.sent.append(entry)
        event, self._sent_changed = self._sent_changed, asyncio.Event()
        event.set()
        return entry

    async def _wait_sent(
        self, predicate: Callable[[JSONDict], bool], start: int, seconds: float, what: str
    ) -> JSONDict:
        deadline = time.monotonic() + seconds
        index = max(start, 0)
        while True:
            changed = self._sent_changed
            while index < len(self.sent):
                entry = self.sent[index]
                index += 1
                if predicate(entry):
                    return entry
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(self._dump(f"timed out after {seconds}s waiting for {what}"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _dump(self, headline: str) -> str:
        lines = [headline, f"last sent entries (of {len(self.sent)}):"]
        for entry in self.sent[-12:]:
            body = entry.get("text") if entry.get("text") is not None else entry.get("caption")
            buttons = self.buttons(entry)
            lines.append(
                f"  #{entry['index']} {entry['method']} chat={entry['chat_id']} "
                f"id={entry.get('message_id')} {body!r}"
                + (f" buttons={buttons}" if buttons else "")
            )
        recent = [name for name, _ in self.calls if name.lower() != "getupdates"][-15:]
        lines.append(f"recent calls (getUpdates omitted): {recent}")
        lines.append(f"queued updates: {len(self._queue)}")
        return "\n".join(lines)

    def _user(self, user_id: int, first_name: str, language_code: str | None) -> JSONDict:
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            user["language_code"] = language_code
        self._users[user_id] = user
        return dict(user)

    def _remember_chat(
        self, chat_id: int, chat_type: str, first_name: str, title: str | None
    ) -> JSONDict:
        chat: JSONDict = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = title or self._chats.get(chat_id, {}).get("title") or "Test group"
        self._chats[chat_id] = chat
        return dict(chat)

    def _chat(self, chat_id: ChatId) -> JSONDict:
        if chat_id in self._chats:
            return dict(self._chats[chat_id])
        if isinstance(chat_id, str):
            for chat in self._chats.values():
                if f"@{chat.get('username')}" == chat_id:
                    return dict(chat)
            raise _bad_request("chat not found")
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Test"}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": "Test group"}

    def _new_message_id(self, chat_id: ChatId) -> int:
        self._message_ids[chat_id] += 1
        return self._message_ids[chat_id]

    def _store_file(self, content: bytes, file_name: str, kind: str) -> _StoredFile:
        n = next(self._file_seq)
        ext = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        stored = _StoredFile(
            file_id=f"stub-{kind}-{n}",
            file_unique_id=f"U{n:06d}",
            content=content,
            file_path=f"{_MEDIA_FOLDERS.get(kind, 'documents')}/file_{n}.{ext}",
            file_name=file_name,
            mime_type=mimetypes.guess_type(file_name)[0],
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    @staticmethod
    def _file_fields(stored: _StoredFile) -> JSONDict:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
        }

    def _photo_sizes(self, content: bytes | None) -> list[JSONDict]:
        if content is None:
            shade = next(self._file_seq)
            small, large = _make_jpeg(90, 68, shade), _make_jpeg(320, 240, shade)
        else:
            small = large = content
        sizes = []
        for blob, fallback in ((small, (90, 68)), (large, (320, 240))):
            stored = self._store_file(blob, "photo.jpg", "photo")
            width, height = _image_size(blob) or fallback
            sizes.append({**self._file_fields(stored), "width": width, "height": height})
        return sizes

    def _document_from(self, document: JSONDict) -> JSONDict:
        fields = {k: v for k, v in document.items() if k != "content"}
        if "file_id" not in fields or "content" in document:
            name = fields.get("file_name", "document.pdf")
            content = document.get("content", b"%PDF-1.4\n% stub document\n")
            stored = self._store_file(content, name, "document")
            fields = {**self._file_fields(stored), "file_name": name, **fields}
            fields.setdefault("mime_type", stored.mime_type or "application/octet-stream")
        return fields

    def _chat_id(self, params: JSONDict) -> ChatId:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if isinstance(chat_id, str) and re.fullmatch(r"-?\d+", chat_id):
            return int(chat_id)
        if isinstance(chat_id, str):
            return self._chat(chat_id)["id"]
        return chat_id

    def _check_can_send(
        self, chat_id: ChatId, *, counted: bool = True, params: JSONDict | None = None
    ) -> None:
        if counted and self.limits is not None:
            self._within_limits(chat_id, params or {})
        if chat_id in self.migrated_chats:
            raise _ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self.migrated_chats[chat_id]},
            )
        if chat_id in self.blocked_chats:
            if isinstance(chat_id, int) and chat_id < 0:
                raise _ApiError(403, "Forbidden: bot was kicked from the supergroup chat")
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        if (
            self.strict_private
            and isinstance(chat_id, int)
            and chat_id > 0
            and chat_id not in self._started
        ):
            raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")

    def _new_bot_message(self, chat_id: ChatId, params: JSONDict) -> JSONDict:
        message: JSONDict = {
            "message_id": self._new_message_id(chat_id),
            "from": dict(self.bot_user),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
        }
        reply = params.get("reply_parameters") or {}
        reply_to = reply.get("message_id") or params.get("reply_to_message_id")
        if reply_to and (chat_id, reply_to) in self._messages:
            original = dict(self._messages[(chat_id, reply_to)])
            original.pop("reply_to_message", None)
            message["reply_to_message"] = original
        return message

    def _finish_send(
        self,
        method: str,
        message: JSONDict,
        markup: JSONDict | None,
        extra: JSONDict | None = None,
    ) -> JSONDict:
        if inline := _inline_only(markup):
            message["reply_markup"] = inline
        chat_id = message["chat"]["id"]
        self._messages[(chat_id, message["message_id"])] = message
        self._last_bot_message[chat_id] = message["message_id"]
        entry = copy.deepcopy(message)
        entry.setdefault("text", None)
        entry.setdefault("caption", None)
        entry.update(method=method, chat_id=chat_id, reply_markup=markup, **(extra or {}))
        self._record_sent(entry)
        return message

    def _caption(self, params: JSONDict) -> tuple[str | None, JSONDict]:
        raw = params.get("caption")
        if raw is None or raw == "":
            return None, {}
        caption = _render(raw, params.get("parse_mode"))
        if _utf16_len(caption) > _MAX_CAPTION:
            raise _bad_request("message caption is too long")
        return caption, {"raw_caption": raw, "parse_mode": params.get("parse_mode")}

    def _resolve_file(self, value: Any, kind: str) -> tuple[_StoredFile | None, str | None]:
        """Map an uploaded part / file_id / URL to a stored file (None for URLs)."""
        if isinstance(value, UploadedFile):
            if kind == "photo" and _PILImage is not None and _image_size(value.content) is None:
                raise _bad_request("IMAGE_PROCESS_FAILED")
            name = value.filename or f"{kind}.bin"
            return self._store_file(value.content, name, kind), None
        if isinstance(value, str) and value in self._files:
            return self._files[value], None
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return None, value
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _media_object(
        self, kind: str, stored: _StoredFile | None, url: str | None, params: JSONDict
    ) -> Any:
        if stored is None:
            # A URL Telegram would fetch; we do not, but still return a usable object.
            n = next(self._file_seq)
            fields: JSONDict = {"file_id": f"stub-url-{n}", "file_unique_id": f"U{n:06d}"}
        else:
            fields = self._file_fields(stored)
        size = _image_size(stored.content) if stored is not None else None
        width, height = size or (320, 240)
        if kind == "photo":
            return [{**fields, "width": width, "height": height}]
        extras: dict[str, JSONDict] = {
            "document": {},
            "video": {"width": width, "height": height, "duration": params.get("duration", 1)},
            "animation": {
                "width": width,
                "height": height,
                "duration": params.get("duration", 1),
            },
            "audio": {"duration": params.get("duration", 1)},
            "voice": {"duration": params.get("duration", 1)},
            "video_note": {"length": params.get("length", 240), "duration": 1},
            "sticker": {
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
            },
        }
        obj = {**fields, **extras[kind]}
        if stored is not None and kind not in ("sticker", "video_note"):
            obj["mime_type"] = stored.mime_type or "application/octet-stream"
            if kind in ("document", "audio", "video", "animation"):
                obj["file_name"] = stored.file_name
        return obj

    # ---------------------------------------------------------------- method handlers

    async def _default(self, method: str, params: JSONDict) -> Any:
        if method.lower().startswith("send"):
            # Unknown send* methods still answer with a Message so PTB can de_json it.
            chat_id = self._chat_id(params)
            self._check_can_send(chat_id)
            message = self._new_bot_message(chat_id, params)
            return self._finish_send(method, message, _check_markup(params.get("reply_markup")))
        return True

    async def _get_me(self, method: str, params: JSONDict) -> Any:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, method: str, params: JSONDict) -> Any:
        if self.webhook:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset")
        limit = max(1, min(int(params.get("limit") or 100), 100))
        timeout = max(0.0, float(params.get("timeout") or 0))
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"])
        # A newer getUpdates terminates an older waiting one, exactly as Telegram does; this also
        # keeps an abandoned long poll from "delivering" updates to a client that left.
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify_queue()
        if not isinstance(offset, int):
            offset = None
        elif offset:
            self._confirm(offset)
        deadline = time.monotonic() + timeout
        while True:
            changed = self._queue_changed
            if self._stopping:
                return []
            if generation != self._poll_generation:
                raise _ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )
            batch = self._take(offset, limit)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            self._queue = self._queue[offset:]
            return
        self._queue = [
            p for p in self._queue if not (p.delivered and p.update["update_id"] < offset)
        ]

    def _take(self, offset: int | None, limit: int) -> list[JSONDict]:
        allowed = set(self._allowed_updates or ())
        kept: list[_Pending] = []
        for pending in self._queue:
            kind = next((k for k in pending.update if k != "update_id"), "")
            wanted = kind in allowed if allowed else kind not in _OPT_IN_UPDATE_TYPES
            if wanted:
                kept.append(pending)
            else:
                self.dropped_updates.append(pending.update)
        self._queue = kept
        # Delivered but unconfirmed updates (id >= offset) come again, as on Telegram; ascending
        # ids make PTB's "offset = last id + 1" confirm a redelivered duplicate together with
        # whatever newer updates share its batch.
        batch = sorted(
            (
                p
                for p in kept
                if not p.delivered or offset is None or p.update["update_id"] >= offset
            ),
            key=lambda p: p.update["update_id"],
        )[:limit]
        if not batch:
            return []
        for pending in batch:
            pending.delivered = True
        self._touch()
        return [p.update for p in batch]

    async def _set_webhook(self, method: str, params: JSONDict) -> Any:
        if params.get("drop_pending_updates"):
            self._queue.clear()
        if not params.get("url"):
            self.webhook = None
            return True
        self.webhook = {k: v for k, v in params.items() if not isinstance(v, UploadedFile)}
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"])
        self._notify_queue()  # a waiting getUpdates must now fail with 409
        return True

    async def _delete_webhook(self, method: str, params: JSONDict) -> Any:
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self.webhook = None
        return True

    async def _get_webhook_info(self, method: str, params: JSONDict) -> Any:
        info: JSONDict = {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if self.webhook and self.webhook.get("allowed_updates") is not None:
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    @staticmethod
    def _commands_key(params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.get("language_code") or ""

    def commands_for(
        self, scope: JSONDict | None = None, language_code: str = ""
    ) -> list[JSONDict] | None:
        """Commands last set for ``scope`` (default scope if None) and language."""
        return self.commands.get(
            self._commands_key({"scope": scope, "language_code": language_code})
        )

    async def _set_my_commands(self, method: str, params: JSONDict) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request('parameter "commands" is required')
        for command in commands:
            name = command.get("command", "")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command.get("description", "")) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, method: str, params: JSONDict) -> Any:
        return self.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, method: str, params: JSONDict) -> Any:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _send_message(self, method: str, params: JSONDict) -> Any:
        chat_id = self._chat_id(params)
        raw = params.get("text")
        if raw is None or str(raw).strip() == "":
            raise _bad_request("message text is empty")
        raw = str(raw)
        markup = _check_markup(params.get("reply_markup"))
        text = _render(raw, params.get("parse_mode"))
        if not text.strip():
            raise _bad_request("message text is empty")
        if _utf16_len(text) > _MAX_TEXT:
            raise _bad_request("message is too long")
        self._check_can_send(chat_id, params=params)
        message = self._new_bot_message(chat_id, params)
        message["text"] = text
        extra = {"raw_text": raw, "parse_mode": params.get("parse_mode")}
        return self._finish_send(method, message, markup, extra)

    async def _send_media(self, method: str, params: JSONDict) -> Any:
        kind = {
            "sendphoto": "photo",
            "senddocument": "document",
            "sendvideo": "video",
            "sendaudio": "audio",
            "sendvoice": "voice",
            "sendanimation": "animation",
            "sendsticker": "sticker",
            "sendvideonote": "video_note",
        }[method.lower()]
        chat_id = self._chat_id(params)
        if params.get(kind) is None:
            raise _bad_request(f"there is no {kind} in the request")
        markup = _check_markup(params.get("reply_markup"))
        caption, extra = self._caption(params)
        self._check_can_send(chat_id, params=params)
        stored, url = self._resolve_file(params[kind], kind)
        message = self._new_bot_message(chat_id, params)
        message[kind] = self._media_object(kind, stored, url, params)
        if caption is not None:
            message["caption"] = caption
        extra.update(
            file=stored.content if stored else None, file_id=stored.file_id if stored else url
        )
        return self._finish_send(method, message, markup, extra)

    async def _send_media_group(self, method: str, params: JSONDict) -> Any:
        chat_id = self._chat_id(params)
        media = params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise _bad_request("wrong number of media in the album")
        self._check_can_send(chat_id)
        group_id = str(next(self._file_seq))
        messages = []
        for item in media:
            kind = item.get("type", "photo")
            value = item.get("media")
            if isinstance(value, str) and value.startswith("attach://"):
                value = params.get(value.removeprefix("attach://"), value)
            stored, url = self._resolve_file(value, kind)
            caption, extra = self._caption(item)
            message = self._new_bot_message(chat_id, params)
            message["media_group_id"] = group_id
            message[kind] = self._media_object(kind, stored, url, item)
            if caption is not None:
                message["caption"] = caption
            extra.update(
                file=stored.content if stored else None,
                file_id=stored.file_id if stored else url,
            )
            messages.append(self._finish_send(method, message, None, extra))
        return messages

    async def _send_other(self, method: str, params: JSONDict) -> Any:
        chat_id = self._chat_id(params)
        markup = _check_markup(params.get("reply_markup"))
        self._check_can_send(chat_id)
        message = self._new_bot_message(chat_id, params)
        key = method.lower()
        location = {"latitude": params.get("latitude"), "longitude": params.get("longitude")}
        if key == "sendlocation":
            message["location"] = location
        elif key == "sendvenue":
            message["location"] = location
            message["venue"] = {
                "location": location,
                "title": params.get("title", ""),
                "address": params.get("address", ""),
            }
        elif key == "sendcontact":
            message["contact"] = {
                "phone_number": params.get("phone_number", ""),
                "first_name": params.get("first_name", ""),
            }
        elif key == "senddice":
            message["dice"] = {"emoji": params.get("emoji", "🎲"), "value": 1}
        elif key == "sendpoll":
            options = [
                {
                    "text": o if isinstance(o, str) else o.get("text", ""),
                    "voter_count": 0,
                    "persistent_id": str(n),
                }
                for n, o in enumerate(params.get("options", []))
            ]
            message["poll"] = {
                "id": str(next(self._file_seq)),
                "question": params.get("question", ""),
                "options": options,
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": params.get("is_anonymous", True),
                "type": params.get("type", "regular"),
                "allows_multiple_answers": params.get("allows_multiple_answers", False),
                "allows_revoting": False,
                "members_only": False,
            }
        return self._finish_send(method, message, markup)

    def _source_message(self, params: JSONDict) -> JSONDict:
        from_chat = params.get("from_chat_id")
        if isinstance(from_chat, str) and re.fullmatch(r"-?\d+", from_chat):
            from_chat = int(from_chat)
        source = self._messages.get((from_chat, params.get("message_id")))  # type: ignore[arg-type]
        if source is None:
            raise _bad_request("message to copy not found")
        return source

    async def _forward_message(self, method: str, params: JSONDict) -> Any:
        chat_id = self._chat_id(params)
        source = self._source_message(params)
        self._check_can_send(chat_id)
        message = self._new_bot_message(chat_id, {})
        for key in ("text", "caption", *_MEDIA_KINDS, "location"):
            if key in source:
                message[key] = copy.deepcopy(source[key])
        message["forward_origin"] = {
            "type": "user",
            "date": source["date"],
            "sender_user": source.get("from", self.bot_user),
        }
        return self._finish_send(method, message, None)

    async def _copy_message(self, method: str, params: JSONDict) -> Any:
        chat_id = self._chat_id(params)
        source = self._source_message(params)
        markup = _check_markup(params.get("reply_markup"))
        self._check_can_send(chat_id)
        message = self._new_bot_message(chat_id, params)
        for key in ("text", "caption", *_MEDIA_KINDS, "location"):
            if key in source:
                message[key] = copy.deepcopy(source[key])
        caption, _ = self._caption(params)
        if caption is not None:
            message["caption"] = caption
        self._finish_send(method, message, markup)
        return {"message_id": message["message_id"]}

    async def _edit_message(self, method: str, params: JSONDict) -> Any:
        key = method.lower()
        markup = _check_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            return True  # messages sent via inline mode are not stored
        chat_id = self._chat_id(params)
        if isinstance(chat_id, int) and chat_id < 0:
            # A group that kicked the bot refuses edits too (edits are not rate counted here).
            self._check_can_send(chat_id, counted=False)
        message = self._messages.get((chat_id, params.get("message_id")))  # type: ignore[arg-type]
        if message is None:
            raise _bad_request("message to edit not found")
        new = copy.deepcopy(message)
        extra: JSONDict = {}
        if key == "editmessagetext":
            if "text" not in message:
                raise _bad_request("there is no text in the message to edit")
            raw = str(params.get("text") or "")
            text = _render(raw, params.get("parse_mode"))
            if not text.strip():
                raise _bad_request("message text is empty")
            if _utf16_len(text) > _MAX_TEXT:
                raise _bad_request("message is too long")
            new["text"] = text
            extra = {"raw_text": raw, "parse_mode": params.get("parse_mode")}
        elif key == "editmessagecaption":
            caption, extra = self._caption(params)
            if caption is None:
                new.pop("caption", None)
            else:
                new["caption"] = caption
        # Telegram drops the inline keyboard when an edit does not resend it.
        new.pop("reply_markup", None)
        if inline := _inline_only(markup):
            new["reply_markup"] = inline
        if all(new.get(k) == message.get(k) for k in ("text", "caption", "reply_markup")):
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        new["edit_date"] = int(time.time())
        self._messages[(chat_id, new["message_id"])] = new
        entry = copy.deepcopy(new)
        entry.setdefault("text", None)
        entry.setdefault("caption", None)
        entry.update(method=method, chat_id=chat_id, reply_markup=markup, **extra)
        self._record_sent(entry)
        return new

    async def _delete_message(self, method: str, params: JSONDict) -> Any:
        chat_id = self._chat_id(params)
        key = (chat_id, params.get("message_id"))
        if key not in self._messages:
            raise _bad_request("message to delete not found")
        del self._messages[key]  # type: ignore[arg-type]
        self.deleted.append(key)  # type: ignore[arg-type]
        return True

    async def _answer_callback_query(self, method: str, params: JSONDict) -> Any:
        if params.get("callback_query_id") not in self._callback_ids:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        return True

    async def _send_chat_action(self, method: str, params: JSONDict) -> Any:
        self._check_can_send(self._chat_id(params), counted=False)
        return True

    async def _get_file(self, method: str, params: JSONDict) -> Any:
        stored = self._files.get(str(params.get("file_id")))
        if stored is None:
            raise _bad_request("invalid file_id")
        return {**self._file_fields(stored), "file_path": stored.file_path}

    async def _get_chat(self, method: str, params: JSONDict) -> Any:
        return {
            **self._chat(self._chat_id(params)),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _get_chat_member(self, method: str, params: JSONDict) -> Any:
        chat_id = self._chat_id(params)
        user_id = int(params.get("user_id") or 0)
        status = self.chat_member_status.get((chat_id, user_id), "member")  # type: ignore[arg-type]
        user = dict(
            self._users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "Test"})
        )
        member: JSONDict = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "kicked":
            member["until_date"] = 0
        elif status == "administrator":
            member.update(
                dict.fromkeys(
                    (
                        "can_be_edited",
                        "is_anonymous",
                        "can_post_stories",
                        "can_edit_stories",
                        "can_delete_stories",
                        "can_promote_members",
                    ),
                    False,
                )
            )
            member.update(
                dict.fromkeys(
                    (
                        "can_manage_chat",
                        "can_delete_messages",
                        "can_manage_video_chats",
                        "can_restrict_members",
                        "can_change_info",
                        "can_invite_users",
                    ),
                    True,
                )
            )
        elif status == "restricted":
            member.update(
                dict.fromkeys(
                    (
                        "is_member",
                        "can_send_messages",
                        "can_send_audios",
                        "can_send_documents",
                        "can_send_photos",
                        "can_send_videos",
                        "can_send_video_notes",
                        "can_send_voice_notes",
                        "can_send_polls",
                        "can_send_other_messages",
                        "can_add_web_page_previews",
                        "can_change_info",
                        "can_invite_users",
                        "can_pin_messages",
                        "can_manage_topics",
                        "can_edit_tag",
                        "can_react_to_messages",
                    ),
                    False,
                )
            )
            member["is_member"] = True
            member["until_date"] = 0
        return member
