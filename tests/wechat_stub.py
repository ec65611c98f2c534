"""WeChat, played for the tests: the API server the bot calls (over real HTTP) and the callback
side, which signs and encrypts real callback XML as WeChat does and posts it to the bot's
/wechat route.

The API side issues access tokens (`stable_token`), takes customer-service messages only
within 48 hours of the person's last message and at most 5 per message of theirs (errcode
45015 / 45047 otherwise), serves media by id and records every call.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import xmltodict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from wechatpy.crypto import PrpCrypto

from tests.telegram_stub import AsgiServer

WINDOW = 48 * 3600
QUOTA = 5


def _sender(body: str) -> str | None:
    """Who a (possibly broken, on purpose) callback is from, if it says."""
    try:
        return str(xmltodict.parse(body, disable_entities=True)["xml"]["FromUserName"])
    except Exception:
        return None


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


@dataclass
class Follower:
    openid: str
    last_message_at: float = 0.0
    sent_since: int = 0


@dataclass
class WeChatStub:
    token: str = "wechat-token"
    appid: str = "wx0123456789abcdef"
    secret: str = "wechat-secret"
    aes_key: str = field(
        default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode()[:43]
    )
    clock: Any = time.time
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, bytes] = field(default_factory=dict)
    followers: dict[str, Follower] = field(default_factory=dict)
    tokens_issued: int = 0
    templates_sent: list[dict[str, Any]] = field(default_factory=list)
    qr_scenes: dict[str, str] = field(default_factory=dict)
    menu: list[dict[str, Any]] = field(default_factory=list)
    # While set, a token request waits for it (`token_asked` says one is waiting): a test
    # holds a refresher in the middle of its fetch this way.
    token_gate: asyncio.Event | None = None
    token_asked: asyncio.Event = field(default_factory=asyncio.Event)
    # The same for media downloads: a slow download (a large image on a slow link).
    media_gate: asyncio.Event | None = None

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._token: str | None = None
        self.crypto = PrpCrypto(base64.b64decode(self.aes_key + "="))
        self.server = AsgiServer(
            Starlette(
                routes=[
                    Route("/cgi-bin/stable_token", self._stable_token, methods=["POST"]),
                    Route("/cgi-bin/message/custom/send", self._custom_send, methods=["POST"]),
                    Route("/cgi-bin/message/template/send", self._template, methods=["POST"]),
                    Route("/cgi-bin/media/upload", self._upload, methods=["POST"]),
                    Route("/cgi-bin/qrcode/create", self._qrcode, methods=["POST"]),
                    Route("/cgi-bin/menu/create", self._menu, methods=["POST"]),
                    Route("/cgi-bin/media/get", self._media_get, methods=["GET"]),
                ]
            )
        )

    async def __aenter__(self) -> WeChatStub:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()

    @property
    def api_base_url(self) -> str:
        return self.server.url

    def env(self, mode: str = "safe") -> dict[str, str]:
        return {
            "LINLI_WECHAT__TOKEN": self.token,
            "LINLI_WECHAT__APPID": self.appid,
            "LINLI_WECHAT__SECRET": self.secret,
            "LINLI_WECHAT__AES_KEY": self.aes_key,
            "LINLI_WECHAT__MODE": mode,
            "LINLI_WECHAT__API_BASE_URL": self.api_base_url,
        }

    # ------------------------------------------------------------------ API side

    def expire_token(self) -> None:
        """The token runs out: calls with it get 40001, the next fetch gets a new one."""
        self._token = None

    def _authorised(self, request: Request) -> bool:
        return self._token is not None and request.query_params.get("access_token") == self._token

    async def _stable_token(self, request: Request) -> Response:
        body = await request.json()
        self.calls.append(("stable_token", body))
        if (body.get("appid"), body.get("secret")) != (self.appid, self.secret):
            return JSONResponse({"errcode": 40125, "errmsg": "invalid appsecret"})
        self.token_asked.set()
        if self.token_gate is not None:
            await self.token_gate.wait()
        if self._token is None or body.get("force_refresh"):
            self._token = secrets.token_hex(16)
            self.tokens_issued += 1
        return JSONResponse({"access_token": self._token, "expires_in": 7200})

    async def _custom_send(self, request: Request) -> Response:
        body = await request.json()
        self.calls.append(("custom_send", body))
        if not self._authorised(request):
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        follower = self.followers.get(str(body.get("touser")))
        if follower is None or self.clock() - follower.last_message_at > WINDOW:
            return JSONResponse({"errcode": 45015, "errmsg": "response out of time limit"})
        if follower.sent_since >= QUOTA:
            return JSONResponse({"errcode": 45047, "errmsg": "out of response count limit"})
        follower.sent_since += 1
        self.sent.append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def _template(self, request: Request) -> Response:
        """Template messages reach followers whenever (that is what they are for)."""
        body = await request.json()
        self.calls.append(("template_send", body))
        if not self._authorised(request):
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        if str(body.get("touser")) not in self.followers:
            return JSONResponse({"errcode": 43004, "errmsg": "require subscribe"})
        self.templates_sent.append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    async def _qrcode(self, request: Request) -> Response:
        body = await request.json()
        self.calls.append(("qrcode_create", body))
        if not self._authorised(request):
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        scene = body["action_info"]["scene"]["scene_str"]
        self.qr_scenes[f"t{next(self._ids)}"] = scene
        return JSONResponse(
            {
                "ticket": f"ticket-{scene}",
                "expire_seconds": body.get("expire_seconds"),
                "url": f"http://weixin.qq.com/q/{scene}",
            }
        )

    async def _menu(self, request: Request) -> Response:
        body = await request.json()
        self.calls.append(("menu_create", body))
        if not self._authorised(request):
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        self.menu = body["button"]
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def _upload(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        form = await request.form()
        upload = form["media"]
        data = await upload.read()  # type: ignore[union-attr]
        media_id = f"m{next(self._ids)}"
        self.media[media_id] = data
        self.calls.append(("upload", {"media_id": media_id, "size": len(data)}))
        return JSONResponse({"type": "image", "media_id": media_id, "created_at": 0})

    async def _media_get(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        self.calls.append(("media_get", {"media_id": request.query_params.get("media_id")}))
        if self.media_gate is not None:
            await self.media_gate.wait()
        data = self.media.get(request.query_params.get("media_id", ""))
        if data is None:
            return JSONResponse({"errcode": 40007, "errmsg": "invalid media_id"})
        return Response(data, media_type="image/jpeg")

    def follow(self, openid: str) -> None:
        """A message (or event) from the person opens the 48 h window and resets the quota."""
        follower = self.followers.setdefault(openid, Follower(openid))
        follower.last_message_at, follower.sent_since = self.clock(), 0

    def texts_to(self, openid: str) -> list[str]:
        return [m["text"]["content"] for m in self.sent if m["touser"] == openid and "text" in m]

    # ------------------------------------------------------------------ callback side

    def xml(self, openid: str, **fields: Any) -> str:
        fields.setdefault("CreateTime", int(self.clock()))
        nodes = "".join(
            f"<{k}><![CDATA[{str(v).replace(']]>', ']]]]><![CDATA[>')}]]></{k}>"
            for k, v in fields.items()
        )
        return (
            f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>{nodes}</xml>"
        )

    def text(self, openid: str, content: str, msg_id: int | None = None) -> str:
        return self.xml(openid, MsgType="text", Content=content, MsgId=msg_id or next(self._ids))

    def event(self, openid: str, event: str, key: str = "") -> str:
        return self.xml(openid, MsgType="event", Event=event, EventKey=key)

    async def post(
        self,
        app: Any,
        body: str,
        *,
        mode: str = "safe",
        timestamp: int | None = None,
        appid: str | None = None,
        forge: bool = False,
    ) -> httpx.Response:
        """POST a callback as WeChat does: signed, and in safe mode encrypted for `appid`."""
        openid = _sender(body)
        if openid:
            self.follow(openid)
        stamp = str(timestamp if timestamp is not None else int(self.clock()))
        nonce = secrets.token_hex(5)
        params = {"timestamp": stamp, "nonce": nonce, "openid": openid or ""}
        if mode == "plain":
            params["signature"] = sign(self.token, stamp, nonce)
            payload = body
        else:
            encrypted = self.crypto.encrypt(body, appid or self.appid).decode()
            params["signature"] = sign(self.token, stamp, nonce)
            params["msg_signature"] = sign(self.token, stamp, nonce, encrypted)
            payload = (
                "<xml><ToUserName><![CDATA[gh_account]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            )
        if forge:
            params["msg_signature" if mode != "plain" else "signature"] = "0" * 40
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://linli") as client:
            return await client.post("/wechat", params=params, content=payload.encode())

    def reply_text(self, response: httpx.Response) -> str | None:
        """The passive reply's text (decrypted in safe mode), or None for `success`."""
        if response.text == "success":
            return None
        outer = xmltodict.parse(response.text)["xml"]
        if "Encrypt" in outer:
            timestamp, nonce = outer["TimeStamp"], outer["Nonce"]
            assert outer["MsgSignature"] == sign(self.token, timestamp, nonce, outer["Encrypt"])
            inner = xmltodict.parse(self.crypto.decrypt(outer["Encrypt"], self.appid))["xml"]
        else:
            inner = outer
        return str(inner["Content"])
