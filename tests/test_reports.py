"""随手拍 in dialogue, on SQLite and Postgres: the closed loop, duplicates, refusals, the clock."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.app import Linli, report_rules
from handlers.messages import Kind, Reply
from models import AuditEntry, PendingAward, Report, ReportFollower, ReportMedia, Role
from services.points import ledger
from services.points.audit import audit_points
from services.reports import store
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.images import camera_exif, photo, png_bomb
from tests.report_cast import hire, join, person_id, send_photo, send_voice


@pytest.fixture
async def dialog(linli: Linli) -> Dialog:
    return Dialog(linli)


async def the_report(linli: Linli, number: str = "R-2026-000001") -> Report:
    async with linli.sessions() as session:
        report = await store.by_number(session, number)
        assert report is not None
        return report


async def events(linli: Linli, report_id: int) -> list[str]:
    async with linli.sessions() as session:
        return [e.action for e in await store.timeline(session, report_id)]


async def draft_without_photo(
    dialog: Dialog, who: str, description: str, *, category: str = "Something else"
) -> Reply:
    """/report → no photo → category → own building → no detail → description."""
    await dialog.say(who, "/report")
    await dialog.press(who, "Continue without a photo")
    await dialog.press(who, category)
    await dialog.press(who, "My building")
    await dialog.press(who, "Skip")
    return await dialog.say(who, description)


async def report_without_photo(
    dialog: Dialog, who: str, description: str, *, category: str = "Something else"
) -> str:
    """A draft without a photo, past any likely duplicates, submitted: its public number."""
    reply = await draft_without_photo(dialog, who, description, category=category)
    if "Mine is different" in [o.label for m in reply.messages for o in m.options]:
        reply = await dialog.press(who, "Mine is different")
    assert "Please check your report" in texts(reply), texts(reply)
    submitted = texts(await dialog.press(who, "Submit"))
    assert "Your report R-" in submitted, submitted
    return submitted.split("Your report ")[1].split(" ")[0]


async def test_the_whole_loop_from_photo_to_rating(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    # A photo sent with nothing open starts a report; as a file it still has its EXIF GPS.
    reply = await send_photo(dialog, "amy", photo(exif=camera_exif()), as_file=True)
    assert "Photo 1 of 4 received" in texts(reply)
    assert "Photo 2 of 4 received" in texts(await send_photo(dialog, "amy", photo(640, 480)))
    assert "Voice note kept" in texts(await send_voice(dialog, "amy", b"OggS\x00leak"))
    await dialog.press("amy", "Done")
    await dialog.press("amy", "Garbage pile")
    place = dialog.seen("amy")[-1]
    assert [o.label for o in place.options] == [
        "My building: Building 2",
        "east gate",
        "bike shed",
        "Where the photo was taken",
    ]
    await dialog.press("amy", "Where the photo was taken")
    await dialog.say("amy", "by the bins")
    card = texts(await dialog.say("amy", "Bags piled up for three days"))
    assert "Garbage pile" in card and "31.22" in card and "by the bins" in card
    submitted = texts(await dialog.press("amy", "Submit"))
    assert (
        "R-2026-000001 is in" in submitted
        and "now with your grid worker, to be fixed by" in submitted
    )

    dispatch = dialog.channel.outbox["gus"][-1]
    assert "New report for you to handle" in dispatch.text and "R-2026-000001" in dispatch.text
    assert "Amy" not in dispatch.text  # the reporter stays anonymous to workers
    assert dispatch.image_key is not None
    assert [a.kind for a in dispatch.attachments] == ["photo", "voice"]
    assert [o.label for o in dispatch.options] == [
        "Accept",
        "Reassign",
        "Reject as not ours",
        "Mark duplicate",
    ]
    # What was stored carries no EXIF, GPS or camera name.
    storage = report_rules(linli.settings).storage
    stored = await asyncio.to_thread(storage.get, dispatch.image_key)
    assert b"PhoneMaker" not in stored and dict(Image.open(io.BytesIO(stored)).getexif()) == {}

    await dialog.press("gus", "Accept")
    assert "was accepted" in dialog.notices("amy")[-1]
    await dialog.press("gus", "Progress update")
    await dialog.say("gus", "Cleaning crew booked for 3 pm")
    assert "Cleaning crew booked" in dialog.notices("amy")[-1]
    await dialog.press("gus", "Resolved")
    await send_photo(dialog, "gus", photo(900, 700))
    done = texts(await dialog.say("gus", "All bags collected"))
    assert "resolved" in done

    rating = dialog.channel.outbox["amy"][-1]
    assert "All bags collected" in rating.text and rating.image_key is not None
    assert [o.label for o in rating.options][-1] == "Not fixed"
    thanks = texts(await dialog.press("amy", "★★★★", source=[rating]))
    assert "now closed" in thanks
    await dialog.say("amy", "Quick and friendly, thanks!")
    assert "commented on R-2026-000001: Quick and friendly" in dialog.notices("gus")[-1]

    report = await the_report(linli)
    assert (report.state, report.rating, report.rating_comment) == (
        "closed",
        4,
        "Quick and friendly, thanks!",
    )
    assert report.latitude == pytest.approx(31.225, abs=1e-3)
    assert await events(linli, report.id) == [
        "submit",
        "assign",
        "accept",
        "note",
        "resolve",
        "confirm",
    ]
    async with linli.sessions() as session:
        kinds = sorted((await session.scalars(select(ReportMedia.kind))).all())
        award = await session.scalar(select(PendingAward))
    assert kinds == ["after", "before", "before", "voice"]
    assert award is not None and (award.points, award.reason) == (3, "report.accepted")


async def test_my_reports_lists_status_and_timeline(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    number = await report_without_photo(dialog, "amy", "The bench is broken")
    listing = await dialog.say("amy", "/myreports")
    assert f"{number} · Something else · Building 2 · assigned" in texts(listing)
    details = texts(await dialog.press("amy", number))
    assert "The bench is broken" in details and "reported" in details and "assigned" in details


async def test_duplicate_found_by_category_and_building(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    await join(dialog, "bob", room="401")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    first = await report_without_photo(dialog, "amy", "The bench by the door is broken")
    offer = await draft_without_photo(dialog, "bob", "Bench broken")
    assert "Someone may have reported this already" in texts(offer) and first in texts(offer)
    assert "Amy" not in texts(offer)
    followed = texts(await dialog.press("bob", f"Same as {first}"))
    assert f"You now follow {first} (+1)" in followed
    async with linli.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Report)) == 1
        assert await session.scalar(select(func.count()).select_from(ReportFollower)) == 1
    # A follower hears what the reporter hears.
    await dialog.press("gus", "Accept")
    assert "was accepted" in dialog.notices("bob")[-1]
    assert f"{first} · Something else" in texts(await dialog.say("bob", "/myreports"))


async def test_duplicate_found_by_photo_hash(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    await join(dialog, "cy", building="Building 3", room="101")
    await hire(dialog, "pat", Role.PROPERTY)
    await send_photo(dialog, "amy", photo())
    await dialog.press("amy", "Done")
    await dialog.press("amy", "Broken light")
    await dialog.press("amy", "east gate")
    await dialog.press("amy", "Skip")
    await dialog.press("amy", "Skip")
    await dialog.press("amy", "Submit")
    # The same scene, recompressed by another phone, reported under another category.
    again = io.BytesIO()
    Image.open(io.BytesIO(photo())).save(again, "JPEG", quality=45)
    await send_photo(dialog, "cy", again.getvalue())
    await dialog.press("cy", "Done")
    await dialog.press("cy", "Damaged road")
    await dialog.press("cy", "east gate")
    await dialog.press("cy", "Skip")
    offer = await dialog.press("cy", "Skip")
    assert "Someone may have reported this already" in texts(offer)
    assert "R-2026-000001 · Broken light · east gate" in texts(offer)
    mine = await dialog.press("cy", "Mine is different")
    assert "Please check your report" in texts(mine)
    assert "R-2026-000002 is in" in texts(await dialog.press("cy", "Submit"))


async def test_bad_files_get_polite_answers_and_the_draft_survives(
    linli: Linli, dialog: Dialog
) -> None:
    await join(dialog, "amy")
    await dialog.say("amy", "/report")
    cases = [
        (photo()[:4000], "damaged or incomplete"),
        (png_bomb(30_000, 30_000), "too large to handle"),
        (b"Dear committee, the lift is broken.\n" * 40, "not a photo we can read"),
        (b"\xff\xd8\xff" + b"\x00" * (21 * 1024 * 1024), "too big (the limit is 20 MB)"),
    ]
    for data, answer in cases:
        reply = await send_photo(dialog, "amy", data)
        assert answer in texts(reply), texts(reply)
    video = await dialog.say("amy", "", kind=Kind.OTHER, other_kind="video")
    assert "Videos cannot be attached" in texts(video)
    assert "Voice note kept" in texts(await send_voice(dialog, "amy", b"OggS\x00voice"))
    assert "Photo 1 of 4" in texts(await send_photo(dialog, "amy", photo()))
    await dialog.press("amy", "Done")
    await dialog.press("amy", "Water leak")
    await dialog.press("amy", "My building")
    await dialog.press("amy", "Skip")
    too_long = await dialog.say("amy", "x" * 1001)
    assert "has 1001 characters; please keep it under 1000" in texts(too_long)
    confirm = await dialog.say("amy", "Water drips from the ceiling")
    assert "Photos: 1 · voice notes: 1" in texts(confirm)
    await dialog.press("amy", "Submit")
    async with linli.sessions() as session:
        kinds = sorted((await session.scalars(select(ReportMedia.kind))).all())
    assert kinds == ["before", "voice"]  # the refused files were never attached


async def test_edit_before_submitting(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    await dialog.say("amy", "/report")
    await dialog.press("amy", "Continue without a photo")
    category = dialog.seen("amy")[-1]
    assert [o.label for o in category.options] == ["Something else"]
    assert "need a photo" in category.text
    await dialog.press("amy", "Something else")
    await dialog.press("amy", "bike shed")
    await dialog.press("amy", "Skip")
    await dialog.say("amy", "Flat tyres everywhere")
    await dialog.press("amy", "Edit")
    await dialog.press("amy", "Description")
    confirm = await dialog.say("amy", "Abandoned bikes block the shed")
    assert "Abandoned bikes" in texts(confirm) and "Where: bike shed" in texts(confirm)
    cancelled = await dialog.press("amy", "Cancel")
    assert "Nothing was saved" in texts(cancelled)
    async with linli.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Report)) == 0


async def test_residents_cannot_act_as_workers(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await report_without_photo(dialog, "amy", "Broken bench")
    assert "/queue is not available to you" in texts(await dialog.say("amy", "/queue"))
    # Amy forges Gus's dispatch card (or has it forwarded): it is not hers to press.
    accept = dialog.payload("gus", "Accept")
    forged = await dialog.say("amy", "", kind=Kind.CHOICE, payload=accept)
    assert forged.outcome == "stale" and "expired" in texts(forged)
    garbage = await dialog.say("amy", "", kind=Kind.CHOICE, payload="t' OR 1=1;--.0")
    assert garbage.outcome == "forged"
    report = await the_report(linli)
    assert report.state == "assigned"
    # Gus's real card works once; the same button pressed again is stale.
    await dialog.press("gus", "Accept")
    again = await dialog.say("gus", "", kind=Kind.CHOICE, payload=accept)
    assert again.outcome == "stale"
    async with linli.sessions() as session:
        refused = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "command.refused")
        )
    assert refused is not None and refused.detail["command"] == "queue"


async def test_a_card_kept_after_the_report_moved_on_is_refused(
    linli: Linli, dialog: Dialog
) -> None:
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await hire(dialog, "sam", Role.STAFF)
    number = await report_without_photo(dialog, "amy", "Broken bench")
    # Sam (staff) opens it from /queue and rejects it while Gus still has his card.
    await dialog.say("sam", "/queue")
    card = await dialog.press("sam", number)
    assert "Reported by: Amy (Building 2 302)" in texts(card)  # staff see who reported it
    await dialog.press("sam", "Reject as not ours")
    await dialog.say("sam", "This bench belongs to the school next door")
    assert "closed without a fix: This bench belongs" in dialog.notices("amy")[-1]
    stale = await dialog.press("gus", "Accept")
    assert stale.outcome == "stale"
    # A worker's old card from /queue, after the report moved on, is refused and audited.
    report = await the_report(linli, number)
    assert report.state == "rejected"
    async with linli.transaction() as session:
        row = await store.get(session, report.id)
        assert row is not None
        row.state = "assigned"  # as if the queue were read just before the rejection
    await dialog.say("gus", "/queue")
    opened = await dialog.press("gus", number)
    assert "Accept" in [o.label for m in opened.messages for o in m.options]
    async with linli.transaction() as session:
        row = await store.get(session, report.id)
        assert row is not None
        row.state = "rejected"
    refused = await dialog.press("gus", "Accept", source=opened.messages)
    assert "is now rejected, so this can no longer be done" in texts(refused)
    async with linli.sessions() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "report.refused")
        )
    assert entry is not None and entry.detail["reason"] == "not_allowed_now"


async def test_reassign_and_mark_duplicate(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    await join(dialog, "bob", room="401")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await hire(dialog, "gwen", Role.GRID_WORKER, grid="Grid 1")
    first = await report_without_photo(dialog, "amy", "Lift button broken")
    assigned_to_gus = "New report" in " ".join(dialog.notices("gus"))
    worker, other = ("gus", "gwen") if assigned_to_gus else ("gwen", "gus")
    await dialog.press(worker, "Reassign")
    await dialog.press(worker, other.title())
    await dialog.say(worker, "I am on leave this week")
    card = dialog.channel.outbox[other][-1]
    assert "passed this report to you: I am on leave" in card.text
    assert "was passed to your grid worker: I am on leave" in dialog.notices("amy")[-1]
    # Bob's report is about another thing by category, but the worker knows it is the same.
    second = await report_without_photo(dialog, "bob", "Lift stuck", category="Something else")
    holder = other if "New report" in dialog.channel.outbox[other][-1].text else worker
    await dialog.press(holder, "Mark duplicate")
    done = await dialog.say(holder, first)
    assert f"{second} is marked as a duplicate of {first}" in texts(done)
    assert f"You now follow {first}" in dialog.notices("bob")[-1]
    report = await the_report(linli, second)
    assert report.state == "duplicate" and report.duplicate_of_id is not None
    async with linli.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PendingAward)) == 0


async def test_reminder_then_escalation_up_the_ladder(
    linli: Linli, dialog: Dialog, clock: FakeClock
) -> None:
    await join(dialog, "amy")
    await hire(dialog, "pat", Role.PROPERTY)
    await hire(dialog, "hal", Role.PROPERTY_HEAD)
    await hire(dialog, "sam", Role.STAFF)
    await send_photo(dialog, "amy", photo())
    await dialog.press("amy", "Done")
    await dialog.press("amy", "Broken light")  # property, 48 h
    await dialog.press("amy", "My building")
    await dialog.press("amy", "Skip")
    await dialog.press("amy", "Skip")
    await dialog.press("amy", "Submit")
    assert "now with property management" in texts(dialog.last["amy"])
    clock.advance(hours=35)
    await linli.ticker.tick()
    await linli.dispatcher.drain()
    assert not any("Reminder" in n for n in dialog.notices("pat"))
    clock.advance(hours=1)  # 36 h: three quarters of the SLA
    await linli.ticker.tick()
    await linli.dispatcher.drain()
    assert "Reminder: R-2026-000001 (Broken light) is due by" in dialog.notices("pat")[-1]
    await linli.ticker.tick()  # a second tick (or a double fire) reminds nobody twice
    await linli.dispatcher.drain()
    assert sum("Reminder" in n for n in dialog.notices("pat")) == 1
    clock.advance(hours=12)  # 48 h: overdue
    await linli.ticker.tick()
    await linli.dispatcher.drain()
    assert "Escalated to you" in dialog.notices("hal")[-1]
    assert "escalated to the head of property management" in dialog.notices("pat")[-1]
    assert (
        "overdue, so it was escalated to the head of property management"
        in dialog.notices("amy")[-1]
    )
    report = await the_report(linli)
    assert report.escalation_level == 1 and report.state == "assigned"
    clock.advance(hours=48)
    await linli.ticker.tick()
    await linli.dispatcher.drain()
    assert "Escalated to you" in dialog.notices("sam")[-1]
    assert "escalated to community staff" in dialog.notices("amy")[-1]
    clock.advance(hours=200)
    await linli.ticker.tick()  # at the top of the ladder nothing more happens
    await linli.dispatcher.drain()
    assert await events(linli, report.id) == ["submit", "assign", "escalate", "escalate"]
    overdue = texts(await dialog.say("sam", "/queue overdue"))
    assert "R-2026-000001" in overdue and "overdue since" in overdue


async def test_low_rating_reopens_and_escalates(
    linli: Linli, dialog: Dialog, clock: FakeClock
) -> None:
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await hire(dialog, "sam", Role.STAFF)
    await report_without_photo(dialog, "amy", "Broken bench")
    await dialog.press("gus", "Accept")
    await dialog.press("gus", "Resolved")
    await dialog.press("gus", "No photo possible")
    await dialog.say("gus", "Tightened the screws")
    reopened = texts(await dialog.press("amy", "★"))
    assert "reopened and goes to someone more senior" in reopened
    await dialog.say("amy", "It wobbles again")
    report = await the_report(linli)
    assert (report.state, report.rating, report.escalation_level) == ("reopened", 1, 1)
    card = next(m for m in dialog.channel.outbox["sam"] if "Escalated to you" in m.text)
    assert "Reported by: Amy" in card.text
    assert "verdict on R-2026-000001: Rated 1 of 5" in " ".join(dialog.notices("gus"))
    await dialog.press("sam", "Accept")
    assert (await the_report(linli)).state == "in_progress"
    # "Not fixed" works the same way as one star.
    await dialog.press("sam", "Resolved")
    await dialog.press("sam", "No photo possible")
    await dialog.say("sam", "Replaced the bench")
    await dialog.press("amy", "Not fixed")
    assert (await the_report(linli)).state == "reopened"


async def test_unrated_fix_closes_itself(linli: Linli, dialog: Dialog, clock: FakeClock) -> None:
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await report_without_photo(dialog, "amy", "Broken bench")
    await dialog.press("gus", "Accept")
    await dialog.press("gus", "Resolved")
    await dialog.press("gus", "No photo possible")
    await dialog.say("gus", "Fixed")
    rating = dialog.channel.outbox["amy"][-1]
    clock.advance(days=6, hours=23)
    await linli.ticker.tick()
    assert (await the_report(linli)).state == "resolved"
    clock.advance(hours=1)
    await linli.ticker.tick()
    await linli.dispatcher.drain()
    assert (await the_report(linli)).state == "closed"
    assert "nobody rated the fix within 7 days" in dialog.notices("amy")[-1]
    late = await dialog.press("amy", "★★★★★", source=[rating])
    assert late.outcome == "stale"


async def test_nobody_to_dispatch_to_waits_for_someone(
    linli: Linli, dialog: Dialog, clock: FakeClock
) -> None:
    await join(dialog, "amy")
    await draft_without_photo(dialog, "amy", "Broken bench")
    done = texts(await dialog.press("amy", "Submit"))
    assert "Community staff will pass it to the right person soon" in done
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await linli.ticker.tick()
    await linli.dispatcher.drain()
    assert "New report for you to handle" in dialog.notices("gus")[-1]
    assert "R-2026-000001 is now with your grid worker" in dialog.notices("amy")[-1]
    assert (await the_report(linli)).state == "assigned"


async def test_visitors_cannot_report_and_groups_are_redirected(
    linli: Linli, dialog: Dialog
) -> None:
    refused = await dialog.say("vic", "/report")
    assert "/report is not available to you" in texts(refused)
    photo_reply = await send_photo(dialog, "vic", photo())
    assert "join the community first" in texts(photo_reply)
    await join(dialog, "amy")
    group = await dialog.say("amy", "/report", chat_id="group-1", private=False)
    assert group.outcome == "redirected" and group.messages[0].private_start == "go_report"


async def test_chinese_resident_reports_in_chinese(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "wang")
    await dialog.say("wang", "/language")
    await dialog.press("wang", "中文")
    start = texts(await dialog.say("wang", "/report"))
    assert "照片" in start
    await dialog.press("wang", "不带照片继续")
    await dialog.press("wang", "其他")
    await dialog.press("wang", "我的楼")
    await dialog.press("wang", "跳过")
    confirm = texts(await dialog.say("wang", "长椅坏了"))
    assert "请核对" in confirm
    done = texts(await dialog.press("wang", "提交"))
    assert "R-2026-000001" in done


async def test_a_telegram_location_and_points_taken_back(linli: Linli, dialog: Dialog) -> None:
    await join(dialog, "amy")
    await hire(dialog, "gus", Role.GRID_WORKER, grid="Grid 1")
    await hire(dialog, "sam", Role.STAFF)
    await dialog.say("amy", "/report")
    await dialog.press("amy", "Continue without a photo")
    await dialog.press("amy", "Something else")
    detail = await dialog.say("amy", "", kind=Kind.LOCATION, location=(31.2304, 121.4737))
    assert "Anything that helps find it" in texts(detail)
    await dialog.press("amy", "Skip")
    confirm = await dialog.say("amy", "A tree fell on the path")
    assert "Building 2 (📍 31.23040, 121.47370)" in texts(confirm)
    await dialog.press("amy", "Submit")
    await dialog.press("gus", "Accept")
    amy = await person_id(linli, "amy")
    async with linli.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PendingAward)) == 1
        # "Something else" earns 2 points (bot.toml), paid at once.
        assert await ledger.balance(session, amy, ledger.POINTS) == 2
    # Passed on to staff, who find it is not a community matter: the points are withdrawn.
    await dialog.press("gus", "Reassign")
    await dialog.press("gus", "Sam")
    await dialog.say("gus", "Needs the city's tree service")
    await dialog.press("sam", "Reject as not ours")
    await dialog.say("sam", "Reported to the city's tree service")
    report = await the_report(linli)
    assert (report.state, report.reject_reason) == (
        "rejected",
        "Reported to the city's tree service",
    )
    assert report.latitude == pytest.approx(31.2304)
    async with linli.sessions() as session:
        assert await ledger.balance(session, amy, ledger.POINTS) == 0
        reasons = [line.reason for line in await ledger.history(session, amy)]
        assert reasons == ["award.withdrawn", "report.accepted"]
        assert await audit_points(session) == []
