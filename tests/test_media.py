"""The photo pipeline: bad files refused politely, metadata really gone, orientation kept."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import imagehash
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from services.media import LocalStorage, MediaLimits, MediaRejected, process_photo
from tests.images import (
    PIXEL_MARKERS,
    camera_exif,
    exif_block,
    jpeg_segments,
    photo,
    png_bomb,
    png_chunks,
    rationals,
)

# Pillow warns about each damaged EXIF tag it skips; damaged EXIF is what these tests feed it.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")


def test_metadata_is_stripped_and_gps_read_first() -> None:
    result = process_photo(photo(exif=camera_exif()))
    assert result.gps == pytest.approx((31.225, 121.47), abs=1e-3)
    stored = Image.open(io.BytesIO(result.jpeg))
    assert stored.format == "JPEG"
    assert dict(stored.getexif()) == {}
    assert b"PhoneMaker" not in result.jpeg and b"Model X" not in result.jpeg
    assert b"Exif" not in result.jpeg[:4096] and "icc_profile" not in stored.info
    thumb = Image.open(io.BytesIO(result.thumbnail))
    assert max(thumb.size) == 320 and dict(thumb.getexif()) == {}


def is_red(pixel: tuple[int, int, int]) -> bool:
    return pixel[0] > 180 and pixel[1] < 90 and pixel[2] < 90


def test_orientation_is_applied_before_stripping() -> None:
    # Orientation 6: the camera was turned; viewers rotate 90° clockwise to show it upright.
    result = process_photo(photo(1600, 1200, exif=camera_exif(orientation=6)))
    upright = Image.open(io.BytesIO(result.jpeg)).convert("RGB")
    assert upright.size == (1200, 1600)
    # The red marker that was top-left is now top-right.
    assert is_red(upright.getpixel((upright.width - 20, 20)))
    assert not is_red(upright.getpixel((20, 20)))


def test_big_photos_shrink_to_2048_and_keep_their_shape() -> None:
    result = process_photo(photo(4032, 3024))
    assert (result.width, result.height) == (2016, 1512)  # halved: longest side ≤ 2048
    wide = process_photo(photo(3000, 1000))
    assert (wide.width, wide.height) == (2048, 683)
    small = process_photo(photo(800, 600))
    assert (small.width, small.height) == (800, 600)


def test_same_picture_same_key_and_close_phash() -> None:
    first = process_photo(photo())
    assert process_photo(photo()).key == first.key
    recompressed = io.BytesIO()
    Image.open(io.BytesIO(photo())).save(recompressed, "JPEG", quality=40)
    similar = process_photo(recompressed.getvalue())
    flipped = io.BytesIO()
    Image.open(io.BytesIO(photo())).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(flipped, "JPEG")
    different = process_photo(flipped.getvalue())
    near = imagehash.hex_to_hash(first.phash) - imagehash.hex_to_hash(similar.phash)
    far = imagehash.hex_to_hash(first.phash) - imagehash.hex_to_hash(different.phash)
    assert near <= 10 < far


def test_png_with_transparency_becomes_jpeg() -> None:
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    result = process_photo(out.getvalue())
    assert Image.open(io.BytesIO(result.jpeg)).getpixel((10, 10)) == pytest.approx(
        (255, 255, 255), abs=3
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (photo()[:5000], "broken"),  # truncated upload
        (b"Dear committee, the lift is broken again.\n" * 50, "not_an_image"),  # text renamed .jpg
        (b"", "not_an_image"),
        (png_bomb(30_000, 30_000), "too_many_pixels"),  # 900 MP in a few hundred bytes
        (png_bomb(8_000, 6_000), "too_many_pixels"),  # 48 MP: over our own 40 MP limit
        (b"\xff\xd8\xff" + b"\x00" * (21 * 1024 * 1024), "too_big"),  # over 20 MB
    ],
)
def test_bad_files_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MediaRejected) as caught:
        process_photo(data)
    assert caught.value.reason == reason


def test_limits_are_configurable() -> None:
    with pytest.raises(MediaRejected):
        process_photo(photo(1000, 1000), MediaLimits(max_pixels=500_000))


def test_local_storage_is_content_addressed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    result = process_photo(photo())
    assert storage.put(result.key, result.jpeg) == result.key
    assert storage.put(result.key, result.jpeg) == result.key  # idempotent
    assert storage.get(result.key) == result.jpeg and storage.exists(result.key)
    assert storage.path(result.key).relative_to(tmp_path / "media").parts[:2] == (
        result.key[:2],
        result.key[2:4],
    )
    leftovers = [p for p in (tmp_path / "media").rglob(".incoming-*")]
    assert leftovers == []
    with pytest.raises(ValueError):
        storage.path("../etc/passwd")


# What a resident's photo may say about them, and must not say to anyone else.
SECRET = "Zhang Wei, flat 1203, +86 138 0000 1203"
SECRET_ZH = "张伟 3号楼1203室"
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>Zhang Wei at home</dc:creator>'
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _picture() -> Image.Image:
    return Image.open(io.BytesIO(photo(640, 480))).convert("RGB")


def jpeg_with_everything() -> bytes:
    out = io.BytesIO()
    _picture().save(
        out,
        "JPEG",
        comment=SECRET.encode(),
        exif=camera_exif(),
        icc_profile=SRGB,
        xmp=XMP,
    )
    data = out.getvalue()
    assert {0xFE, 0xE1, 0xE2} <= {marker for marker, _ in jpeg_segments(data)}
    return data


def png_with_text(chunk: str) -> bytes:
    """A PNG whose text chunks of one kind are named "comment" (Pillow reads it as a comment)."""
    info = PngImagePlugin.PngInfo()
    if chunk == "tEXt":
        info.add_text("comment", SECRET)
        info.add_text("Author", "Zhang Wei at home")
    elif chunk == "zTXt":
        info.add_text("comment", SECRET, zip=True)
        info.add_text("Author", "Zhang Wei at home", zip=True)
    else:
        info.add_itxt("comment", SECRET_ZH, lang="zh-CN", tkey="注释")
        info.add_itxt("Author", "Zhang Wei at home", zip=True)
    out = io.BytesIO()
    _picture().save(out, "PNG", pnginfo=info, exif=camera_exif(), icc_profile=SRGB)
    data = out.getvalue()
    assert png_chunks(data).count(chunk.encode()) == 2 and b"eXIf" in png_chunks(data)
    return data


def png_with_a_long_comment() -> bytes:
    """Over the 65,533 bytes a JPEG COM segment can hold: Pillow refused to save it at all."""
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", (SECRET + "\n") * 2500, zip=True)
    out = io.BytesIO()
    _picture().save(out, "PNG", pnginfo=info)
    return out.getvalue()


def gif_with_comment() -> bytes:
    out = io.BytesIO()
    _picture().save(out, "GIF", comment=SECRET.encode())
    data = out.getvalue()
    assert b"\x21\xfe" in data and SECRET.encode() in data  # a GIF comment extension
    return data


def assert_pixels_only(jpeg: bytes) -> None:
    segments = jpeg_segments(jpeg)
    markers = [marker for marker, _ in segments]
    assert 0xFE not in markers  # COM
    assert set(markers) <= PIXEL_MARKERS, [hex(m) for m in markers]
    # APP0 is the bare JFIF header: 14 bytes, with no embedded thumbnail.
    assert [payload for marker, payload in segments if marker == 0xE0] == [
        b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    ]
    for text in (SECRET.encode(), SECRET_ZH.encode(), b"Zhang Wei", b"PhoneMaker", b"Model X"):
        assert text not in jpeg
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"iCCP", b"Exif", b"http://ns.adobe.com"):
        assert chunk not in jpeg


@pytest.mark.parametrize(
    "make",
    [
        jpeg_with_everything,
        lambda: png_with_text("tEXt"),
        lambda: png_with_text("zTXt"),
        lambda: png_with_text("iTXt"),
        png_with_a_long_comment,
        gif_with_comment,
    ],
    ids=["jpeg-com-exif-icc-xmp", "png-tEXt", "png-zTXt", "png-iTXt", "png-long", "gif-comment"],
)
def test_stored_photo_and_thumbnail_carry_pixels_only(make) -> None:
    result = process_photo(make())
    assert_pixels_only(result.jpeg)
    assert_pixels_only(result.thumbnail)
    assert Image.open(io.BytesIO(result.jpeg)).size == (640, 480)


def test_the_jpeg_walker_finds_what_pillow_hides_inside_a_file() -> None:
    """The check above is only as good as its parser: it must see a COM wherever it is."""
    clean = process_photo(photo(64, 48)).jpeg
    eoi = len(clean) - 2
    com = b"\xff\xfe" + (len(SECRET) + 2).to_bytes(2, "big") + SECRET.encode()
    before_eoi = clean[:eoi] + com + clean[eoi:]
    assert [m for m, _ in jpeg_segments(before_eoi)][-2:] == [0xFE, 0xD9]
    with pytest.raises(ValueError, match="after EOI"):
        jpeg_segments(clean + b"trailing secrets")


def test_an_unreadable_tag_next_to_a_good_orientation_still_turns_the_photo() -> None:
    # XResolution with the type of a string: Pillow reads it but cannot write it back, which
    # used to escape from the rotation as a TypeError (the generic apology).
    exif = exif_block(
        [(0x0112, 3, 1, struct.pack(">H", 6)), (0x011A, 2, 4, b"abc\x00")]  # SHORT 6; ASCII
    )
    out = io.BytesIO()
    _picture().resize((64, 48)).save(out, "JPEG", exif=exif)
    result = process_photo(out.getvalue())
    assert (result.width, result.height) == (48, 64)
    assert_pixels_only(result.jpeg)


@pytest.mark.parametrize(
    "entry",
    [
        (0x0112, 3, 1, struct.pack(">H", 0)),  # not an orientation
        (0x0112, 3, 1, struct.pack(">H", 9)),
        (0x0112, 3, 1, struct.pack(">H", 65535)),
        (0x0112, 2, 2, b"6\x00"),  # the digit as text
        (0x0112, 5, 1, struct.pack(">I", 40)),  # RATIONAL, its data 40 bytes in: past the end
        (0x0112, 3, 1000, struct.pack(">I", 2**31)),  # 1000 values at an absurd offset
    ],
)
def test_a_malformed_orientation_means_no_rotation(entry: tuple[int, int, int, bytes]) -> None:
    out = io.BytesIO()
    _picture().resize((64, 48)).save(out, "JPEG", exif=exif_block([entry]))
    result = process_photo(out.getvalue())
    assert (result.width, result.height) == (64, 48)
    assert_pixels_only(result.jpeg)


@pytest.mark.parametrize(
    "gps",
    [
        [(0x8825, 4, 1, struct.pack(">I", 4000))],  # GPS IFD offset past the end of the block
        [(0x8825, 2, 4, b"abc\x00")],  # GPS pointer that is text
        [(0x8825, 4, 1, struct.pack(">I", 8))],  # GPS IFD that is the main IFD again (a loop)
    ],
)
def test_a_malformed_gps_block_gives_no_location_and_keeps_the_photo(gps) -> None:
    out = io.BytesIO()
    _picture().resize((64, 48)).save(out, "JPEG", exif=exif_block(gps))
    result = process_photo(out.getvalue())
    assert result.gps is None and (result.width, result.height) == (64, 48)


LON = (4, 5, 3, rationals((121, 1), (28, 1), (12, 1)))


@pytest.mark.parametrize(
    "gps",
    [
        [(2, 2, 11, b"thirty-one\x00"), LON],  # latitude as text
        [(2, 5, 2, rationals((31, 1), (13, 1))), LON],  # two numbers, not three
        [(2, 5, 3, rationals((31, 0), (13, 0), (30, 0))), LON],  # zero denominators
        [(2, 5, 3, rationals((91, 1), (0, 1), (0, 1))), LON],  # north of the pole
        [
            (2, 5, 3, rationals((0, 1), (0, 1), (0, 1))),
            (4, 5, 3, rationals((0, 1), (0, 1), (0, 1))),
        ],
        [(2, 5, 3, (2**31).to_bytes(4, "big")), LON],  # data offset far past the end
    ],
)
def test_nonsense_coordinates_give_no_location(gps) -> None:
    out = io.BytesIO()
    _picture().resize((64, 48)).save(out, "JPEG", exif=exif_block([], gps=gps))
    result = process_photo(out.getvalue())
    assert result.gps is None and (result.width, result.height) == (64, 48)
