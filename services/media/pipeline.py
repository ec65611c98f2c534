"""One photo in, a clean JPEG and a thumbnail out (DESIGN.md "Privacy").

The order matters: read the size from the header before decoding anything (a decompression bomb
is refused without allocating it), read GPS from EXIF before it is stripped (to suggest where the
problem is), apply the EXIF orientation (or the re-encoded photo would lie on its side), then
re-encode from pixels only, so no EXIF, GPS, device or time survives.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

JPEG_QUALITY = 82
GPS_IFD = 0x8825


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


def process_photo(data: bytes, limits: MediaLimits = MediaLimits()) -> ProcessedPhoto:
    if len(data) > limits.max_bytes:
        raise MediaRejected("too_big")
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice it; we decide with our own limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        if image.width * image.height > limits.max_pixels:
            raise MediaRejected("too_many_pixels")
        if image.format not in {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "HEIF"}:
            raise MediaRejected("not_an_image")
        gps = _gps(image)
        if image.format in {"JPEG", "MPO"}:
            _draft(image, limits.max_side)
        image.load()
    except MediaRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        reason = (
            "too_many_pixels" if isinstance(exc, Image.DecompressionBombError) else "not_an_image"
        )
        raise MediaRejected(reason) from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise MediaRejected("broken") from exc
    if image.mode not in {"RGB", "RGBA", "L", "LA"}:
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    image = _rgb(_shrink(image, limits.max_side))
    # Rotating after shrinking gives the same picture for a fraction of the work.
    image = ImageOps.exif_transpose(image)
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
            image.draft("RGB", (-(-image.width // scale), -(-image.height // scale)))
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


def _gps(image: Image.Image) -> tuple[float, float] | None:
    try:
        gps = image.getexif().get_ifd(GPS_IFD)
    except Exception:  # malformed EXIF is common and never a reason to refuse a photo
        return None
    try:
        lat = _degrees(gps[2], gps.get(1, "N"))
        lon = _degrees(gps[4], gps.get(3, "E"))
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat, lon) == (0.0, 0.0):
        return None
    return round(lat, 6), round(lon, 6)


def _degrees(value: tuple[float, float, float], ref: str) -> float:
    degrees, minutes, seconds = (float(part) for part in value)
    sign = -1.0 if str(ref).upper() in {"S", "W"} else 1.0
    return sign * (degrees + minutes / 60 + seconds / 3600)
