"""Mutated EXIF blocks: a photo comes back, or a polite refusal; never an error nobody expects.

Phones, editors and messaging apps write EXIF in many dialects, and some of it arrives damaged.
A resident whose photo has a garbled EXIF block must get their report (or the "damaged photo"
answer), never the generic apology.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from services.media import MediaRejected, process_photo
from tests.images import exif_block, jpeg_segments, rationals
from tests.test_media import assert_pixels_only

# Pillow warns about each damaged EXIF tag it skips; damaged EXIF is what these tests feed it.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")

BASE = Image.linear_gradient("L").resize((48, 32)).convert("RGB")


# The orientation entry as a file may hold it: mostly SHORT 1-8 (2-8 make us turn the picture,
# which is when Pillow used to write the EXIF back), else any SHORT, else any type, count, value.
def _short(value: int) -> tuple[int, int, bytes]:
    return (3, 1, value.to_bytes(2, "big"))


orientations = st.one_of(
    st.builds(_short, st.integers(1, 8)),
    st.builds(_short, st.integers(1, 8)),
    st.builds(_short, st.integers(0, 65535)),
    st.tuples(
        st.integers(0, 20),  # TIFF type: 1-12 are defined, the rest are not
        st.integers(0, 2**32 - 1),  # count
        st.binary(min_size=4, max_size=4),  # the value, or where it would be
    ),
)


def exif_jpeg(orientation: tuple[int, int, bytes]) -> bytes:
    kind, count, value = orientation
    exif = exif_block(
        [
            (0x010F, 2, 11, b"PhoneMaker\x00"),  # Make
            (0x0110, 2, 8, b"Model X\x00"),  # Model
            (0x0112, kind, count, value),  # Orientation
            (0x0132, 2, 20, b"2026:11:20 08:15:00\x00"),  # DateTime
        ],
        gps=[
            (1, 2, 2, b"N\x00"),
            (2, 5, 3, rationals((31, 1), (13, 1), (30, 1))),
            (3, 2, 2, b"E\x00"),
            (4, 5, 3, rationals((121, 1), (28, 1), (12, 1))),
        ],
    )
    out = io.BytesIO()
    BASE.save(out, "JPEG", quality=70, exif=exif)
    return out.getvalue()


# Where each entry's type (its low byte) sits, from the TIFF header on: IFD0 starts at 8 with
# five entries (the GPS pointer last), the GPS IFD follows it with four.
ENTRY_TYPES = [8 + 2 + 12 * i + 3 for i in range(5)] + [74 + 2 + 12 * i + 3 for i in range(4)]


def app1_payload(data: bytes) -> tuple[int, int]:
    """Start and end of the first APP1 segment's payload (after its two length bytes)."""
    offset = 2
    for marker, payload in jpeg_segments(data)[1:]:
        if marker == 0xE1:
            return offset + 4, offset + 4 + len(payload)
        offset += 4 + len(payload)
    raise AssertionError("no APP1 segment")


@st.composite
def mutated_exif_jpegs(draw: st.DrawFn) -> bytes:
    data = bytearray(exif_jpeg(draw(orientations)))
    start, end = app1_payload(bytes(data))
    tiff = start + 6  # after "Exif\0\0": the TIFF header, IFDs and values
    # Flips that land in an entry's type are the ones that upset readers most: aim some there
    # (a rational read as text, a string read as numbers), and scatter the others anywhere.
    retypes = st.tuples(st.sampled_from(ENTRY_TYPES), st.integers(1, 12))
    for at, kind in draw(st.lists(retypes, max_size=3)):
        data[tiff + at] = kind
    flips = st.tuples(st.integers(tiff, end - 1), st.integers(0, 255))
    for at, value in draw(st.lists(flips, max_size=8)):
        data[at] = value
    cut = draw(st.sampled_from(["none", "none", "segment", "file"]))
    if cut == "segment":  # a shorter APP1 with a consistent length: the JPEG stays whole
        keep = draw(st.integers(start, end - 1))
        data[start - 2 : start] = (keep - start + 2).to_bytes(2, "big")
        del data[keep:end]
    elif cut == "file":  # the upload stopped inside the EXIF block
        del data[draw(st.integers(start, end - 1)) :]
    return bytes(data)


def retyped(orientation: int, entry: int, kind: int) -> bytes:
    """A photo to turn, whose EXIF entry number `entry` claims TIFF type `kind`."""
    data = bytearray(exif_jpeg(_short(orientation)))
    data[app1_payload(bytes(data))[0] + 6 + ENTRY_TYPES[entry]] = kind
    return bytes(data)


@example(retyped(6, 0, 5))  # Make read as RATIONAL: AttributeError when written back
@example(retyped(8, 6, 2))  # GPS latitude read as ASCII: TypeError when written back
@example(retyped(3, 5, 3))  # GPS latitude ref read as SHORT: TypeError when written back
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is a real regression
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutated_exif_jpegs())
def test_mutated_exif_gives_a_photo_or_a_polite_refusal(data: bytes) -> None:
    try:
        result = process_photo(data)
    except MediaRejected as rejected:
        assert rejected.reason in {"broken", "not_an_image"}
        return
    assert {(result.width, result.height)} <= {(48, 32), (32, 48)}  # upright or as stored
    assert_pixels_only(result.jpeg)
    assert_pixels_only(result.thumbnail)
    assert result.gps is None or (-90 <= result.gps[0] <= 90 and -180 <= result.gps[1] <= 180)
