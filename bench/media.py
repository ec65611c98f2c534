"""The photo pipeline on 12 MP camera JPEGs: milliseconds per image and peak memory.

    .venv/bin/python bench/media.py [--images 20]

Each image is 4032×3024 (a 12 MP phone photo), with film-grain noise so it compresses like a
real photo (about 4–6 MB at quality 92), EXIF with GPS and an orientation tag. One process, one
thread: the figures are for one core. Target (issue 3): ≤ 250 ms per image, peak RSS ≤ 250 MB.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image

from services.media import process_photo


def camera_jpeg(seed: int) -> bytes:
    width, height = 4032, 3024
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.effect_noise((width, height), 40 + seed).convert("RGB")
    image = Image.blend(base, noise, 0.35)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "PhoneMaker", "Model X", 6
    exif[0x8825] = {1: "N", 2: (31.0, 13.0, 30.0 + seed), 3: "E", 4: (121.0, 28.0, 12.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        for i in range(4):
            (args.make / f"photo{i}.jpg").write_bytes(camera_jpeg(i))
        return
    with tempfile.TemporaryDirectory() as folder:
        # Made in another process, so its big intermediate images don't count in our RSS.
        subprocess.run([sys.executable, __file__, "--make", folder], check=True)
        inputs = [p.read_bytes() for p in sorted(Path(folder).glob("*.jpg"))]
    process_photo(inputs[0])  # warm-up: imports, codec tables
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    timings = []
    for i in range(args.images):
        data = inputs[i % len(inputs)]
        started = time.process_time()
        result = process_photo(data)
        timings.append((time.process_time() - started) * 1000)
        assert max(result.width, result.height) <= 2048 and result.gps is not None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = statistics.mean(len(d) for d in inputs) / 1e6
    print(
        f"bench/media.py images={args.images} input=4032x3024 JPEG ~{size_mb:.1f} MB "
        f"cores={os.cpu_count()} (CPU time of one thread)"
    )
    print("| ms/image mean | p50 | p95 | max | peak RSS MB | RSS MB after warm-up |")
    print("|---|---|---|---|---|---|")
    ordered = sorted(timings)
    print(
        f"| {statistics.mean(timings):.0f} | {statistics.median(timings):.0f} | "
        f"{ordered[int(0.95 * (len(ordered) - 1))]:.0f} | {max(timings):.0f} | {peak:.0f} | "
        f"{rss_before:.0f} |"
    )


if __name__ == "__main__":
    main()
