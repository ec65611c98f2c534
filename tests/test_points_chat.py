"""`/points` in chat and `linli points award` (issue 12): a resident reads their balance and
what earned or took their points, in English and in Chinese; staff award by hand from the
command line, under a rule or as an amount, always with a note; bad requests are refused with
a clear message and change nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bot.app import Linli
from models import AuditEntry, Role
from services.points import ledger
from services.points.audit import audit_points
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.dialog import Dialog, texts
from tests.processes import linli_process, run_linli
from tests.report_cast import hire, join, person_id


async def test_points_shows_the_balance_and_the_latest_entries_in_each_language(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await join(dialog, "bob", room="303")
    await dialog.say("bob", "/language")
    await dialog.press("bob", "中文")
    empty = texts(await dialog.say("amy", "/points"))
    assert "Your points: 0" in empty and "Nothing yet." in empty

    from services.points import awards

    amy, bob = await person_id(linli, "amy"), await person_id(linli, "bob")
    async with linli.transaction() as session:
        await awards.award(session, amy, "report_accepted", 5, "report:3:accepted", clock())
        await awards.award(session, bob, "vote_cast", 1, "poll:1:vote:person:b", clock())
        await awards.award_by_staff(
            session, amy, 2, "Sorted garbage all week", clock(), rule="sorting_day"
        )
        await awards.award_by_staff(session, bob, 7, "Helped at the fair", clock())
    shown = texts(await dialog.say("amy", "/points"))
    assert "Your points: 7" in shown
    # Newest first, each with its reason in English; a staff award with its note.
    assert shown.index("+2  Garbage-sorting day: Sorted garbage all week") < shown.index(
        "+5  Report accepted"
    )
    chinese = texts(await dialog.say("bob", "/points"))
    assert "您的积分：8" in chinese
    assert "+7  工作人员奖励：Helped at the fair" in chinese and "+1  投票" in chinese


async def test_points_award_by_rule_or_amount_with_a_note_and_refusals(
    db_url: str, linli: Linli
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    amy = await person_id(linli, "amy")
    env = {"LINLI_DATABASE__URL": db_url}
    said = await run_linli(
        env, "points", "award", "--console", "amy", "--rule", "sorting_day", "--note", "Week 48"
    )
    assert said.startswith(f"points: 2 to person {amy} (transfer ") and "balance 2" in said
    said = await run_linli(
        env, "points", "award", "--console", "amy", "--amount", "30", "--note", "Fair helper"
    )
    assert "balance 32" in said
    refused = {
        ("--rule", "flying", "--note", "x"): "no rule 'flying'",
        ("--amount", "0", "--note", "x"): "--amount is 1 or more",
        ("--amount", "5", "--note", "  "): "--note says why",
    }
    for args, message in refused.items():
        async with linli_process("points", "award", "--console", "amy", *args, env=env) as p:
            _, err = await p.communicate()
        assert p.returncode == 2 and message in err.decode(), err.decode()
    nobody = ("--console", "nobody", "--amount", "5", "--note", "x")
    async with linli_process("points", "award", *nobody, env=env) as p:
        _, err = await p.communicate()
    assert p.returncode == 2 and "nobody known as console:nobody" in err.decode()
    async with linli.sessions() as session:
        assert await ledger.balance(session, amy, ledger.POINTS) == 32
        notes = [line.note for line in await ledger.history(session, amy)]
        assert notes == ["Fair helper", "Week 48"]
        audited = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "points.award"))
        ).all()
        assert [(e.detail["amount"], e.detail["rule"]) for e in audited] == [
            (2, "sorting_day"),
            (30, ""),
        ]
        assert await audit_points(session) == []


async def test_points_for_someone_unregistered_is_a_polite_refusal(linli: Linli) -> None:
    dialog = Dialog(linli)
    reply = texts(await dialog.say("stranger", "/points"))
    assert "Your points" not in reply
    assert reply == "Sorry, /points is not available to you. Send /help to see your commands."


async def run_import(env: dict[str, str], path: Path, *args: str) -> tuple[int, str, str]:
    async with linli_process("points", "import", str(path), *args, env=env) as process:
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_a_csv_import_is_checked_whole_then_applied_once(
    db_url: str, linli: Linli, tmp_path: Path
) -> None:
    """Excel writes a byte-order mark: read alike. A file with a bad row applies nothing and
    names each bad line; a good one is a dry run until --apply, and applying it again pays
    nothing more."""
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await join(dialog, "bob", room="303")
    amy, bob = await person_id(linli, "amy"), await person_id(linli, "bob")
    env = {"LINLI_DATABASE__URL": db_url}
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        "\ufeffperson,rule,amount,note\n"
        "console:amy,sorting_day,,第48周 垃圾分类\n"
        "console:nobody,,5,x\n"
        "console:bob,sorting_day,3,both\n"
        "console:bob,,lots,x\n"
        "console:bob,,5,\n"
        "bob,,5,x\n".encode()
    )
    status, out, err = await run_import(env, bad, "--apply")
    assert status == 1 and out == ""
    assert [line.split(": ", 1)[1] for line in err.splitlines()[:-1]] == [
        "line 3: nobody known as console:nobody",
        "line 4: give a rule or an amount, not both nor neither",
        "line 5: amount 'lots' is not a whole number",
        "line 6: the note, which says why, is empty",
        "line 7: person 'bob' is not telegram:ID, wechat:OPENID or console:NAME",
    ]
    assert err.splitlines()[-1] == "points import: 5 bad row(s); nothing applied"
    good = tmp_path / "good.csv"
    good.write_bytes(
        "\ufeffperson,rule,amount,note\r\n"
        "console:amy,sorting_day,,第48周 垃圾分类\r\n"
        "console:bob,,7,Volunteer hours logged\r\n".encode()
    )
    status, out, _ = await run_import(env, good)
    assert status == 0 and "2 rows valid, 9 points to 2 people; a dry run" in out
    async with linli.sessions() as session:
        assert [await ledger.balance(session, p, ledger.POINTS) for p in (amy, bob)] == [0, 0]
    for applied_before in (0, 2):
        status, out, _ = await run_import(env, good, "--apply")
        assert status == 0 and f"{2 - applied_before} awards applied" in out
    async with linli.sessions() as session:
        assert [await ledger.balance(session, p, ledger.POINTS) for p in (amy, bob)] == [2, 7]
        notes = [line.note for line in await ledger.history(session, amy)]
        assert notes == ["第48周 垃圾分类"]
        assert await audit_points(session) == []
    # Not text at all: refused, nothing read as rows.
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)))
    status, _, err = await run_import(env, binary)
    assert status == 1 and "the file is not UTF-8 text" in err


async def test_a_residents_first_registration_earns_the_welcome_points_once(
    db_url: str, clock: FakeClock
) -> None:
    """`[points.rules] first_registration` (5 here): paid by the tick after joining, once; an
    invite to staff earns nothing."""
    linli = await fresh_linli(
        settings_for(db_url, LINLI_POINTS__RULES__FIRST_REGISTRATION="5"), clock
    )
    try:
        dialog = Dialog(linli)
        await join(dialog, "amy", room="302")
        await hire(dialog, "sam", Role.STAFF)
        await linli.ticker.tick()
        shown = texts(await dialog.say("amy", "/points"))
        assert "Your points: 5" in shown and "+5  First registration" in shown
        await linli.ticker.tick()  # paid once, whatever ticks again
        amy, sam = await person_id(linli, "amy"), await person_id(linli, "sam")
        async with linli.sessions() as session:
            assert await ledger.balance(session, amy, ledger.POINTS) == 5
            assert await ledger.balance(session, sam, ledger.POINTS) == 0
            assert await audit_points(session) == []
    finally:
        await linli.close()


async def test_staff_award_in_chat_by_rule_or_amount_and_the_resident_is_told(
    linli: Linli,
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await dialog.say("amy", "/language")
    await dialog.press("amy", "中文")
    await hire(dialog, "sam", Role.STAFF)
    # Not staff: refused, politely, in their language.
    refused = texts(await dialog.say("amy", "/award"))
    assert refused == "抱歉，您没有使用 /award 的权限。发送 /help 查看您可以使用的命令。"

    await dialog.say("sam", "/award")
    await dialog.press("sam", "Building 2")
    asked = texts(await dialog.say("sam", "999"))
    assert "Nobody is registered in room 999." in asked
    await dialog.say("sam", "302")
    await dialog.press("sam", "Room 302: Amy")
    how = dialog.seen("sam")[-1]
    assert "Garbage-sorting day (+2)" in [o.label for o in how.options]
    await dialog.press("sam", "Garbage-sorting day (+2)")
    assert "Please type a note" in texts(await dialog.say("sam", "   "))
    summary = texts(await dialog.say("sam", "Sorted all week at the east station"))
    assert "Award 2 points to Amy for: Sorted all week at the east station?" in summary
    done = texts(await dialog.press("sam", "Award"))
    assert "Done. Their points: 2." in done
    told = dialog.notices("amy")[-1]
    assert told == "您获得 2 积分：Sorted all week at the east station\n您的积分：2"

    # Another amount: a bad number is asked again; Cancel saves nothing.
    await dialog.say("sam", "/award")
    await dialog.press("sam", "Building 2")
    await dialog.press("sam", "Room 302: Amy")
    await dialog.press("sam", "Another amount")
    assert "not a whole number from 1 to 100000" in texts(await dialog.say("sam", "-5"))
    await dialog.say("sam", "40")
    await dialog.say("sam", "Fair helper")
    assert "Cancelled. Nothing was saved." in texts(await dialog.press("sam", "Cancel"))
    amy, sam = await person_id(linli, "amy"), await person_id(linli, "sam")
    async with linli.sessions() as session:
        assert await ledger.balance(session, amy, ledger.POINTS) == 2
        audited = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "points.award"))
        ).all()
        assert [(e.actor_id, e.detail["rule"]) for e in audited] == [(sam, "sorting_day")]


async def test_the_leaderboard_names_only_those_who_opted_in(
    linli: Linli, clock: FakeClock
) -> None:
    """Building 2's board this month: Bob (12) and Amy (5) opted in and are named, best first;
    Ann earned the most (20) but did not opt in, so she is only counted; Cy lives in Building 1
    and is on another board."""
    from services.points import awards

    dialog = Dialog(linli)
    for name, room in (("amy", "302"), ("bob", "303"), ("ann", "304")):
        await join(dialog, name, room=room)
    await join(dialog, "cy", building="Building 1", room="101")
    ids = {name: await person_id(linli, name) for name in ("amy", "bob", "ann", "cy")}
    async with linli.transaction() as session:
        for name, amount in (("amy", 5), ("bob", 12), ("ann", 20), ("cy", 30)):
            await awards.award_by_staff(session, ids[name], amount, "help", clock())
    first = texts(await dialog.say("amy", "/points top"))
    assert "Nobody has chosen to be named yet." in first
    assert "And 3 more who earned points and are not named." in first
    assert "Ann" not in first and "Cy" not in first
    await dialog.press("amy", "Show my name")
    await dialog.say("bob", "/points top")
    shown = texts(await dialog.press("bob", "Show my name"))
    assert "1. Bob  12\n2. Amy  5\nAnd 1 more who earned points and are not named." in shown
    assert "You are number 1." in shown and "Ann" not in shown and "20" not in shown
    # Hidden again: counted, not named.
    await dialog.say("amy", "/points top")
    hidden = texts(await dialog.press("amy", "Hide my name"))
    assert "1. Bob  12\nAnd 2 more" in hidden and "Amy" not in hidden.split("\n", 2)[-1]


async def test_the_monthly_statement_goes_on_the_first_to_those_whose_points_moved(
    linli: Linli, clock: FakeClock
) -> None:
    """The clock starts in November: Amy earns 7 and spends 2 there, Bob nothing. On 1
    December (community time) the tick sends Amy her statement, in her language, once; Bob
    gets none."""
    from datetime import UTC, datetime

    from services.points import awards

    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    await join(dialog, "bob", room="303")
    await dialog.say("amy", "/language")
    await dialog.press("amy", "中文")
    amy = await person_id(linli, "amy")
    async with linli.transaction() as session:
        await awards.award_by_staff(session, amy, 7, "help", clock())
    async with linli.transaction() as session:
        paid = await awards.award_by_staff(session, amy, 2, "oops", clock())
        await ledger.reverse(session, paid.id, clock())
    before = len(dialog.notices("amy"))
    await linli.ticker.tick()
    assert len(dialog.notices("amy")) == before  # still November: nothing yet
    # 1 December, 00:30 in Shanghai.
    clock.advance(seconds=(datetime(2026, 11, 30, 16, 30, tzinfo=UTC) - clock()).total_seconds())
    for _ in range(2):
        await linli.ticker.tick()
    statements = [n for n in dialog.notices("amy")[before:] if "2026-11" in n]
    assert statements == [
        "您 2026-11 的积分：获得 9，支出 2。\n您现在的积分：7。发送 /points 查看明细。"
    ]
    assert not any("2026-11" in n for n in dialog.notices("bob"))
