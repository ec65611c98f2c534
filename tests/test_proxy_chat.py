"""Proxy votes recorded in chat (issue 11): staff grant one (for a poll or a month) and end it
from /poll, the resident and the proxy are told in their languages, the proxy votes for the
resident in a building poll and on the monthly agenda (marked as by proxy, counted once for the
unit), a revoked grant leaves no option and refuses a ballot confirmed afterwards, only staff
reach it, and every grant, end and proxy ballot is audited. English and Chinese, SQLite and
PostgreSQL, through the engine and the outbox (Dialog)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.app import Linli
from models import AuditEntry, Ballot, Person, ProxyGrant, Role
from services import community, people
from services.people import Grant
from services.voting import proxies
from services.voting.audit import audit_poll
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.dialog import Dialog, texts
from tests.report_cast import hire, join
from tests.test_polls_chat import open_poll


async def person_id(linli: Linli, who: str) -> int:
    async with linli.sessions() as session:
        found = await people.by_identity(session, "console", who)
        assert found is not None
        return found.id


async def make_head(linli: Linli, who: str, building: str = "Building 2") -> None:
    async with linli.transaction() as session:
        found = await people.by_identity(session, "console", who)
        place = await community.building_by_name(session, building)
        assert found is not None and place is not None
        await people.grant(session, found.id, Grant(Role.BUILDING_HEAD, building_id=place.id))


async def chinese(dialog: Dialog, who: str) -> None:
    await dialog.say(who, "/language")
    await dialog.press(who, "中文")


async def audited(linli: Linli, action: str) -> list[tuple[int | None, str, dict[str, object]]]:
    async with linli.sessions() as session:
        rows = await session.execute(
            select(AuditEntry.actor_id, AuditEntry.outcome, AuditEntry.detail)
            .where(AuditEntry.action == action)
            .order_by(AuditEntry.id)
        )
        return [(actor, outcome, dict(detail)) for actor, outcome, detail in rows.all()]


def labels(dialog: Dialog, who: str) -> list[str]:
    return [o.label for o in dialog.seen(who)[-1].options]


async def test_staff_record_a_poll_proxy_in_chat_and_end_it(linli: Linli, clock: FakeClock) -> None:
    dialog = Dialog(linli)
    await join(dialog, "lao", room="303")
    await chinese(dialog, "lao")
    await join(dialog, "mei", room="303")  # Lao's household
    await join(dialog, "wang", room="501")
    await join(dialog, "amy", room="302")
    await make_head(linli, "wang")
    sam = await hire(dialog, "sam", Role.STAFF)
    poll_id = await open_poll(linli, clock, per_household=True)

    # Staff: /poll → Proxy votes → record → the building → the resident → the proxy.
    await dialog.say("sam", "/poll")
    assert "Proxy votes" in labels(dialog, "sam")
    said = texts(await dialog.press("sam", "Proxy votes"))
    assert "a resident without a phone can ask someone to vote for them" in said
    await dialog.press("sam", "Record a proxy vote")
    await dialog.press("sam", "Building 2")
    asked = dialog.seen("sam")[-1]
    assert "The residents of Building 2, by room" in asked.text
    assert [o.label for o in asked.options] == [
        "Room 302: Amy",
        "Room 303: Lao",
        "Room 303: Mei",
        "Room 501: Wang",
        "Cancel",
    ]
    # A typed room narrows the list.
    narrowed = (await dialog.say("sam", "303")).messages[-1]
    assert [o.label for o in narrowed.options] == ["Room 303: Lao", "Room 303: Mei", "Cancel"]
    await dialog.press("sam", "Room 303: Lao")
    proxy_question = dialog.seen("sam")[-1]
    assert "Who will vote for Lao?" in proxy_question.text
    # The building's head first, then its other residents (never Lao himself).
    assert [o.label for o in proxy_question.options] == [
        "Wang (building head)",
        "Room 302: Amy",
        "Room 303: Mei",
        "Cancel",
    ]
    await dialog.press("sam", "Wang (building head)")
    which = [o.label for o in dialog.seen("sam")[-1].options]
    assert which == [
        "Poll: Paint the bike shed green?",
        "This month (2026-11)",
        "Next month (2026-12)",
        "Cancel",
    ]
    await dialog.press("sam", "Poll: Paint the bike shed green?")
    summary = dialog.seen("sam")[-1].text
    assert "Resident: Lao, Building 2, room 303" in summary
    assert "Votes for them: Wang" in summary
    assert "In: the poll “Paint the bike shed green?”" in summary
    done = texts(await dialog.press("sam", "Record it"))
    assert "Recorded: Wang may vote for Lao in the poll “Paint the bike shed green?”." in done

    # Both are told, each in their language; names only.
    told = dialog.notices("wang")[-1]
    assert told.startswith("Lao asked you to vote for them, and staff have recorded it")
    assert "303" not in told
    assert (
        "工作人员已登记：Wang可以代您参加投票“Paint the bike shed green?”"
        in (dialog.notices("lao")[-1])
    )

    # Mei votes for the household; Wang then votes for Lao: one ballot, by proxy.
    card = dialog.channel.outbox["mei"][-1]
    assert texts(await dialog.press("mei", "Yes", source=[card])).startswith("Your vote is in.")
    await dialog.say("wang", "/poll")
    await dialog.press("wang", "For Lao: Paint the bike shed")
    voted = texts(await dialog.press("wang", "No"))
    assert "The vote for Lao is in, marked as cast by you." in voted
    lao = await person_id(linli, "lao")
    async with linli.sessions() as session:
        rows = (await session.execute(select(Ballot.voter, Ballot.choices, Ballot.proxy))).all()
        household = await session.scalar(select(Person.household_id).where(Person.id == lao))
        assert await audit_poll(session, poll_id) == []
    assert rows == [(f"household:{household}", 0b10, True)]

    # Wang opens Lao's ballot again; meanwhile staff end the grant in chat.
    await dialog.say("wang", "/poll")
    stale = (await dialog.press("wang", "For Lao: Paint the bike shed")).messages
    await dialog.say("sam", "/poll")
    await dialog.press("sam", "Proxy votes")
    await dialog.press("sam", "End a proxy vote")
    grants = [o.label for o in dialog.seen("sam")[-1].options]
    assert grants == ["Lao → Wang: Paint the bike shed green?", "Cancel"]
    await dialog.press("sam", "Lao → Wang")
    assert "End this proxy vote?" in dialog.seen("sam")[-1].text
    ended = texts(await dialog.press("sam", "End it"))
    assert "Ended: Wang may no longer vote for Lao" in ended
    assert dialog.notices("wang")[-1].startswith("Staff have ended your proxy for Lao")
    assert "工作人员已取消代投：Wang不能再代您参加" in dialog.notices("lao")[-1]

    refused = texts(await dialog.press("wang", "Yes", source=stale))
    assert "You may no longer vote for this resident. Nothing was changed." in refused
    await dialog.say("wang", "/poll")
    assert not any(label.startswith("For Lao") for label in labels(dialog, "wang"))
    async with linli.sessions() as session:
        assert (await session.execute(select(Ballot.choices))).scalars().all() == [0b10]
    # Nothing is left to end.
    await dialog.say("sam", "/poll")
    await dialog.press("sam", "Proxy votes")
    assert "No proxy votes are recorded now." in texts(
        await dialog.press("sam", "End a proxy vote")
    )

    wang = await person_id(linli, "wang")
    granted = await audited(linli, "proxy.grant")
    assert [(actor, outcome) for actor, outcome, _ in granted] == [(sam, "ok")]
    assert granted[0][2]["resident"] == lao and granted[0][2]["proxy"] == wang
    assert granted[0][2]["poll"] == poll_id
    revoked = await audited(linli, "proxy.revoke")
    assert [(actor, outcome, detail["ended"]) for actor, outcome, detail in revoked] == [
        (sam, "ok", 1)
    ]
    assert [actor for actor, _, _ in await audited(linli, "ballot.proxy")] == [wang]


async def test_a_month_proxy_in_chinese_and_the_same_grant_twice(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await join(dialog, "lao", room="303")
    await join(dialog, "amy", room="302")
    await chinese(dialog, "amy")
    await hire(dialog, "sam", Role.STAFF)
    await chinese(dialog, "sam")
    await open_poll(linli, clock)

    async def grant_next_month() -> str:
        await dialog.say("sam", "/poll")
        await dialog.press("sam", "代投")
        await dialog.press("sam", "登记代投")
        await dialog.press("sam", "Building 2")
        await dialog.press("sam", "303室：Lao")
        # No building head: the residents of the building.
        assert [o.label for o in dialog.seen("sam")[-1].options] == ["302室：Amy", "取消"]
        await dialog.press("sam", "302室：Amy")
        await dialog.press("sam", "下月（2026-12）")
        summary = dialog.seen("sam")[-1].text
        assert "居民：Lao，Building 2，303室" in summary
        assert "范围：2026-12的所有投票和议事厅投票" in summary
        return texts(await dialog.press("sam", "登记"))

    assert "已登记：Amy可以代Lao参加2026-12的所有投票和议事厅投票" in await grant_next_month()
    assert "Lao请您代为投票" in dialog.notices("amy")[-1]
    assert dialog.notices("lao")[-1].startswith("As you asked, staff have recorded that Amy")
    assert "这项代投已经登记过了" in await grant_next_month()
    # The November poll is not December's: no option for it.
    await dialog.say("amy", "/poll")
    assert not any("Lao" in label for label in labels(dialog, "amy"))
    async with linli.sessions() as session:
        made = (await session.execute(select(ProxyGrant.month, ProxyGrant.poll_id))).all()
    assert made == [("2026-12", None)]
    outcomes = [outcome for _, outcome, _ in await audited(linli, "proxy.grant")]
    assert outcomes == ["ok", "refused"]

    # Cancel at any step saves nothing.
    await dialog.say("sam", "/poll")
    await dialog.press("sam", "代投")
    await dialog.press("sam", "登记代投")
    assert "已取消" in texts(await dialog.press("sam", "取消"))


async def test_only_staff_reach_proxy_votes(linli: Linli, clock: FakeClock) -> None:
    dialog = Dialog(linli)
    await join(dialog, "lao", room="303")
    await join(dialog, "wang", room="501")
    await join(dialog, "amy", room="302")
    await make_head(linli, "wang")
    poll_id = await open_poll(linli, clock)

    for who in ("wang", "amy"):
        await dialog.say(who, "/poll")
        assert "Proxy votes" not in labels(dialog, who)
        # Typing it names no option: the question again, no proxy flow.
        reply = await dialog.say(who, "Proxy votes")
        assert reply.flow == "poll" and "Record a proxy vote" not in texts(reply)
        await dialog.say(who, "/cancel")

    # The use case refuses them too (the chat never gets this far), and audits the refusal.
    lao, wang = await person_id(linli, "lao"), await person_id(linli, "wang")
    async with linli.transaction() as session:
        with pytest.raises(proxies.ProxyProblem) as refused:
            await proxies.grant(session, lao, wang, clock(), poll_id=poll_id, by=wang)
        assert refused.value.reason == proxies.NOT_STAFF
        await proxies.grant(session, lao, wang, clock(), poll_id=poll_id)  # the operator
        with pytest.raises(proxies.ProxyProblem):
            await proxies.revoke(session, lao, wang, clock(), by=wang)
    assert [(a, o) for a, o, _ in await audited(linli, "proxy.grant")] == [
        (wang, "refused"),
        (None, "ok"),
    ]
    assert [(a, o) for a, o, _ in await audited(linli, "proxy.revoke")] == [(wang, "refused")]
    async with linli.sessions() as session:
        assert len(await proxies.live(session, resident_id=lao)) == 1


# 09:00 on 1 December in Shanghai.
DEC_1 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
async def agenda_linli(db_url: str, clock: FakeClock) -> AsyncIterator[Linli]:
    """Two votes per voter, one vote per household (the default)."""
    clock.now = DEC_1
    app = await fresh_linli(settings_for(db_url, LINLI_AGENDA__VOTES_PER_VOTER="2"), clock)
    yield app
    await app.close()


async def propose_accepted(dialog: Dialog, who: str, title: str) -> int:
    await dialog.say(who, "/agenda")
    await dialog.press(who, "Propose")
    await dialog.say(who, title)
    await dialog.say(who, "Please.")
    await dialog.press(who, "No photo")
    said = texts(await dialog.press(who, "Submit"))
    card = next(m for m in reversed(dialog.channel.outbox["sam"]) if "A new proposal" in m.text)
    await dialog.press("sam", "Accept", source=[card])
    return int(said.split("#", 1)[1].split(" ", 1)[0])


async def test_a_proxy_votes_on_the_monthly_agenda(agenda_linli: Linli, clock: FakeClock) -> None:
    linli = agenda_linli
    dialog = Dialog(linli)
    await join(dialog, "lao", room="303")
    await join(dialog, "mei", room="303")  # Lao's household
    await join(dialog, "wang", room="501")
    await chinese(dialog, "wang")
    await join(dialog, "amy", room="302")
    await make_head(linli, "wang")
    await hire(dialog, "sam", Role.STAFF)
    await linli.ticker.tick()  # December opens
    lights = await propose_accepted(dialog, "amy", "Lights in the bike shed")
    benches = await propose_accepted(dialog, "amy", "Benches by the pond")

    # Staff record a December proxy before the vote opens.
    await dialog.say("sam", "/poll")
    await dialog.press("sam", "Proxy votes")
    await dialog.press("sam", "Record a proxy vote")
    await dialog.press("sam", "Building 2")
    await dialog.press("sam", "Room 303: Lao")
    await dialog.press("sam", "Wang (building head)")
    await dialog.press("sam", "This month (2026-12)")
    assert "Recorded: Wang may vote for Lao in every poll" in texts(
        await dialog.press("sam", "Record it")
    )
    assert "Lao请您代为投票" in dialog.notices("wang")[-1]

    # Nothing to vote on yet: no option for Lao.
    await dialog.say("wang", "/agenda")
    assert not any("Lao" in label for label in labels(dialog, "wang"))

    clock.now = datetime(2026, 12, 15, 16, 5, tzinfo=UTC)
    await linli.ticker.tick()
    # Mei votes for the household; Wang (in Chinese) sees her ballot, ticked, for Lao.
    await dialog.say("mei", "/agenda")
    await dialog.press("mei", "Vote")
    await dialog.press("mei", f"#{lights} ")
    assert texts(await dialog.press("mei", "Confirm")).startswith("Your vote is in.")
    await dialog.say("wang", "/agenda")
    assert "代Lao投票" in labels(dialog, "wang")
    ballot = (await dialog.press("wang", "代Lao投票")).messages[-1]
    assert "您正在按Lao的要求代其投票。" in ballot.text
    assert [o.label for o in ballot.options][:2] == [
        f"☑ #{lights} Lights in the bike shed",
        f"☐ #{benches} Benches by the pond",
    ]
    await dialog.press("wang", f"#{benches} ")
    done = texts(await dialog.press("wang", "确认"))
    assert "已代Lao投票，记录为由您代投。" in done
    # Wang's own vote is still his to cast.
    await dialog.say("wang", "/agenda")
    assert "投票" in labels(dialog, "wang")

    async with linli.sessions() as session:
        rows = (await session.execute(select(Ballot.poll_id, Ballot.choices, Ballot.proxy))).all()
        assert len(rows) == 1
        assert rows[0][1:] == (0b11, True)
        assert await audit_poll(session, rows[0][0]) == []

    # Wang opens Lao's ballot again; staff end the grant meanwhile; his confirm is refused.
    await dialog.say("wang", "/agenda")
    stale = (await dialog.press("wang", "代Lao投票")).messages
    await dialog.say("sam", "/poll")
    await dialog.press("sam", "Proxy votes")
    await dialog.press("sam", "End a proxy vote")
    await dialog.press("sam", "Lao → Wang: 2026-12")
    await dialog.press("sam", "End it")
    refused = texts(await dialog.press("wang", "确认", source=stale))
    assert "您已不能代这位居民投票" in refused
    await dialog.say("wang", "/agenda")
    assert "代Lao投票" not in labels(dialog, "wang")
    async with linli.sessions() as session:
        assert (await session.execute(select(Ballot.choices))).scalars().all() == [0b11]
    wang = await person_id(linli, "wang")
    assert [actor for actor, _, _ in await audited(linli, "ballot.proxy")] == [wang]
