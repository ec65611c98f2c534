"""One photo in, a clean JPEG and a thumbnail out (DESIGN.md "Privacy").

The order matters: read the size from the header before decoding anything (a decompression bomb
is refused without allocating it), read GPS from EXIF before it is stripped (to suggest where the
problem is), apply the EXIF orientation (or the re-encoded photo would lie on its side), then
re-encode from pixels only, so no EXIF, GPS, device, time, ICC, XMP or comment survives.

EXIF is a courtesy, never a reason to fail: an orientation or a GPS block that can't be read
means no rotation and no location, and the photo is kept.

Memory: the header also says how much decoding will take (`decode_cost`). A picture that would
take more than `max_decode_bytes` is refused; the others claim their cost from a `DecodeBudget`
shared by the threads that decode, so a burst of big photos is decoded one or two at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import imagehash
from PIL import Image, UnidentifiedImageError

# Pillow warns between its own pixel limit and twice it; we decide with ours (MediaLimits). Set
# once for the process: catch_warnings() is not thread-safe, and decodes run in threads.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

JPEG_QUALITY = 82
GPS_IFD = 0x8825
ORIENTATION = 0x0112
# EXIF orientation → the transpose that shows the picture upright (orientation 1: as stored).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class MediaRejected(Exception):
    """A photo we will not keep; `reason` picks the polite message the resident sees."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # too_big | too_many_pixels | not_an_image | broken


@dataclass(frozen=True)
class MediaLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 2048
    thumb_side: int = 320
    # Memory one photo may take while it is decoded, estimated from its header (decode_cost),
    # and what all photos decoding at once may take together (DecodeBudget). Any baseline JPEG
    # within max_pixels fits: it is decoded at 1/2 to 1/8 scale; a progressive one also keeps
    # its DCT coefficients at full size, so it fits up to about 36 MP. A lossless picture is
    # decoded whole at 4 bytes a pixel, so an RGB PNG fits up to about 21 MP. The bot itself
    # (~116 MB) with one such decode and the fetched files stays under 300 MB (issue 8,
    # bench/photo_burst_bot.py: a burst of 24 MP PNGs under a 144 MiB budget reached 301 MB).
    max_decode_bytes: int = 128 * 1024 * 1024


@dataclass(frozen=True)
class ProcessedPhoto:
    key: str  # SHA-256 of `jpeg`: the storage key
    jpeg: bytes
    thumb_key: str
    thumbnail: bytes
    width: int
    height: int
    phash: str  # perceptual hash, hex; close hashes mean likely the same scene
    gps: tuple[float, float] | None  # (lat, lon) from the original's EXIF, before stripping


class DecodeBudget:
    """Memory for decoding, shared by the threads that decode photos (handlers/reports/intake.py).

    Each photo claims its `decode_cost` before a pixel is decoded and gives it back when it is
    done; a claim waits until that much is free. Claims are served in the order they were made,
    so a big photo is not overtaken for ever by small ones. It is a thread primitive, not an
    asyncio one, so the memory is given back when the decode really ends, even if the update
    that asked for it was cancelled meanwhile.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self.waiting = 0
        self._changed = threading.Condition()
        self._tickets = 0
        self._serving = 0

    @contextlib.contextmanager
    def claim(self, amount: int) -> Iterator[None]:
        amount = min(amount, self.total)  # more than the whole budget: run alone
        with self._changed:
            ticket, self._tickets = self._tickets, self._tickets + 1
            self.waiting += 1
            self._changed.wait_for(lambda: self._serving == ticket and self.free >= amount)
            self.waiting -= 1
            self._serving += 1
            self.free -= amount
            self._changed.notify_all()  # the next ticket may fit beside this one
        try:
            yield
        finally:
            with self._changed:
                self.free += amount
                self._changed.notify_all()


def unmap_freed_pictures() -> None:
    """Make glibc hand the memory of a freed picture back to the system at once.

    Pillow allocates pictures in blocks of up to 16 MiB. Once the first such block is freed,
    glibc raises its mmap threshold above it and serves later blocks from per-thread heaps,
    which it seldom gives back: two decode threads then each keep the memory of the biggest
    picture they ever decoded (bench/media_burst.py: 349 MB instead of 230 for a burst of
    24 MP PNGs). A fixed threshold of 1 MiB makes every big block a mapping of its own,
    unmapped when freed. Process-wide, and harmless elsewhere: the bot makes few allocations
    that big. A no-op where there is no mallopt (not glibc).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 1024 * 1024)


def process_photo(
    data: bytes, limits: MediaLimits = MediaLimits(), budget: DecodeBudget | None = None
) -> ProcessedPhoto:
    if len(data) > limits.max_bytes:
        raise MediaRejected("too_big")
    with _refusals():
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > limits.max_pixels:
            raise MediaRejected("too_many_pixels")
        if image.format not in {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "HEIF"}:
            raise MediaRejected("not_an_image")
        full_size = image.size
        if image.format in {"JPEG", "MPO"}:
            _draft(image, limits.max_side)
        cost = decode_cost(image, full_size, limits)
        if cost > limits.max_decode_bytes:
            raise MediaRejected("too_many_pixels")
    with budget.claim(cost) if budget is not None else contextlib.nullcontext():
        with _refusals():
            image.load()
        # After load(): a PNG may keep its eXIf chunk after the pixels.
        orientation, gps = _orientation_and_gps(image)
        # Each step replaces `image`, so the bigger picture before it can be freed.
        if image.mode not in KEPT_MODES:
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        image = _rgb(_shrink(image, limits.max_side))
        # Rotating after shrinking gives the same picture for a fraction of the work.
        if orientation in UPRIGHT:
            image = image.transpose(UPRIGHT[orientation])
        # Pixels only from here on. Pillow carries what the original said about itself in
        # `info` (EXIF, ICC, XMP, JPEG/GIF comments, PNG text chunks) and writes a comment back
        # as a COM segment on save; the thumbnail below is a copy and would inherit it all.
        image.info = {}
        jpeg = _encode(image)
        thumb = image.copy()
        thumb.thumbnail(
            (limits.thumb_side, limits.thumb_side), Image.Resampling.LANCZOS, reducing_gap=2.0
        )
        thumbnail = _encode(thumb)
    return ProcessedPhoto(
        key=hashlib.sha256(jpeg).hexdigest(),
        jpeg=jpeg,
        thumb_key=hashlib.sha256(thumbnail).hexdigest(),
        thumbnail=thumbnail,
        width=image.width,
        height=image.height,
        phash=str(imagehash.phash(thumb)),
        gps=gps,
    )


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Pillow's ways of saying: not a picture, too big a picture, a damaged picture."""
    try:
        yield
    except MediaRejected:
        raise
    except UnidentifiedImageError as exc:
        raise MediaRejected("not_an_image") from exc
    except Image.DecompressionBombError as exc:
        raise MediaRejected("too_many_pixels") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise MediaRejected("broken") from exc


KEPT_MODES = frozenset({"RGB", "RGBA", "L", "LA"})
# Pillow holds 2 to 4 bands of 8 bits in 4 bytes a pixel.
BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


def decode_cost(image: Image.Image, full_size: tuple[int, int], limits: MediaLimits) -> int:
    """Bytes that `process_photo` will hold at its peak for an opened, not yet decoded picture.

    `image.size` is what will be decoded (a JPEG's after its draft scale), `full_size` what the
    header says. Checked against the peak RSS of single decodes (bench/media_burst.py --costs):
    it errs on the high side, by 2-30 MB.
    """
    width, height = image.size
    pixels = width * height
    decoded = pixels * BYTES_PER_PIXEL.get(image.mode, 4)
    if image.mode not in KEPT_MODES:
        decoded += pixels * 4  # converted to RGB(A) at full size before it can be shrunk
    longest = max(width, height, 1)
    factor = longest // limits.max_side
    # _shrink's box-reduced copy is made while the decoded picture is still held, and the
    # shrunk and turned picture while that is.
    reduced = -(-width // factor) * -(-height // factor) * 4 if factor >= 2 else 0
    kept = int(pixels * min(1.0, limits.max_side / longest) ** 2) * 4
    coefficients = 0
    if image.format in {"JPEG", "MPO"} and image.info.get("progressive"):
        # libjpeg keeps every DCT coefficient of a progressive file (2 bytes each) until the
        # last scan, at full size whatever the draft scale: 3 bytes a pixel in 4:2:0.
        layers = getattr(image, "layer", None) or [(0, 1, 1, 0)]
        h_max = max(layer[1] for layer in layers) or 1
        v_max = max(layer[2] for layer in layers) or 1
        full = full_size[0] * full_size[1]
        coefficients = sum(2 * full * layer[1] * layer[2] // (h_max * v_max) for layer in layers)
    # Pictures live in blocks of up to 16 MiB, and freed memory is not all given back at once.
    slack = decoded // 10 + 8 * 1024 * 1024
    return decoded + reduced + kept + coefficients + slack


def _draft(image: Image.Image, max_side: int) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale: far less work and memory for big photos.

    Only as far as the longest side stays at least three quarters of what we keep, so a 12 MP
    phone photo (4032 px) comes out at 2016 px while a 3000 px one is decoded whole.
    """
    longest = max(image.size)
    if longest <= max_side:
        return
    for scale in (8, 4, 2):
        if longest / scale >= max_side * 0.75:
            # Rounded down: Pillow picks the largest scale that still gives at least this size,
            # and a side rounded up (5475 / 4 → 1369) would make it fall back to 1/2.
            image.draft("RGB", (image.width // scale, image.height // scale))
            return


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """Longest side ≤ max_side: whole-number box reduction first, a resample for the rest."""
    factor = max(image.size) // max_side
    if max(image.size) > max_side and factor >= 2:
        image = image.reduce(factor)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC, reducing_gap=None)
    return image


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in {"RGBA", "LA", "P"}:
        # Transparent areas become white, as a printed photo would be.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    # No exif=, no icc_profile=: the new file carries pixels only.
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _orientation_and_gps(image: Image.Image) -> tuple[int, tuple[float, float] | None]:
    """The EXIF orientation (1: as stored) and GPS position, each as far as it can be read.

    Pillow's EXIF reader meets damaged blocks with many kinds of error (struct.error,
    TypeError, KeyError, SyntaxError, ValueError …), and EXIF is never a reason to refuse a
    photo, so any error here means "not known". Nothing is written back: ImageOps.exif_transpose
    re-serialises the EXIF after turning, which is where malformed tags used to blow up.
    """
    try:
        exif = image.getexif()
        orientation = exif.get(ORIENTATION, 1)
    except Exception:
        return 1, None
    if type(orientation) is not int or orientation not in UPRIGHT:  # text, rationals, 0, 9 …
        orientation = 1
    try:
        return orientation, _gps(exif.get_ifd(GPS_IFD))
    except Exception:
        return orientation, None


def _gps(gps: dict[int, object]) -> tuple[float, float] | None:
    try:
        lat = _degrees(gps[2], gps.get(1, "N"))
        lon = _degrees(gps[4], gps.get(3, "E"))
    except (KeyError, TypeError, ValueError, ArithmeticError, IndexError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat, lon) == (0.0, 0.0):
        return None
    return round(lat, 6), round(lon, 6)


def _degrees(value: Any, ref: object) -> float:
    degrees, minutes, seconds = (float(part) for part in value)
    sign = -1.0 if str(ref).upper() in {"S", "W"} else 1.0
    return sign * (degrees + minutes / 60 + seconds / 3600)
