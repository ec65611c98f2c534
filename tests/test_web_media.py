"""Stored photos on the web app, by key (DESIGN.md step 3 and "Security"): only through a link
the bot signed, until it expires; nothing else is served, and nothing tells what exists."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.app import Linli, report_rules
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.images import photo


@pytest.fixture
async def app(sqlite_url: str, clock: FakeClock) -> AsyncIterator[Linli]:
    linli = await fresh_linli(settings_for(sqlite_url, LINLI_WEB__MEDIA_SECRET="s3cret"), clock)
    yield linli
    await linli.close()


async def get(linli: Linli, path: str) -> httpx.Response:
    assert linli.web is not None
    transport = httpx.ASGITransport(app=linli.web)
    async with httpx.AsyncClient(transport=transport, base_url="http://linli") as client:
        return await client.get(path)


async def test_a_signed_link_serves_the_photo_and_nothing_else_does(app: Linli) -> None:
    data = photo()
    key = hashlib.sha256(data).hexdigest()
    storage = report_rules(app.settings).storage
    storage.put(key, data)
    link = storage.url(key)
    served = await get(app, link)
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["cache-control"] == "private, max-age=3600"

    path, _, query = link.partition("?")
    params = dict(p.split("=") for p in query.split("&"))
    # No signature, a forged one, another key's, or an expired one: 403.
    assert (await get(app, path)).status_code == 403
    assert (await get(app, f"{path}?exp={params['exp']}&sig={'0' * 64}")).status_code == 403
    other = storage.url("a" * 64).partition("?")[2]
    assert (await get(app, f"{path}?{other}")).status_code == 403
    expired = storage.url(key, lifetime=-10)
    assert (await get(app, expired)).status_code == 403
    assert (await get(app, f"{path}?exp=soon&sig={params['sig']}")).status_code == 403
    # A key nobody stored, with a valid signature: 404; a path that is no key at all: 404.
    assert (await get(app, storage.url("b" * 64))).status_code == 404
    assert (await get(app, "/media/..%2F..%2Fetc%2Fpasswd?exp=9999999999&sig=x")).status_code == 404
    assert (await get(app, "/media/ABC")).status_code == 404


async def test_workers_with_the_same_secret_accept_each_others_links(
    app: Linli, sqlite_url: str, clock: FakeClock
) -> None:
    """Several workers behind one address: a link made by one is served by another."""
    data = photo(320, 240)
    key = hashlib.sha256(data).hexdigest()
    report_rules(app.settings).storage.put(key, data)
    link = report_rules(app.settings).storage.url(key)
    settings = settings_for(
        sqlite_url,
        LINLI_WEB__MEDIA_SECRET="s3cret",
        LINLI_REPORT__MEDIA_DIR=app.settings.report.media_dir,
    )
    other = await fresh_linli(settings, clock)
    try:
        assert (await get(other, link)).status_code == 200
    finally:
        await other.close()
    assert int(link.split("exp=")[1].split("&")[0]) > time.time()
