"""`linli run` and `linli chat` as processes: they serve, answer, and stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from pathlib import Path

import httpx
import pytest

from tests.images import camera_exif, photo
from tests.processes import linli_process, run_linli
from tests.telegram_harness import TelegramUser, telegram_env
from tests.telegram_stub import BotApiStub


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
    env.update(extra)
    return env


async def wait_healthy(port: int, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            if process.returncode is not None:
                raise AssertionError((await process.stderr.read()).decode())  # type: ignore[union-attr]
            try:
                response = await client.get(f"http://127.0.0.1:{port}/healthz")
                if response.status_code == 200:
                    assert response.json() == {"status": "ok"}
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("linli run never became healthy")


async def test_run_without_token_serves_and_stops_on_sigterm(db_url: str) -> None:
    port = free_port()
    env = clean_env(LINLI_DATABASE__URL=db_url, LINLI_WEB__PORT=str(port))
    async with linli_process("run", env=env) as process:
        assert process.stdin is not None
        process.stdin.close()  # no terminal: the console ends, the service keeps running
        await wait_healthy(port, process)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0


async def test_run_with_token_serves_telegram(db_url: str) -> None:
    async with BotApiStub() as stub:
        port = free_port()
        env = clean_env(LINLI_DATABASE__URL=db_url, LINLI_WEB__PORT=str(port), **telegram_env(stub))
        async with linli_process("run", env=env) as process:
            await wait_healthy(port, process)
            user = TelegramUser(stub, 31337, "Ops")
            # The web app answers before Telegram polling has started: allow for start-up.
            await user.send("/help", expect="Here is what you can do", patience=30)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 15) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_console_chat(db_url: str, tmp_path: Path) -> None:
    env = clean_env(LINLI_DATABASE__URL=db_url)
    async with linli_process("chat", "--as", "amy", env=env) as process:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(b"/help\n/language\n2\n/help\n/photo /nonexistent.jpg\n"), 60
        )
    out = stdout.decode()
    assert process.returncode == 0, stderr.decode()
    assert "您可以使用以下功能" in out  # the console user has no language: the default, zh_CN
    assert "1) 中文" in out and "2) English" in out
    assert "speak English with you" in out and "Here is what you can do" in out
    assert "INFO" not in out


async def test_sigkill_loses_nothing_committed(db_url: str) -> None:
    """A killed process restarts from the database, mid-registration included."""
    async with BotApiStub() as stub:
        env = clean_env(
            LINLI_DATABASE__URL=db_url, LINLI_WEB__PORT=str(free_port()), **telegram_env(stub)
        )
        await run_linli(env, "init")
        code = re.search(r"code: (\w+)", await run_linli(env, "invite", "--building", "Building 4"))
        assert code is not None
        user = TelegramUser(stub, 4242, "Kim")
        async with linli_process("run", env=env) as first:
            await user.send(f"/start {code.group(1)}", expect="Which room", patience=30)
            first.kill()
            await first.wait()
        env["LINLI_WEB__PORT"] = str(free_port())
        async with linli_process("run", env=env) as second:
            await user.send("403", expect="Room 403, thank you", patience=30)
            await user.press("Use", expect="You are registered in Building 4, room 403")
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 15) == 0


async def test_console_chat_photo_report(db_url: str, tmp_path: Path) -> None:
    """`/photo PATH` in `linli chat` goes through the same intake as a Telegram photo."""
    env = clean_env(LINLI_DATABASE__URL=db_url, LINLI_REPORT__MEDIA_DIR=str(tmp_path / "media"))
    await run_linli(env, "init")
    code = re.search(r"code: (\S+)", await run_linli(env, "invite", "--building", "Building 2"))
    assert code is not None
    picture = tmp_path / "leak.jpg"
    picture.write_bytes(photo(exif=camera_exif()))
    script = f"/language\n2\n/start {code[1]}\n302\n1\n/photo {picture}\n1\n2\n4\n"
    async with linli_process("chat", "--as", "amy", env=env) as process:
        stdout, stderr = await asyncio.wait_for(process.communicate(script.encode()), 60)
    out = stdout.decode()
    assert process.returncode == 0, stderr.decode()
    assert "Photo 1 of 4 received" in out and "Where the photo was taken" in out
    assert "Anything that helps find it" in out
    stored = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert len(stored) == 2  # the cleaned photo and its thumbnail, nothing else
