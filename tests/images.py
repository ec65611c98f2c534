"""Pictures for tests: photo-like gradients, camera EXIF with GPS, and hostile files."""

from __future__ import annotations

import io
import zlib

from PIL import Image

GPS_IFD = 0x8825


def photo(
    width: int = 1600, height: int = 1200, *, exif: Image.Exif | None = None, fmt: str = "JPEG"
) -> bytes:
    """A photo-like picture (a gradient with a marker) so hashes and orientation mean something."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image.paste((255, 0, 0), (0, 0, width // 4, height // 4))  # red marker, top-left
    out = io.BytesIO()
    image.save(out, fmt, exif=exif) if exif is not None else image.save(out, fmt)
    return out.getvalue()


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0132] = "2026:11:20 08:15:00"  # DateTime
    exif[0x0112] = orientation
    exif[GPS_IFD] = {1: "N", 2: (31.0, 13.0, 30.0), 3: "E", 4: (121.0, 28.0, 12.0)}
    return exif


def png_bomb(width: int, height: int) -> bytes:
    """A tiny file that claims a huge image: a valid header and one compressed zero row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
        )

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    rows = zlib.compress(b"\x00" * (width + 1), 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
