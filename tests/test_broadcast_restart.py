"""A broadcast survives its sender being killed (issue 13; DESIGN.md "Broadcasts"): `linli run`
is SIGKILLed in the middle of one, and started again. Nothing is lost, no row marked sent is
sent again, and only a message in flight at the kill may arrive twice."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select

from bot.app import assemble
from models import BroadcastDelivery
from tests.broadcast_cast import residents_with_chats
from tests.conftest import settings_for
from tests.processes import linli_process, run_linli
from tests.telegram_harness import telegram_env
from tests.telegram_stub import BotApiStub, Limits
from tests.test_run import clean_env, free_port

TEXT = "Rain tonight: close your windows"
PEOPLE = 90


def copies(stub: BotApiStub) -> Counter[str]:
    return Counter(str(m["chat_id"]) for m in stub.sent if (m.get("text") or "") == TEXT)


async def rows_by_status(db_url: str) -> dict[str, set[str]]:
    linli = assemble(settings_for(db_url))
    try:
        async with linli.sessions() as session:
            rows = (
                await session.execute(select(BroadcastDelivery.status, BroadcastDelivery.chat_id))
            ).all()
    finally:
        await linli.close()
    found: dict[str, set[str]] = {}
    for status, chat in rows:
        found.setdefault(status, set()).add(chat)
    return found


async def test_a_killed_sender_resumes_and_sends_nothing_twice_that_it_marked_sent(
    db_url: str, tmp_path: object
) -> None:
    async with BotApiStub() as stub:
        stub.limits = Limits()
        env = clean_env(
            LINLI_DATABASE__URL=db_url,
            LINLI_WEB__PORT=str(free_port()),
            LINLI_TELEGRAM__MESSAGES_PER_SECOND="25",
            LINLI_BROADCAST__RECLAIM_AFTER_SECONDS="2",
            **telegram_env(stub),
        )
        await run_linli(env, "init")
        linli = assemble(settings_for(db_url))
        try:
            chats = await residents_with_chats(linli, PEOPLE, datetime.now(UTC))
        finally:
            await linli.close()
        text_file = tmp_path / "notice.txt"  # type: ignore[operator]
        text_file.write_text(TEXT, encoding="utf-8")
        said = await run_linli(
            env, "broadcast", "--scope", "community", "--text-file", str(text_file)
        )
        assert said.split("\t")[1] == f"{PEOPLE} recipients\n"
        async with linli_process("run", env=env) as first:
            await stub.wait_for_message(int(chats[30]), contains=TEXT, timeout=60)
            first.kill()
            await first.wait()
        at_kill = await rows_by_status(db_url)
        sent_before = copies(stub)
        assert 0 < len(at_kill.get("sent", ())) < PEOPLE
        env["LINLI_WEB__PORT"] = str(free_port())
        async with linli_process("run", env=env) as second:
            for chat in chats:
                if not copies(stub)[chat]:
                    await stub.wait_for_message(int(chat), contains=TEXT, timeout=60)
            for _ in range(100):  # the rows in flight at the kill are offered again
                if set((await rows_by_status(db_url)).keys()) == {"sent"}:
                    break
                await asyncio.sleep(0.2)
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 20) == 0
    after = copies(stub)
    assert set(after) == set(chats)  # nothing lost
    assert set((await rows_by_status(db_url)).keys()) == {"sent"}
    twice = {chat for chat, n in after.items() if n > 1}
    # A row marked sent before the kill was never sent again; only rows in flight could be.
    assert all(after[chat] == 1 for chat in at_kill["sent"])
    assert twice <= at_kill.get("sending", set())
    assert all(sent_before[chat] <= 1 for chat in chats)
    assert stub.too_many == 0
