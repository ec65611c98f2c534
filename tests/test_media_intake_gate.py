"""Item 2 of the hardening issue: nothing is fetched, decoded or stored for a sender before the
engine knows this person may send it at this step; what drafts leave behind is collected."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bot.app import Linli
from handlers.messages import FileRef, Kind
from models import Role
from services.media import LocalStorage
from services.media.garbage import MediaCollector
from tests.dialog import Dialog, texts
from tests.images import photo
from tests.report_cast import hire, join, send_photo


def stored_files(linli: Linli) -> set[str]:
    root = Path(linli.settings.report.media_dir)
    return {p.name for p in root.rglob("*") if p.is_file()}


async def submit_photo_draft(dialog: Dialog, who: str) -> None:
    """From "Photo 1 of 4 received" to a submitted report."""
    await dialog.press(who, "Done")
    await dialog.press(who, "Garbage pile")
    await dialog.press(who, "My building")
    await dialog.press(who, "Skip")
    reply = await dialog.say(who, "Bags by the door")
    if "Mine is different" in [o.label for m in reply.messages for o in m.options]:
        await dialog.press(who, "Mine is different")
    assert "is in" in texts(await dialog.press(who, "Submit"))


async def test_a_stranger_s_photo_is_not_fetched(linli: Linli) -> None:
    dialog = Dialog(linli)
    reply = await send_photo(dialog, "eve", photo(), ref="eve-1")
    assert "Please join the community first" in texts(reply)
    assert dialog.channel.fetched == []
    assert stored_files(linli) == set()


async def test_a_photo_at_a_step_that_asks_for_something_else_is_not_fetched(
    linli: Linli,
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await dialog.say("amy", "/report")
    await dialog.press("amy", "Continue without a photo")
    reply = await send_photo(dialog, "amy", photo(), ref="at-category")
    assert "What kind of problem is it?" in texts(reply)
    assert dialog.channel.fetched == []
    assert stored_files(linli) == set()


async def test_a_redelivered_photo_is_fetched_once(linli: Linli) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    dialog.channel.files["album-1"] = photo()
    update = dialog.channel.incoming(
        "amy", kind=Kind.PHOTO, photo=FileRef("album-1"), key="photo-update"
    )
    first = await linli.dialogue.handle(update)
    assert "Photo 1 of 4 received" in texts(first)
    first.sent()
    # The same update key again: recognised as handled before anything is downloaded.
    again = await linli.dialogue.handle(update)
    assert again.outcome == "duplicate"
    assert dialog.channel.fetched == ["album-1"]


async def test_residents_with_nothing_open_and_workers_asked_for_a_photo_are_fetched(
    linli: Linli,
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    reply = await send_photo(dialog, "amy", photo(), ref="start")
    assert "Photo 1 of 4 received" in texts(reply)
    assert dialog.channel.fetched == ["start"]
    await submit_photo_draft(dialog, "amy")
    await dialog.press("gus", "Accept")
    await dialog.press("gus", "Resolved")
    reply = await send_photo(dialog, "gus", photo(800, 600), ref="after")
    assert "What was done?" in texts(reply)
    assert dialog.channel.fetched == ["start", "after"]


def age(linli: Linli, days: float) -> None:
    """Make every stored file look `days` old (file ages are wall-clock facts)."""
    past = time.time() - days * 86400
    for path in Path(linli.settings.report.media_dir).rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))


async def collect(linli: Linli) -> int:
    async with linli.transaction() as session:
        return await MediaCollector(LocalStorage(linli.settings.report.media_dir)).collect(session)


async def test_files_of_cancelled_drafts_are_collected_after_the_grace_period(
    linli: Linli,
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await join(dialog, "bob", room="401")
    shared = photo(1024, 768)
    # Amy submits a report with a photo; Bob sends the very same picture, then cancels.
    await send_photo(dialog, "amy", shared, ref="amy-photo")
    await submit_photo_draft(dialog, "amy")
    kept = stored_files(linli)
    await send_photo(dialog, "bob", shared, ref="bob-same")
    await send_photo(dialog, "bob", photo(640, 480), ref="bob-other")
    await dialog.press("bob", "Cancel")
    everything = stored_files(linli)
    orphans = everything - kept
    assert len(kept) == 2 and len(orphans) == 2, (kept, everything)  # photo + thumbnail each

    assert await collect(linli) == 0  # young files wait for the grace period
    assert stored_files(linli) == everything
    age(linli, days=2)
    assert await collect(linli) == 2
    assert stored_files(linli) == kept  # the shared photo stays with Amy's report


async def test_a_draft_in_progress_keeps_its_photos(linli: Linli) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy")
    await send_photo(dialog, "amy", photo(), ref="draft")
    draft = stored_files(linli)
    assert len(draft) == 2
    age(linli, days=2)
    assert await collect(linli) == 0
    assert stored_files(linli) == draft
