"""python-telegram-bot's HTTP transport on aiohttp.

PTB lets an application bring its own `BaseRequest`. The default one (httpx over anyio and
httpcore) cost the bot more CPU per update than the dialogue engine itself did (bench/updates.py);
aiohttp's C parser and thinner stack leave that CPU to the residents' requests.
"""

from __future__ import annotations

import warnings
from http import HTTPStatus
from typing import Any

import aiohttp
import orjson
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import JSONDict, ODVInput
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import BaseRequest, RequestData
from telegram.warnings import PTBDeprecationWarning

_JSON = {"Content-Type": "application/json"}


def _retry_after(seconds: int) -> RetryAfter:
    # PTB 22.2+ warns about its own int-or-timedelta transition when building one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        return RetryAfter(seconds)


class AiohttpRequest(BaseRequest):
    def __init__(
        self,
        *,
        connection_pool_size: int = 64,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._json_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    @staticmethod
    def parse_json_payload(payload: bytes) -> JSONDict:
        """orjson: every update and every answer from Telegram passes through here."""
        try:
            return orjson.loads(payload)  # type: ignore[no-any-return]
        except orjson.JSONDecodeError:
            # Telegram never sends invalid UTF-8, but a proxy might: decode as PTB does.
            return BaseRequest.parse_json_payload(payload)

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300),
                headers={"User-Agent": self.USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def call(self, url: str, payload: dict[str, Any]) -> Any:
        """POST a JSON body to a Bot API method and return its raw `result`.

        For the hottest call, sending a reply: PTB would turn Telegram's answer into a Message
        object that nobody reads, which cost more than building the request (bench/updates.py).
        Errors map onto PTB's own exceptions, as PTB's request wrapper maps them.
        """
        status, body = await self._exchange(
            "POST",
            url,
            data=orjson.dumps(payload),
            headers=_JSON,
            limits=self._json_timeout,
        )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise NetworkError(f"Unparsable answer ({status}) from the Bot API") from err
        if not isinstance(data, dict):
            raise NetworkError(f"Unexpected answer ({status}) from the Bot API")
        if 200 <= status <= 299 and data.get("ok"):
            return data.get("result")
        message = data.get("description") or f"HTTP {status}"
        parameters = data.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if isinstance(retry_after, int) and retry_after > 0:
            raise _retry_after(retry_after)
        migrated = parameters.get("migrate_to_chat_id") if isinstance(parameters, dict) else None
        if isinstance(migrated, int):
            raise ChatMigrated(migrated)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            # Telegram always says how long; should a proxy not, wait a second, not forever.
            raise _retry_after(1)
        if status == HTTPStatus.FORBIDDEN:
            raise Forbidden(message)
        if status == HTTPStatus.BAD_REQUEST:
            raise BadRequest(message)
        if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.NOT_FOUND):
            raise InvalidToken(message)
        raise NetworkError(message)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else None
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        write = self._write_timeout if isinstance(write_timeout, DefaultValue) else write_timeout
        if files and isinstance(write_timeout, DefaultValue):
            write = self._media_write_timeout
        pool = None if isinstance(pool_timeout, DefaultValue) else pool_timeout
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=pool,
            sock_connect=connect,
            sock_read=max(read or 0, write or 0) or None,
        )
        body: aiohttp.FormData | dict[str, str] | None = fields
        if files:
            # File names as they are (a document's 停水通知.pdf), not percent-encoded.
            form = aiohttp.FormData(quote_fields=False)
            for name, value in (fields or {}).items():
                form.add_field(name, value)
            for name, (filename, content, mime_type) in files.items():
                data = content if isinstance(content, bytes) else content.read()
                form.add_field(name, data, filename=filename, content_type=mime_type)
            body = form
        return await self._exchange(method, url, data=body, limits=timeout)

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        data: Any,
        limits: aiohttp.ClientTimeout,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """The one place that talks HTTP, and turns aiohttp's failures into PTB's."""
        if self._session is None:
            raise RuntimeError("AiohttpRequest is not initialized")
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=limits
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err
