"""Issue 8, item 17: `linli run` in console mode stops on SIGTERM whatever its stdin does.

A service manager may hand the process an open pipe that never sends a byte. The console must
not hold the process up then: SIGTERM stops it within a second.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.processes import linli_process
from tests.test_run import clean_env, free_port

BANNER = b"Linli console"


async def read_until(stream: asyncio.StreamReader, marker: bytes, patience: float) -> bytes:
    seen = b""
    async with asyncio.timeout(patience):
        while marker not in seen:
            chunk = await stream.read(4096)
            if not chunk:
                raise AssertionError(f"output ended before {marker!r}: {seen.decode()!r}")
            seen += chunk
    return seen


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("stdin", ["silent pipe", "half a line", "/dev/null"])
async def test_sigterm_stops_console_run_whatever_stdin_does(db_url: str, stdin: str) -> None:
    env = clean_env(LINLI_DATABASE__URL=db_url, LINLI_WEB__PORT=str(free_port()))
    streams = {"stdin": asyncio.subprocess.DEVNULL} if stdin == "/dev/null" else {}
    async with linli_process("run", env=env, **streams) as process:
        assert process.stdout is not None
        if stdin == "half a line":
            assert process.stdin is not None
            process.stdin.write(b"/hel")  # no newline: a read that waits for the rest
            await process.stdin.drain()
        await read_until(process.stdout, BANNER, patience=60)  # the console is reading now
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            status = await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            raise AssertionError("linli run ignored SIGTERM while stdin stayed open") from None
        elapsed = time.monotonic() - started
        errors = (await process.stderr.read()).decode()  # type: ignore[union-attr]
        assert status == 0 and "Traceback" not in errors, errors
        assert elapsed < 1.5, f"took {elapsed:.2f}s to stop"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_console_chat_reads_a_file_and_dev_null(db_url: str, tmp_path: Path) -> None:
    """Descriptors the loop can't watch (files, /dev/null) are read directly: they never wait."""
    env = clean_env(LINLI_DATABASE__URL=db_url)
    script = tmp_path / "script.txt"
    script.write_text("/language\n2\n/help")  # the last line has no newline
    with script.open("rb") as from_file:
        async with linli_process("chat", "--as", "amy", env=env, stdin=from_file) as process:
            out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "speak English with you" in out.decode() and "Here is what you can do" in out.decode()
    streams = {"stdin": asyncio.subprocess.DEVNULL}
    async with linli_process("chat", "--as", "amy", env=env, **streams) as process:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert BANNER in out
