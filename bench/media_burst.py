"""A burst of 40-megapixel photos through media intake: peak RSS with the decode bound.

    OMP_NUM_THREADS=1 .venv/bin/python bench/media_burst.py [--images 6] [--limits 2,6,off]
        [--formats jpeg,jpeg-progressive,png-24mp,png] [--costs]

Six camera-like photos (40 MP: 7300×5475, film-grain noise so they compress like real photos,
EXIF with GPS) arrive at once and go through `MediaIntake`, as six residents' updates would:
each fetch reads its file's bytes only when called (a stand-in for the Telegram download), then
the photo is decoded, shrunk, re-encoded and stored. Each configuration runs in a fresh process,
because peak RSS only ever grows; the inputs are written to files by yet another process, so
their making is not counted. A limit is `max_concurrent_decodes`, with the default decode
budget (MediaLimits.max_decode_bytes); `off` is six at once and no budget, as before issue 8.

`--costs` also decodes one file of each format alone in a fresh process and compares the
growth of its peak RSS with `decode_cost`, the estimate the decode budget is based on.

Target (issue 8): peak RSS under 300 MB with the default bound (2).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MAX_BYTES = 20 * 1024 * 1024
# name: (width, height, what it is)
FORMATS = {
    "jpeg": (7300, 5475, "JPEG q92, baseline"),
    "jpeg-progressive": (7300, 5475, "JPEG q85, progressive"),
    "png-24mp": (5600, 4200, "PNG RGB, 16 colours dithered"),
    "png-20mp": (5160, 3870, "PNG RGB, 16 colours dithered"),
    "png": (7300, 5475, "PNG RGB, 16 colours dithered"),
    "png-p": (7300, 5475, "PNG palette, 16 colours dithered"),
}


def make(folder: Path, fmt: str, count: int) -> None:
    """`count` different photos of one kind, all under the 20 MB limit."""
    from PIL import Image

    width, height, _ = FORMATS[fmt]
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.effect_noise((width, height), 40).convert("RGB")
    image = Image.blend(base, noise, 0.25)
    del base, noise
    if fmt.startswith("png"):
        # Noise does not compress losslessly (that PNG would be ~90 MB); 16 colours dithered
        # over it make a busy picture that does, just under 20 MB at 40 MP.
        image = image.quantize(16)
        if fmt != "png-p":
            image = image.convert("RGB")
    for i in range(count):
        # A different mark on each, so each is its own file (storage is content-addressed).
        image.paste(i * 40 if fmt == "png-p" else (i * 40, 0, 0), (0, 0, 400, 400))
        exif = Image.Exif()
        exif[0x010F], exif[0x0110], exif[0x0112] = "PhoneMaker", "Model X", 6
        exif[0x8825] = {1: "N", 2: (31.0, 13.0, 30.0 + i), 3: "E", 4: (121.0, 28.0, 12.0)}
        path = folder / f"{fmt}-{i}.img"
        if fmt == "jpeg":
            image.save(path, "JPEG", quality=92, exif=exif)
        elif fmt == "jpeg-progressive":
            image.save(path, "JPEG", quality=85, progressive=True, exif=exif)
        else:
            image.save(path, "PNG", exif=exif)
        assert path.stat().st_size < MAX_BYTES, (path, path.stat().st_size)


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set of this process, in MB (MiB, as the kernel counts)."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return int(fields["VmRSS"].split()[0]) / 1024, peak


def warm_up() -> None:
    from services.media import process_photo
    from tests.images import photo

    process_photo(photo(640, 480))  # imports, codec tables


async def burst(paths: list[Path], limit: str) -> dict[str, object]:
    from handlers.messages import ChatRef, FileRef, Incoming, Kind, Sender
    from handlers.reports.intake import MediaIntake
    from services.media import LocalStorage, MediaLimits

    warm_up()
    after_warm_up, _ = rss_mb()

    async def fetch(ref: FileRef, size_limit: int) -> bytes:
        # A download: nothing is read before intake asks for it.
        data = await asyncio.to_thread(Path(ref.file_ref).read_bytes)
        assert len(data) <= size_limit
        return data

    with tempfile.TemporaryDirectory() as media:
        intake = MediaIntake(
            LocalStorage(Path(media)),
            {"bench": fetch},
            MediaLimits() if limit != "off" else MediaLimits(max_decode_bytes=2**40),
            5 * 1024 * 1024,
            max_concurrent_decodes=int(limit) if limit != "off" else len(paths),
        )
        updates = [
            Incoming(
                chat=ChatRef("bench", str(100 + i)),
                sender=Sender(str(100 + i)),
                kind=Kind.PHOTO,
                photo=FileRef(str(path)),
            )
            for i, path in enumerate(paths)
        ]

        async def one(update: Incoming) -> tuple[float, str]:
            started = time.perf_counter()
            done = await intake(update)
            if done.media is not None:
                assert done.media.gps is not None
            outcome = "stored" if done.media is not None else str(done.media_problem)
            return (time.perf_counter() - started) * 1000, outcome

        started = time.perf_counter()
        cpu_started = time.process_time()
        results = await asyncio.gather(*(one(u) for u in updates))
        total = (time.perf_counter() - started) * 1000
        cpu = (time.process_time() - cpu_started) * 1000
    _, peak = rss_mb()
    latencies = [latency for latency, _ in results]
    outcomes = collections.Counter(outcome for _, outcome in results)
    return {
        "peak_rss_mb": peak,
        "rss_after_warm_up_mb": after_warm_up,
        "total_ms": total,
        "cpu_ms_per_image": cpu / len(updates),
        "mean_latency_ms": sum(latencies) / len(latencies),
        "max_latency_ms": max(latencies),
        "outcomes": ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())),
    }


def cost(path: Path) -> dict[str, object]:
    """One decode alone: growth of the peak RSS beside decode_cost's estimate, in MiB."""
    from PIL import Image

    from services.media import MediaLimits, process_photo
    from services.media.pipeline import _draft, decode_cost

    warm_up()
    limits = MediaLimits(max_decode_bytes=2**40)  # measure even what the default refuses
    data = path.read_bytes()
    image = Image.open(io.BytesIO(data))
    full_size = image.size
    if image.format == "JPEG":
        _draft(image, limits.max_side)
    estimate = decode_cost(image, full_size, limits) / 2**20
    del image
    _, before = rss_mb()
    process_photo(data, limits)
    _, after = rss_mb()
    default = MediaLimits().max_decode_bytes
    return {"measured": after - before, "estimate": estimate, "refused": estimate * 2**20 > default}


def child_result(command: list[str]) -> dict[str, Any]:
    """Run one measurement in a fresh process (peak RSS only grows); its last line is JSON."""
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--limits", default="2,6,off", help="decode bounds to compare")
    parser.add_argument("--formats", default="jpeg,jpeg-progressive,png-24mp,png")
    parser.add_argument("--costs", action="store_true")
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cost", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--format", default="jpeg", help=argparse.SUPPRESS)
    parser.add_argument("--limit", default="2", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make(args.make, args.format, args.images)
        return
    if args.run:
        paths = sorted(args.run.glob(f"{args.format}-*.img"))[: args.images]
        print(json.dumps(asyncio.run(burst(paths, args.limit))))
        return
    if args.cost:
        print(json.dumps(cost(args.cost)))
        return
    print(
        f"bench/media_burst.py: {args.images} photos at once through MediaIntake, "
        f"cores={os.cpu_count()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"MB = MiB"
    )
    rows, costs = [], []
    with tempfile.TemporaryDirectory() as folder:
        for fmt in args.formats.split(","):
            child = [sys.executable, __file__, "--format", fmt, "--images", str(args.images)]
            subprocess.run([*child, "--make", folder], check=True)
            paths = sorted(Path(folder).glob(f"{fmt}-*.img"))
            size = sum(p.stat().st_size for p in paths) / len(paths) / 2**20
            width, height, what = FORMATS[fmt]
            label = f"{what}, {width}×{height} ({width * height / 1e6:.0f} MP), {size:.1f} MB"
            for limit in args.limits.split(","):
                f = child_result([*child, "--run", folder, "--limit", limit])
                rows.append(
                    f"| {label} | {limit} | {f['peak_rss_mb']:.0f} | "
                    f"{f['rss_after_warm_up_mb']:.0f} | {f['total_ms']:.0f} | "
                    f"{f['cpu_ms_per_image']:.0f} | {f['mean_latency_ms']:.0f} | "
                    f"{f['max_latency_ms']:.0f} | {f['outcomes']} |"
                )
                print(rows[-1], flush=True)
            if args.costs:
                c = child_result([sys.executable, __file__, "--cost", str(paths[0])])
                costs.append(
                    f"| {label} | {c['measured']:.0f} | {c['estimate']:.0f} | "
                    f"{'refused' if c['refused'] else 'decoded'} |"
                )
                print(costs[-1], flush=True)
            for path in paths:
                path.unlink()
    print()
    print(
        "| input | max_concurrent_decodes | peak RSS MB | RSS MB after warm-up | burst ms "
        "| CPU ms/image | mean latency ms | max latency ms | outcome |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if costs:
        print()
        print("| input | one decode alone: peak RSS growth MB | decode_cost MB | by default |")
        print("|---|---|---|---|")
        print("\n".join(costs))


if __name__ == "__main__":
    main()
