"""Agenda proposals with photos (broken ones refused politely, nothing lost), moderation by
staff only, and the races: two staff members moderating one proposal, and two ticks moving
one cycle, on PostgreSQL with the interleaving forced (tests/races.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.app import Linli
from models import AgendaCycle, AgendaItem, OutboxMessage, Person, Role
from services import groups, people, scopes
from services.agenda import cycles, proposals
from services.agenda.proposals import Moderation, Problem
from services.people import Grant
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.dialog import Dialog, texts
from tests.images import photo
from tests.races import Blocker
from tests.report_cast import hire, join, send_photo

DEC_2 = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
async def month(db_url: str, clock: FakeClock) -> AsyncIterator[Linli]:
    clock.now = DEC_2
    app = await fresh_linli(settings_for(db_url), clock)
    await app.ticker.tick()  # the month opens
    yield app
    await app.close()


async def test_a_proposal_with_a_photo_and_a_broken_one_first(
    month: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(month)
    await join(dialog, "amy", room="302")
    await hire(dialog, "sam", Role.STAFF)
    await dialog.say("amy", "/agenda")
    await dialog.press("amy", "Propose an item")
    await dialog.say("amy", "A bench by the pond")
    await dialog.say("amy", "The old one broke.")
    broken = texts(await send_photo(dialog, "amy", photo()[:300]))
    assert "damaged or incomplete" in broken and "No photo" in broken
    # Nothing was lost: a good photo goes on from the same step.
    asked = texts(await send_photo(dialog, "amy", photo()))
    assert "Your proposal:" in asked and "With a photo." in asked
    assert "Thank you!" in texts(await dialog.press("amy", "Submit"))
    card = dialog.channel.outbox["sam"][-1]
    async with month.sessions() as session:
        item = await session.scalar(select(AgendaItem))
    assert item is not None and item.photo_key is not None
    assert card.image_key == item.photo_key
    assert month.media is not None and month.media.exists(item.photo_key)


async def test_only_staff_moderate(month: Linli, clock: FakeClock) -> None:
    dialog = Dialog(month)
    await join(dialog, "amy", room="302")
    await hire(dialog, "sam", Role.STAFF)
    await dialog.say("amy", "/agenda")
    await dialog.press("amy", "Propose an item")
    await dialog.say("amy", "Bike racks")
    await dialog.say("amy", "Bikes block the stairs.")
    await dialog.press("amy", "No photo")
    await dialog.press("amy", "Submit")
    card = dialog.channel.outbox["sam"][-1]
    # A resident's /agenda offers no moderation.
    await dialog.say("amy", "/agenda")
    assert not any("moderate" in o.label for o in dialog.seen("amy")[-1].options)
    # Sam's role is revoked before Sam presses the card: refused, nothing changes.
    async with month.transaction() as session:
        sam = await people.by_identity(session, "console", "sam")
        assert sam is not None
        await people.revoke(session, sam.id, Grant(Role.STAFF))
    refused = texts(await dialog.press("sam", "Accept", source=[card]))
    assert "Only community staff can moderate proposals." in refused
    async with month.sessions() as session:
        assert await session.scalar(select(AgendaItem.status)) == "pending"


async def item_and_staff(linli: Linli) -> tuple[int, int, int]:
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    sam = await hire(dialog, "sam", Role.STAFF)
    tess = await hire(dialog, "tess", Role.STAFF)
    async with linli.transaction() as session:
        amy = await session.scalar(select(Person.id).where(Person.display_name == "Amy"))
        done = await proposals.propose(
            session,
            linli.agenda.rules,
            int(amy or 0),
            "Bike racks",
            "",
            None,
            linli.dialogue.clock(),
        )
        assert not isinstance(done, Problem)
        return done.item.id, sam, tess


async def moderate(
    linli: Linli, staff: int, item_id: int, action: Moderation, reason: str = ""
) -> proposals.Done | Problem:
    async with linli.transaction() as session:
        roles = await people.roles_of(session, staff)
        return await proposals.moderate(
            session, staff, roles, item_id, action, linli.dialogue.clock(), reason=reason
        )


async def test_two_staff_moderating_one_proposal_moderate_it_once(
    two_workers: tuple[Linli, Linli], db_url: str, clock: FakeClock
) -> None:
    first, second = two_workers
    clock.now = DEC_2
    await first.ticker.tick()
    item_id, sam, tess = await item_and_staff(first)
    async with Blocker(db_url) as blocker:
        await blocker.hold_row("agenda_item", item_id)
        accept, reject = await blocker.queue(
            moderate(first, sam, item_id, Moderation.ACCEPT),
            moderate(second, tess, item_id, Moderation.REJECT, "Not ours."),
        )
        await blocker.release()
        accepted, rejected = await asyncio.gather(accept, reject)
    assert isinstance(accepted, proposals.Done) and accepted.item.status == "accepted"
    assert rejected is Problem.DONE
    async with first.sessions() as session:
        item = await session.get(AgendaItem, item_id)
        assert item is not None and (item.status, item.reason) == ("accepted", None)


async def test_two_ticks_move_the_cycle_once(
    two_workers: tuple[Linli, Linli], db_url: str, clock: FakeClock
) -> None:
    first, second = two_workers
    clock.now = DEC_2
    await first.ticker.tick()
    async with first.sessions() as session:
        cycle = await session.scalar(select(AgendaCycle))
        assert cycle is not None and cycle.phase == "proposals"

    async def tick_advance(linli: Linli) -> cycles.Moved | None:
        async with linli.transaction() as session:
            return await linli.agenda.advance(session, clock(), expected="proposals")

    async with Blocker(db_url) as blocker:
        await blocker.hold_row("agenda_cycle", cycle.id)
        one, two = await blocker.queue(tick_advance(first), tick_advance(second))
        await blocker.release()
        moved, again = await asyncio.gather(one, two)
    assert moved is not None and moved.phase == "voting"
    assert again is None
    async with first.sessions() as session:
        phases = (await session.scalars(select(AgendaCycle.phase))).all()
    assert phases == ["voting"]


async def test_the_groups_hear_that_voting_opened_and_the_results(
    month: Linli, clock: FakeClock
) -> None:
    """The agenda is the community's: every linked group is told that voting opened (to vote
    privately) and gets the results card; a group that left gets nothing."""
    dialog = Dialog(month)
    await join(dialog, "amy", room="302")
    await hire(dialog, "sam", Role.STAFF)
    async with month.transaction() as session:
        linked = []
        for chat_id, spelled in (("-100", "building:Building 1"), ("-200", "community")):
            group = await groups.seen(session, "telegram", chat_id, chat_id, clock())
            scope = await scopes.parse(session, spelled)
            assert scope is not None
            await groups.link(session, group.id, scope, clock())
            linked.append(group.id)
        left = await groups.seen(session, "telegram", "-300", "left", clock())
        scope = await scopes.parse(session, "community")
        assert scope is not None
        await groups.link(session, left.id, scope, clock())
        await groups.gone(session, left.id, clock())
        amy = await session.scalar(select(Person.id).where(Person.display_name == "Amy"))
        done = await proposals.propose(
            session, month.agenda.rules, int(amy or 0), "A notice board", "", None, clock()
        )
        assert not isinstance(done, Problem)
        sam = int(await session.scalar(select(Person.id).where(Person.display_name == "Sam")) or 0)
        roles = await people.roles_of(session, sam)
        accepted = await proposals.moderate(
            session, sam, roles, done.item.id, Moderation.ACCEPT, clock()
        )
        assert not isinstance(accepted, Problem)
    for expected in ("voting", "published"):
        async with month.transaction() as session:
            moved = await month.agenda.advance(session, clock())
            assert moved is not None and moved.phase == expected
    async with month.sessions() as session:
        rows = (
            await session.execute(
                select(OutboxMessage.group_chat_id, OutboxMessage.payload)
                .where(OutboxMessage.group_chat_id.is_not(None))
                .order_by(OutboxMessage.id)
            )
        ).all()
    told = {(group, payload["notice"]) for group, payload in rows}
    assert told == {
        (group, kind) for group in linked for kind in ("agenda.voting", "agenda.results")
    }
    opened = next(p for _, p in rows if p["notice"] == "agenda.voting")
    assert "请私下投票：给机器人发送 /agenda。" in opened["text"]
    assert opened["options"] == [] and opened["private_start"] == "go_agenda"
    results = next(p for _, p in rows if p["notice"] == "agenda.results")
    assert "议事投票结果" in results["text"] and "1. #1 A notice board: 0 票" in results["text"]
    assert results["image_key"]
