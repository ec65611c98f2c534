"""WeChat's access token: one for every process, shared through the database, one refresher
under a lock, a stale token refreshed once. Races run on PostgreSQL with two processes' worth of
Linli, the interleaving forced by the stub's token gate and the database's lock queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.app import Linli, assemble
from bot.channels.wechat import WeChatApi, WeChatChannel
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.races import Blocker
from tests.wechat_stub import WeChatStub

AMY, BEN = "o_amy", "o_ben"


@pytest.fixture
async def two(
    db_url: str, clock: FakeClock, wechat: WeChatStub
) -> AsyncIterator[tuple[Linli, Linli]]:
    """Two processes' worth of Linli on one database and one account, which Amy and Ben
    follow (they wrote within the last 48 hours)."""
    wechat.follow(AMY)
    wechat.follow(BEN)
    first = await fresh_linli(settings_for(db_url, **wechat.env()), clock)
    second = assemble(settings_for(db_url, **wechat.env()), clock=clock)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


def api(linli: Linli) -> WeChatApi:
    assert isinstance(linli.wechat, WeChatChannel)
    return linli.wechat.api


def needs_postgres(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two refreshers cannot interleave")


async def test_a_second_process_uses_the_token_the_first_fetched(
    two: tuple[Linli, Linli], wechat: WeChatStub
) -> None:
    first, second = two
    one = await api(first).token()
    other = await api(second).token()
    assert one == other
    assert (wechat.tokens_issued, api(first).fetches, api(second).fetches) == (1, 1, 0)


async def test_a_stale_token_is_refreshed_once_and_the_call_retried(
    two: tuple[Linli, Linli], wechat: WeChatStub
) -> None:
    first, second = two
    await api(first).call("/cgi-bin/message/custom/send", json=_text(AMY, "one"))
    wechat.expire_token()
    await api(first).call("/cgi-bin/message/custom/send", json=_text(AMY, "two"))
    # The other process still holds the token that ran out in memory? No: it never fetched,
    # and what it reads now is the refreshed one.
    await api(second).call("/cgi-bin/message/custom/send", json=_text(BEN, "three"))
    assert wechat.texts_to(AMY) == ["one", "two"]
    assert wechat.texts_to(BEN) == ["three"]
    assert wechat.tokens_issued == 2
    assert (api(first).fetches, api(second).fetches) == (2, 0)


async def test_two_processes_needing_a_token_at_once_fetch_it_once(
    db_url: str, two: tuple[Linli, Linli], wechat: WeChatStub
) -> None:
    needs_postgres(db_url)
    first, second = two
    wechat.token_gate = asyncio.Event()
    async with Blocker(db_url) as watch:
        fetching = watch.start(api(first).token())
        await wechat.token_asked.wait()  # the first is fetching, holding the token's row
        waiting = watch.start(api(second).token())
        await watch.until_waiting(1)  # the second waits for that row
        wechat.token_gate.set()
        one, other = await asyncio.gather(fetching, waiting)
    assert one == other
    assert (wechat.tokens_issued, api(first).fetches, api(second).fetches) == (1, 1, 0)


async def test_two_processes_told_their_token_is_stale_refresh_it_once(
    db_url: str, two: tuple[Linli, Linli], wechat: WeChatStub
) -> None:
    needs_postgres(db_url)
    first, second = two
    assert await api(first).token() == await api(second).token()
    wechat.expire_token()
    wechat.token_asked.clear()
    wechat.token_gate = asyncio.Event()
    async with Blocker(db_url) as watch:
        one = watch.start(api(first).call("/cgi-bin/message/custom/send", json=_text(AMY, "a")))
        await wechat.token_asked.wait()  # got 40001, refreshing with the row locked
        other = watch.start(api(second).call("/cgi-bin/message/custom/send", json=_text(BEN, "b")))
        await watch.until_waiting(1)  # got 40001 too, and waits for the refresher's row
        wechat.token_gate.set()
        await asyncio.gather(one, other)
    # Both messages went out, on the one new token: a second refresh would have cut the
    # first process off again.
    assert (wechat.texts_to(AMY), wechat.texts_to(BEN)) == (["a"], ["b"])
    assert wechat.tokens_issued == 2
    assert (api(first).fetches, api(second).fetches) == (2, 0)


def _text(openid: str, content: str) -> dict[str, object]:
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}
