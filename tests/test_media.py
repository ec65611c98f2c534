"""The photo pipeline: bad files refused politely, metadata really gone, orientation kept."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import pytest
from PIL import Image

from services.media import LocalStorage, MediaLimits, MediaRejected, process_photo
from tests.images import camera_exif, photo, png_bomb


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
