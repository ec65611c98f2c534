"""Item 12 of the hardening issue: a conversation is saved only if it is still the version the
update loaded; otherwise the update is stale and changes nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.app import Linli
from handlers.messages import Incoming, Kind
from models import Conversation, Report
from services import conversations
from services.conversations import FlowState, StaleConversation
from tests.dialog import Dialog, texts
from tests.races import Blocker
from tests.report_cast import join
from tests.test_reports import draft_without_photo


async def reports(linli: Linli) -> int:
    async with linli.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Report)) or 0)


async def test_saving_over_a_newer_version_is_refused_and_changes_nothing(linli: Linli) -> None:
    dialog = Dialog(linli)
    await to_the_summary_as_resident(dialog)
    now = linli.dialogue.clock()
    async with linli.sessions() as session:
        row = await session.scalar(select(Conversation))
        assert row is not None and row.step == "confirm"
        loaded = conversations.Stored(row.id, FlowState(row.flow, row.step, row.nonce), now, 0)
        current = row.version
    assert current > 0  # every save bumps it
    with pytest.raises(StaleConversation):
        async with linli.transaction() as session:
            await session.run_sync(
                lambda sync: conversations.save(
                    sync.connection(),
                    loaded,
                    FlowState("report", "category", "abcd1234"),
                    channel="console",
                    chat_id="amy",
                    person_id=row.person_id,
                    expires_at=now + timedelta(minutes=30),
                    now=now,
                )
            )
    async with linli.sessions() as session:
        again = await session.scalar(select(Conversation))
        assert again is not None
        assert (again.step, again.version) == ("confirm", current)


async def to_the_summary_as_resident(dialog: Dialog) -> None:
    await join(dialog, "amy")
    reply = await draft_without_photo(dialog, "amy", "The lift is stuck")
    assert "Please check your report" in texts(reply), texts(reply)


def press(dialog: Dialog, who: str, label: str, key: str) -> Incoming:
    return dialog.channel.incoming(
        who, kind=Kind.CHOICE, payload=dialog.payload(who, label), key=key
    )


async def test_two_workers_handling_two_presses_of_submit_make_one_report(
    db_url: str, two_workers: tuple[Linli, Linli]
) -> None:
    first, second = two_workers
    dialog = Dialog(first)
    await to_the_summary_as_resident(dialog)
    # A double tap: two updates for the same button, one to each worker. Both load the
    # conversation at the summary before either stores its report.
    async with Blocker(db_url) as blocker:
        await blocker.hold_writes("report")
        tasks = await blocker.queue(
            first.dialogue.handle(press(dialog, "amy", "Submit", "tap-1")),
            second.dialogue.handle(press(dialog, "amy", "Submit", "tap-2")),
        )
        await blocker.release()
        replies = await asyncio.gather(*tasks)
    assert await reports(first) == 1
    won, lost = sorted(replies, key=lambda r: r.outcome)  # "ok" < "stale"
    assert "Your report R-2026-" in texts(won) and "is in" in texts(won)
    # The loser ran again on the state the winner saved: its button is gone.
    assert (lost.outcome, texts(lost)) == (
        "stale",
        "This button has expired. Nothing was changed.",
    )


async def test_on_sqlite_the_second_press_finds_the_button_expired(linli: Linli) -> None:
    dialog = Dialog(linli)
    await to_the_summary_as_resident(dialog)
    tap_1 = press(dialog, "amy", "Submit", "tap-1")
    tap_2 = press(dialog, "amy", "Submit", "tap-2")
    assert "is in" in texts(await linli.dialogue.handle(tap_1))
    assert texts(await linli.dialogue.handle(tap_2)) == (
        "This button has expired. Nothing was changed."
    )
    assert await reports(linli) == 1
