"""Peak RSS of the whole bot while residents send big photos at once (issue 8, item 2).

    OMP_NUM_THREADS=1 .venv/bin/python bench/photo_burst_bot.py [--formats jpeg,png-24mp]
        [--images 6]

bench/media_burst.py measures intake alone, from a 66 MB process. This runs the bot as a real
`linli run` process polling the Bot API stub, as bench/updates.py does: `--images` residents
register, then all send one photo in the same moment (a JPEG as a Telegram photo, a PNG as an
image file, which is how a PNG reaches a bot). The bot downloads each over HTTP from the stub,
decodes, strips and stores it, and answers "Photo 1 of 4 received". Printed: the bot's RSS
before the burst, its peak (VmHWM) after, and how long the burst took.

Target (issue 8): peak RSS under 300 MB with the default `max_concurrent_decodes` (2).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import linli_process, run_linli  # noqa: E402
from tests.telegram_stub import BotApiStub  # noqa: E402


def sibling(name: str) -> ModuleType:
    """Another benchmark of this folder, for its helpers (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(name))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


updates_bench = sibling("updates.py")
burst_bench = sibling("media_burst.py")
REGISTER = updates_bench.STEPS[:3]  # /start CODE, room, name


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def register(stub: BotApiStub, user_id: int, code: str) -> None:
    for text, fragment in REGISTER:
        mark = len(stub.sent)
        stub.send_text(user_id, text.format(code=code), first_name="Bench")
        await stub.wait_for_message(user_id, contains=fragment, after=mark, timeout=60)


async def burst(fmt: str, images: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="linli-photo-burst-"))
    # Made in this process before the bot starts: the bot's memory is what is measured.
    burst_bench.make(workdir, fmt, images)
    files = [(workdir / f"{fmt}-{i}.img").read_bytes() for i in range(images)]
    async with BotApiStub() as stub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
        env.update(
            LINLI_DATABASE__URL=f"sqlite+aiosqlite:///{workdir / 'linli.db'}",
            LINLI_REPORT__MEDIA_DIR=str(workdir / "media"),
            LINLI_TELEGRAM__TOKEN=stub.token,
            LINLI_TELEGRAM__API_BASE_URL=stub.api_base_url,
            LINLI_TELEGRAM__FILE_BASE_URL=stub.file_base_url,
            LINLI_TELEGRAM__POLL_TIMEOUT="1",
            LINLI_WEB__PORT="0",
        )
        await run_linli(env, "init")
        out = await run_linli(env, "invite", "--building", "Building 1", "--uses", "99")
        code = re.search(r"code: (\w+)", out).group(1)  # type: ignore[union-attr]
        streams = {"stdin": asyncio.subprocess.DEVNULL, "stdout": asyncio.subprocess.DEVNULL}
        async with linli_process(
            "run", env=env, stderr=asyncio.subprocess.DEVNULL, **streams
        ) as bot:
            residents = [200_000 + i for i in range(images)]
            for user_id in residents:
                await register(stub, user_id, code)
            before = rss_mb(bot.pid)
            mark = len(stub.sent)
            started = time.perf_counter()
            for user_id, content in zip(residents, files, strict=True):
                if fmt.startswith("jpeg"):
                    update = stub.message_update(user_id, photo=content, first_name="Bench")
                else:
                    document = {
                        "file_name": "photo.png",
                        "mime_type": "image/png",
                        "content": content,
                    }
                    update = stub.message_update(user_id, document=document, first_name="Bench")
                stub.push_update(update)
            answers = await asyncio.gather(
                *(
                    # The first answer: "Photo 1 of 4 received", or the polite refusal.
                    stub.wait_for_message(user_id, after=mark, timeout=300)
                    for user_id in residents
                )
            )
            elapsed = time.perf_counter() - started
            peak = updates_bench.peak_rss_mb(bot.pid)
            bot.terminate()
            await bot.wait()
    stored = sum("Photo 1 of" in (answer.get("text") or "") for answer in answers)
    return {"before": before, "peak": peak, "seconds": elapsed, "stored": stored}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="jpeg,png-24mp")
    parser.add_argument("--images", type=int, default=6)
    args = parser.parse_args()
    print(f"bench/photo_burst_bot.py images={args.images} cores={os.cpu_count()}")
    print("| input (each) | bot RSS before MB | bot peak RSS MB | burst s | stored |")
    print("|---|---|---|---|---|")
    for fmt in args.formats.split(","):
        r = await burst(fmt, args.images)
        width, height, what = burst_bench.FORMATS[fmt]
        print(
            f"| {what}, {width}×{height} | {r['before']:.0f} | {r['peak']:.0f} | "
            f"{r['seconds']:.1f} | {r['stored']:.0f} of {args.images} |",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
