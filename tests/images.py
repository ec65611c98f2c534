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


def png_bomb(width: int, height: int, *, rgb: bool = False) -> bytes:
    """A tiny file that claims a huge image: a valid header and one compressed zero row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
        )

    colour = 2 if rgb else 0  # PNG colour type: RGB or grey
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, colour, 0, 0, 0])
    rows = zlib.compress(b"\x00" * (width * (3 if rgb else 1) + 1), 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def exif_block(
    entries: list[tuple[int, int, int, bytes]],
    gps: list[tuple[int, int, int, bytes]] | None = None,
) -> bytes:
    """A hand-built big-endian EXIF block: (tag, type, count, value bytes) for IFD0 and GPS.

    Lets a test write what Pillow's own writer never would, such as a tag with the wrong type.
    Values of up to 4 bytes are stored in the entry, longer ones after the IFDs, as TIFF does.
    """
    ifds = [list(entries)] + ([list(gps)] if gps is not None else [])
    sizes = [2 + 12 * (len(ifd) + (i == 0 and gps is not None)) + 4 for i, ifd in enumerate(ifds)]
    data_at = 8 + sum(sizes)
    out, data = b"", b""
    for i, ifd in enumerate(ifds):
        if i == 0 and gps is not None:
            ifd.append((0x8825, 4, 1, (8 + sizes[0]).to_bytes(4, "big")))
        out += len(ifd).to_bytes(2, "big")
        for tag, kind, count, value in ifd:
            if len(value) > 4:
                stored = (data_at + len(data)).to_bytes(4, "big")
                data += value + b"\x00" * (len(value) % 2)
            else:
                stored = value.ljust(4, b"\x00")
            out += tag.to_bytes(2, "big") + kind.to_bytes(2, "big") + count.to_bytes(4, "big")
            out += stored
        out += (0).to_bytes(4, "big")
    return b"Exif\x00\x00MM\x00\x2a" + (8).to_bytes(4, "big") + out + data


def rationals(*pairs: tuple[int, int]) -> bytes:
    return b"".join(n.to_bytes(4, "big") + d.to_bytes(4, "big") for n, d in pairs)


# Markers a JPEG needs to show pixels: SOI, EOI, SOF0-2, DHT, DQT, DRI, SOS, RST0-7, and APP0
# for the JFIF header. Anything else (APP1 EXIF/XMP, APP2 ICC, APP13 IPTC, COM ...) is metadata.
PIXEL_MARKERS = frozenset({0xD8, 0xD9, 0xC0, 0xC1, 0xC2, 0xC4, 0xDB, 0xDD, 0xDA, 0xE0}) | set(
    range(0xD0, 0xD8)
)


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """Every marker of a JPEG file in order, with its payload, walked the way a decoder does.

    Marker segments are followed by their length; after SOS the entropy-coded data is skipped
    up to the next real marker (0xFF not followed by 0x00 or RSTn), so a COM or APPn between
    scans or before EOI is found too. Raises ValueError on anything that is not a well-formed
    JPEG, including bytes after EOI.
    """
    if data[:2] != b"\xff\xd8":
        raise ValueError("no SOI")
    segments: list[tuple[int, bytes]] = [(0xD8, b"")]
    i = 2
    while True:
        if i >= len(data) or data[i] != 0xFF:
            raise ValueError(f"expected a marker at byte {i}")
        while i < len(data) and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= len(data):
            raise ValueError("file ends inside a marker")
        marker = data[i]
        i += 1
        if marker == 0xD9:
            segments.append((marker, b""))
            if i != len(data):
                raise ValueError(f"{len(data) - i} bytes after EOI")
            return segments
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            segments.append((marker, b""))
            continue
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2 or i + length > len(data):
            raise ValueError(f"bad length {length} for marker {marker:#04x} at byte {i}")
        segments.append((marker, data[i + 2 : i + length]))
        i += length
        if marker == 0xDA:  # entropy-coded data until the next marker
            while True:
                i = data.find(b"\xff", i)
                if i < 0:
                    raise ValueError("scan data runs to the end of the file without EOI")
                following = data[i + 1] if i + 1 < len(data) else 0xD9
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    i += 2
                    continue
                break


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file, in order (to check a test input holds what it claims)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    kinds, i = [], 8
    while i < len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        kinds.append(data[i + 4 : i + 8])
        i += 12 + length
    return kinds


def jpeg_claiming(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A small JPEG whose frame header claims `width`×`height`: what a decoder would be asked."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG", progressive=progressive)
    data = bytearray(out.getvalue())
    offset = 2
    for marker, payload in jpeg_segments(bytes(data))[1:]:
        if marker in (0xC0, 0xC2):  # SOF0, SOF2: length, precision, height, width
            data[offset + 5 : offset + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
            return bytes(data)
        offset += 4 + len(payload)
    raise AssertionError("no frame header")
