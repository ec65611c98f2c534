"""Running `linli` as operators do: a separate process, for the tests and the benchmarks."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def linli_process(
    *args: str, env: dict[str, str], **streams: Any
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot ARGS`, killed on exit if it is still running."""
    streams.setdefault("stdin", asyncio.subprocess.PIPE)
    streams.setdefault("stdout", asyncio.subprocess.PIPE)
    streams.setdefault("stderr", asyncio.subprocess.PIPE)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, env=env, **streams
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run_linli(env: dict[str, str], *args: str) -> str:
    """Run a command to the end; its standard output, or an AssertionError with its errors."""
    async with linli_process(*args, env=env, stdin=asyncio.subprocess.DEVNULL) as process:
        out, err = await process.communicate()
    if process.returncode != 0:
        raise AssertionError(f"linli {' '.join(args)} failed: {err.decode()}")
    return out.decode()
