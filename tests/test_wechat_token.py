"""WeChat's access token: one for every process, shared through the database, one refresher
holding a lease, a stale token refreshed once. Two processes' worth of Linli on one database
(SQLite and PostgreSQL), the interleaving forced by the stub's token gate and the waiting
process's own signal, not by sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.app import Linli, assemble
from bot.channels.wechat import WeChatApi, WeChatChannel, WeChatError
from tests.conftest import FakeClock, fresh_linli, settings_for
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
    two: tuple[Linli, Linli], wechat: WeChatStub
) -> None:
    first, second = two
    wechat.token_gate = asyncio.Event()
    fetching = asyncio.create_task(api(first).token())
    await wechat.token_asked.wait()  # the first is fetching, holding the lease
    waiting = asyncio.create_task(api(second).token())
    await api(second).waiting.wait()  # the second found the lease taken and waits
    wechat.token_gate.set()
    one, other = await asyncio.gather(fetching, waiting)
    assert one == other
    assert (wechat.tokens_issued, api(first).fetches, api(second).fetches) == (1, 1, 0)


async def test_two_processes_told_their_token_is_stale_refresh_it_once(
    two: tuple[Linli, Linli], wechat: WeChatStub
) -> None:
    first, second = two
    assert await api(first).token() == await api(second).token()
    wechat.expire_token()
    wechat.token_asked.clear()
    wechat.token_gate = asyncio.Event()
    one = asyncio.create_task(api(first).call("/cgi-bin/message/custom/send", json=_text(AMY, "a")))
    await wechat.token_asked.wait()  # got 40001, refreshing under the lease
    other = asyncio.create_task(
        api(second).call("/cgi-bin/message/custom/send", json=_text(BEN, "b"))
    )
    await api(second).waiting.wait()  # got 40001 too, and waits for the refresher
    wechat.token_gate.set()
    await asyncio.gather(one, other)
    # Both messages went out, on the one new token: a second refresh would have cut the
    # first process off again.
    assert (wechat.texts_to(AMY), wechat.texts_to(BEN)) == (["a"], ["b"])
    assert wechat.tokens_issued == 2
    assert (api(first).fetches, api(second).fetches) == (2, 0)


async def test_a_refresher_that_fails_lets_the_next_one_try(
    two: tuple[Linli, Linli], wechat: WeChatStub
) -> None:
    first, second = two
    wechat.secret = "rotated"  # the first fetch is refused (40125)
    with pytest.raises(WeChatError):
        await api(first).token()
    wechat.secret = "wechat-secret"
    assert await api(second).token()  # not left waiting for a lease nobody holds
    assert wechat.tokens_issued == 1


def _text(openid: str, content: str) -> dict[str, object]:
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}
