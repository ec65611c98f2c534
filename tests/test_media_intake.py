"""Media intake under a burst: photos are fetched and decoded a few at a time (issue 8, item 2).

The interleavings are forced with events, not sleeps: each fetch waits at a gate the test
opens, so the test decides when a photo may go on and checks who got in meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from bot.app import assemble
from bot.config import ConfigError
from handlers.messages import ChatRef, FileRef, Incoming, Kind, Sender
from handlers.reports.intake import MediaIntake
from services.media import DecodeBudget, LocalStorage, MediaLimits, MediaRejected, process_photo
from tests.conftest import settings_for
from tests.images import jpeg_claiming, photo, png_bomb


class GatedFetch:
    """A channel's download, held at a gate per file; counts what is in flight."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.gates = {ref: asyncio.Event() for ref in files}
        self.entered: dict[str, asyncio.Event] = {ref: asyncio.Event() for ref in files}
        self.order: list[str] = []
        self.in_flight = 0  # from the start of a fetch to the end of its intake call
        self.most_in_flight = 0

    async def __call__(self, ref: FileRef, limit: int) -> bytes:
        self.order.append(ref.file_ref)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.entered[ref.file_ref].set()
        await self.gates[ref.file_ref].wait()
        return self.files[ref.file_ref]


def incoming(kind: Kind, ref: str, who: int) -> Incoming:
    file = FileRef(ref)
    return Incoming(
        chat=ChatRef("test", str(who)),
        sender=Sender(str(who)),
        kind=kind,
        photo=file if kind is Kind.PHOTO else None,
        voice=file if kind is Kind.VOICE else None,
    )


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_photos_are_fetched_and_decoded_at_most_limit_at_a_time(
    tmp_path: Path, limit: int
) -> None:
    refs = [f"photo-{i}" for i in range(6)]
    fetch = GatedFetch({ref: photo(320 + 16 * i, 240) for i, ref in enumerate(refs)})
    intake = MediaIntake(
        LocalStorage(tmp_path), {"test": fetch}, MediaLimits(), 1024, max_concurrent_decodes=limit
    )
    done: dict[str, Incoming] = {}

    async def send(ref: str, who: int) -> None:
        done[ref] = await intake(incoming(Kind.PHOTO, ref, who))
        fetch.in_flight -= 1

    tasks = [asyncio.create_task(send(ref, i)) for i, ref in enumerate(refs)]
    await fetch.entered[refs[limit - 1]].wait()
    # Every task has run up to its first wait by now: the first `limit` are fetching, the
    # others wait for a slot and have not asked for their bytes.
    assert fetch.order == refs[:limit]
    for i, ref in enumerate(refs):
        fetch.gates[ref].set()  # this download ends; the photo is decoded and stored
        await tasks[i]
        if i + limit < len(refs):
            # Its slot goes to the next photo in line, and to that one only.
            await fetch.entered[refs[i + limit]].wait()
        assert fetch.order == refs[: min(len(refs), i + 1 + limit)]
    assert fetch.most_in_flight == limit
    assert all(done[ref].media is not None and done[ref].media.kind == "photo" for ref in refs)
    assert len({done[ref].media.key for ref in refs}) == len(refs)


async def test_a_voice_note_does_not_wait_for_a_photo_slot(tmp_path: Path) -> None:
    fetch = GatedFetch({"photo-0": photo(320, 240), "photo-1": photo(330, 240), "voice": b"OggS"})
    intake = MediaIntake(
        LocalStorage(tmp_path), {"test": fetch}, MediaLimits(), 1024, max_concurrent_decodes=1
    )
    first = asyncio.create_task(intake(incoming(Kind.PHOTO, "photo-0", 1)))
    second = asyncio.create_task(intake(incoming(Kind.PHOTO, "photo-1", 2)))
    await fetch.entered["photo-0"].wait()
    fetch.gates["voice"].set()
    voice = await intake(incoming(Kind.VOICE, "voice", 3))
    assert voice.media is not None and voice.media.kind == "voice"
    assert fetch.order == ["photo-0", "voice"]  # the second photo still waits for its slot
    fetch.gates["photo-0"].set()
    fetch.gates["photo-1"].set()
    assert (await first).media is not None and (await second).media is not None


def test_the_bound_must_be_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MediaIntake(LocalStorage(tmp_path), {}, MediaLimits(), 1024, max_concurrent_decodes=0)


async def test_max_concurrent_decodes_is_a_report_setting(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'linli.db'}"
    default = assemble(settings_for(url))
    configured = assemble(settings_for(url, LINLI_REPORT__MAX_CONCURRENT_DECODES="3"))
    try:
        assert default.dialogue.intake.max_concurrent_decodes == 2
        assert configured.dialogue.intake.max_concurrent_decodes == 3
    finally:
        await default.close()
        await configured.close()
    with pytest.raises(ConfigError, match=r"report\.max_concurrent_decodes"):
        settings_for(url, LINLI_REPORT__MAX_CONCURRENT_DECODES="0")


def wait_until(condition, what: str) -> None:
    """Wait for another thread to reach a state (it blocks on a lock: no event to wait on)."""
    for _ in range(5000):
        if condition():
            return
        threading.Event().wait(0.001)
    raise AssertionError(f"never: {what}")


def test_the_decode_budget_waits_for_room_and_serves_claims_in_order() -> None:
    budget = DecodeBudget(100)
    log: list[str] = []
    release = {name: threading.Event() for name in ("a", "big", "small")}

    def claim(name: str, amount: int) -> None:
        with budget.claim(amount):
            log.append(f"{name} in ({budget.free} free)")
            release[name].wait(10)
        log.append(f"{name} out")

    a = threading.Thread(target=claim, args=("a", 60))
    a.start()
    wait_until(lambda: log == ["a in (40 free)"], "a decodes")
    big = threading.Thread(target=claim, args=("big", 250))  # more than all: waits for all
    big.start()
    wait_until(lambda: budget.waiting == 1, "big waits")
    small = threading.Thread(target=claim, args=("small", 30))  # would fit, but comes later
    small.start()
    wait_until(lambda: budget.waiting == 2, "small waits too")
    assert log == ["a in (40 free)"]
    release["a"].set()
    wait_until(lambda: len(log) == 3, "big decodes alone")
    assert log == ["a in (40 free)", "a out", "big in (0 free)"]
    assert budget.waiting == 1
    release["big"].set()
    release["small"].set()
    for thread in (a, big, small):
        thread.join(10)
    assert log[3:] == ["big out", "small in (70 free)", "small out"]
    assert budget.free == 100 and budget.waiting == 0


@pytest.mark.parametrize(
    ("data", "refused"),
    [
        # Decoded whole at 4 bytes a pixel, with its shrunk copies: ~190 MB.
        (png_bomb(7000, 5000, rgb=True), True),
        # ~125 MB: allowed (this file then turns out to have one row of the 20 million pixels).
        (png_bomb(5000, 4000, rgb=True), False),
        # JPEGs are decoded at 1/4 scale: ~30 MB, whatever the size within max_pixels.
        (jpeg_claiming(7300, 5475), False),
        # A progressive one also keeps its DCT coefficients at full size: ~140 MB at 40 MP,
        (jpeg_claiming(7300, 5475, progressive=True), True),
        # ... ~115 MB at 32 MP.
        (jpeg_claiming(6500, 4900, progressive=True), False),
    ],
    ids=["png-35mp", "png-20mp", "jpeg-40mp", "progressive-jpeg-40mp", "progressive-jpeg-32mp"],
)
def test_a_picture_too_dear_to_decode_is_refused_before_decoding(
    data: bytes, refused: bool
) -> None:
    limits = MediaLimits()
    assert limits.max_decode_bytes == 128 * 1024 * 1024
    try:
        process_photo(data, limits, DecodeBudget(limits.max_decode_bytes))
        reason = None
    except MediaRejected as rejected:
        reason = rejected.reason
    assert (reason == "too_many_pixels") is refused
