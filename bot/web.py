"""The one Starlette app; channels and (later) the dashboard add their routes to it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.media.storage import KEY_PATTERN, MEDIA_PATH, MediaStorage

# What a stored file is, from its first bytes (never from the request).
MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"OggS", "audio/ogg"),
)


def media_route(storage: MediaStorage) -> Route:
    """GET /media/<key>?exp=…&sig=…: a stored photo or voice note, for whoever holds a link the
    bot signed (MediaStorage.url), until it expires. Anything else is refused."""

    async def media(request: Request) -> Response:
        key = request.path_params["key"]
        if not KEY_PATTERN.match(key):
            return Response(status_code=404)
        query = request.query_params
        if not storage.verify(key, query.get("exp", ""), query.get("sig", "")):
            return Response(status_code=403)
        try:
            data = await asyncio.to_thread(storage.get, key)
        except FileNotFoundError:
            return Response(status_code=404)
        kind = next((t for magic, t in MAGIC if data.startswith(magic)), "application/octet-stream")
        headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type=kind, headers=headers)

    return Route(f"{MEDIA_PATH}/{{key}}", media, methods=["GET"])


def build_web_app(engine: AsyncEngine, routes: Iterable[BaseRoute]) -> Starlette:
    async def healthz(_request: Request) -> Response:
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, 503)
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/healthz", healthz), *routes])
