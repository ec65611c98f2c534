"""Joining, roles, language and the engine's guarantees, as dialogue transcripts on both DBs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.app import Linli
from handlers.flow import Context, Flow
from handlers.messages import FileRef, Kind
from models import AuditEntry, Conversation, Invite, OutboxMessage, Person, Role
from services import community, invites, people
from services.people import Grant
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts


async def make_invite(linli: Linli, building: str = "Building 3", **kw: object) -> str:
    async with linli.sessions() as session, session.begin():
        found = await community.building_by_name(session, building)
        assert found is not None
        invite = await invites.create(session, found.id, now=linli.dialogue.clock(), **kw)  # type: ignore[arg-type]
        return invite.code


async def make_head(linli: Linli, dialog: Dialog, who: str, building: str = "Building 3") -> None:
    """A building head who has talked to the bot once, so the outbox can reach them."""
    await dialog.say(who, "/help")
    async with linli.sessions() as session, session.begin():
        person = await people.by_identity(session, dialog.channel.name, who)
        found = await community.building_by_name(session, building)
        assert person is not None and found is not None
        await people.grant(session, person.id, Grant(Role.BUILDING_HEAD, building_id=found.id))


async def person(linli: Linli, who: str) -> Person:
    async with linli.sessions() as session:
        found = await people.by_identity(session, "console", who)
        assert found is not None
        loaded = await people.with_household(session, found.id)
        assert loaded is not None
        return loaded


async def test_register_with_invite_auto_approval(linli: Linli) -> None:
    dialog = Dialog(linli)
    code = await make_invite(linli)
    await dialog.verify(
        "alice",
        [
            ("/start", "ask your building head for an invite code"),
            (f"/start {code}", "You are joining Building 3"),
            ("room three", "in digits"),
            ("9999", "Building 3 has no room 9999. Rooms go from 101 to 604."),
            ("302室", "Room 302, thank you"),
        ],
    )
    reply = await dialog.press("alice", "Use “Alice”")
    assert "You are registered in Building 3, room 302" in texts(reply)
    registered = await person(linli, "alice")
    assert registered.status == "active"
    assert registered.household is not None and registered.household.room == "302"
    assert registered.display_name == "Alice"
    await dialog.verify(
        "alice", [("/start", "Welcome back, Alice! You are registered in Building 3, room 302")]
    )
    # A one-use code is spent.
    reply = await dialog.say("bob", f"/start {code}")
    assert "already been used" in texts(reply)


async def test_typed_name_and_chinese_default(linli: Linli) -> None:
    dialog = Dialog(linli)
    code = await make_invite(linli)
    reply = await dialog.say("wang", f"/start {code}", language_code="zh-hans")
    assert "请问您住几室" in texts(reply)
    reply = await dialog.say("wang", "101", language_code="zh-hans")
    assert "请问您怎么称呼" in texts(reply)
    reply = await dialog.say("wang", "  王   建国 ", language_code="zh-hans")
    assert "登记完成：Building 3 101 室。欢迎您，王 建国" in texts(reply)
    reply = await dialog.say("wang", "x" * 60, language_code="zh-hans")
    assert "发送 /help" in texts(reply)


async def test_language_switch_is_remembered(linli: Linli) -> None:
    dialog = Dialog(linli)
    reply = await dialog.say("li", "/language", language_code="en")
    assert [o.label for o in reply.messages[0].options] == ["中文", "English"]
    reply = await dialog.press("li", "中文")
    assert "以后我会用中文" in texts(reply)
    # Telegram still says "en"; the person's choice wins.
    assert "您可以使用以下功能" in texts(await dialog.say("li", "/help", language_code="en"))
    await dialog.say("li", "/language")
    assert "English with you" in texts(await dialog.press("li", "English"))


@pytest.mark.parametrize("approval", ["building_head"])
async def test_building_head_approves_and_others_card_goes_stale(linli: Linli) -> None:
    dialog = Dialog(linli)
    await make_head(linli, dialog, "head")
    await make_head(linli, dialog, "deputy")
    code = await make_invite(linli)
    await dialog.say("carol", f"/start {code}")
    await dialog.say("carol", "204")
    reply = await dialog.say("carol", "Carol Chen")
    assert "Your building head will confirm" in texts(reply)
    assert (await person(linli, "carol")).status == "pending"
    assert dialog.notices("head") == [
        "Carol Chen asks to join Building 3, room 204. Do they live there?"
    ]
    assert len(dialog.notices("deputy")) == 1
    reply = await dialog.press("head", "Approve", source=dialog.channel.outbox["head"])
    assert "Approved: Carol Chen, Building 3, room 204." in texts(reply)
    assert "was approved" in dialog.notices("carol")[-1]
    assert (await person(linli, "carol")).status == "active"
    reply = await dialog.press("deputy", "Reject", source=dialog.channel.outbox["deputy"])
    assert "This button has expired" in texts(reply)
    assert (await person(linli, "carol")).status == "active"
    async with linli.sessions() as session:
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert "registration.approve" in actions and "registration.requested" in actions


@pytest.mark.parametrize("approval", ["building_head"])
async def test_rejection_and_pending_list(linli: Linli) -> None:
    dialog = Dialog(linli)
    await make_head(linli, dialog, "head")
    code = await make_invite(linli, uses=3)
    for who, room in (("dan", "101"), ("eve", "102")):
        await dialog.say(who, f"/start {code}")
        await dialog.say(who, room)
        await dialog.say(who, who.title())
    reply = await dialog.say("head", "/pending")
    assert texts(reply).startswith("2 registrations are waiting:")
    reply = await dialog.press(
        "head", "Reject", source=[m for m in reply.messages if "Eve" in m.text]
    )
    assert "Rejected: Eve, Building 3, room 102." in texts(reply)
    assert "could not confirm" in dialog.notices("eve")[-1]
    eve = await person(linli, "eve")
    assert eve.status == "rejected" and eve.household_id is None
    assert "1 registration is waiting" in texts(await dialog.say("head", "/pending"))
    # A head of another building sees nothing and cannot act on a forwarded card.
    await make_head(linli, dialog, "other", building="Building 1")
    assert "No registrations" in texts(await dialog.say("other", "/pending"))


@pytest.mark.parametrize("approval", ["building_head"])
async def test_no_head_falls_back_to_staff(linli: Linli) -> None:
    dialog = Dialog(linli)
    await dialog.say("boss", "/help")
    async with linli.sessions() as session, session.begin():
        boss = await people.by_identity(session, "console", "boss")
        assert boss is not None
        await people.grant(session, boss.id, Grant(Role.STAFF))
    code = await make_invite(linli, building="Building 1")
    for said in (f"/start {code}", "601", "Fay"):
        await dialog.say("fay", said)
    assert dialog.notices("boss") == ["Fay asks to join Building 1, room 601. Do they live there?"]


async def test_role_refusal_is_audited(linli: Linli) -> None:
    dialog = Dialog(linli)
    reply = await dialog.say("mallory", "/pending")
    assert reply.outcome == "refused"
    assert "/pending is not available to you" in texts(reply)
    zh = await dialog.say("mallory", "/pending", language_code="zh")
    assert "您没有使用 /pending 的权限" in texts(zh) or "not available" in texts(zh)
    async with linli.sessions() as session:
        refusals = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "command.refused"))
        ).all()
    assert len(refusals) == 2 and refusals[0].detail["command"] == "pending"


async def test_role_invite_for_registered_resident(linli: Linli) -> None:
    dialog = Dialog(linli)
    code = await make_invite(linli)
    for said in (f"/start {code}", "301", "Gus"):
        await dialog.say("gus", said)
    head_code = await make_invite(linli, role=Role.BUILDING_HEAD)
    reply = await dialog.say("gus", f"/start {head_code}")
    assert "You now have the role building head for Building 3" in texts(reply)
    assert "/pending" in texts(await dialog.say("gus", "/help"))


async def test_duplicate_update_is_processed_once(linli: Linli) -> None:
    dialog = Dialog(linli)
    code = await make_invite(linli)
    first = await dialog.say("hal", f"/start {code}", key="update-7")
    again = await dialog.say("hal", f"/start {code}", key="update-7")
    assert first.outcome == "ok" and again.outcome == "duplicate" and again.messages == []
    await dialog.say("hal", "402", key="update-8")
    assert (await dialog.say("hal", "402", key="update-8")).outcome == "duplicate"
    async with linli.sessions() as session:
        conversation = await session.scalar(select(Conversation))
    assert conversation is not None and conversation.step == "name"


async def test_stale_and_forged_buttons_change_nothing(linli: Linli) -> None:
    dialog = Dialog(linli)
    first = await dialog.say("ivy", "/language")
    current = await dialog.say("ivy", "/language")  # a newer menu: the first one's go stale
    stale = first.messages[0].options[1].payload
    reply = await dialog.say("ivy", "", kind=Kind.CHOICE, payload=stale)
    assert reply.outcome == "stale" and "This button has expired" in texts(reply)
    for forged in ("", "x" * 300, "s0000.1", "t" + "A" * 12 + ".0", "s'; DROP TABLE person;--"):
        reply = await dialog.say("ivy", "", kind=Kind.CHOICE, payload=forged)
        assert reply.outcome in {"stale", "forged"} and "expired" in texts(reply)
    async with linli.sessions() as session:
        ivy = await people.by_identity(session, "console", "ivy")
    assert ivy is not None and ivy.locale == "en"
    # The current menu still works after all that.
    assert "以后我会用中文" in texts(await dialog.press("ivy", "中文", source=current.messages))


@pytest.mark.parametrize("approval", ["building_head"])
async def test_someone_elses_ticket_is_refused(linli: Linli) -> None:
    dialog = Dialog(linli)
    await make_head(linli, dialog, "head")
    code = await make_invite(linli)
    for said in (f"/start {code}", "501", "Jo"):
        await dialog.say("jo", said)
    card = dialog.channel.outbox["head"]
    reply = await dialog.press(
        "jo", "Approve", source=card
    )  # the applicant forging the head's card
    assert "expired" in texts(reply)
    assert (await person(linli, "jo")).status == "pending"


async def test_cancel_and_timeout(linli: Linli, clock: FakeClock) -> None:
    dialog = Dialog(linli)
    code = await make_invite(linli)
    assert "nothing to cancel" in texts(await dialog.say("kim", "/cancel"))
    await dialog.say("kim", f"/start {code}")
    assert "Cancelled" in texts(await dialog.say("kim", "/cancel"))
    assert "I didn't catch that" in texts(await dialog.say("kim", "302"))
    await dialog.say("kim", f"/start {code}")
    menu = await dialog.say("kim", "302")
    clock.advance(minutes=31)
    assert "timed out" in texts(await dialog.say("kim", "Kim"))
    assert "expired" in texts(await dialog.press("kim", "Use", source=menu.messages))
    assert (await person(linli, "kim")).status == "visitor"


async def test_scheduler_purges_expired_conversations(linli: Linli, clock: FakeClock) -> None:
    dialog = Dialog(linli)
    await dialog.say("lee", "/language")
    clock.advance(hours=1)
    report = await linli.ticker.tick()
    assert report.expired_conversations == 1
    async with linli.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 0


async def test_bad_input_gets_polite_answers(linli: Linli) -> None:
    dialog = Dialog(linli)
    code = await make_invite(linli)
    await dialog.say("max", f"/start {code}")
    reply = await dialog.say("max", "", kind=Kind.PHOTO, photo=FileRef("file-1"))
    assert "Please type your room number" in texts(reply)
    reply = await dialog.say("max", "", kind=Kind.OTHER, other_kind="sticker")
    assert "Please type your room number" in texts(reply)
    reply = await dialog.say("max", "3" * 10_000)
    assert reply.outcome == "refused" and "under 4000 characters" in texts(reply)
    assert "Rooms go from" in texts(await dialog.say("max", "9999"))  # the flow is still open
    assert "don't know the command /frobnicate" in texts(await dialog.say("max", "/frobnicate"))
    for bad in ("NOPE1234", "", "../../etc"):
        reply = await dialog.say("nia", f"/start {bad}".strip())
        assert "invite code" in texts(reply)


async def test_expired_invite(linli: Linli, clock: FakeClock) -> None:
    dialog = Dialog(linli)
    code = await make_invite(linli, expires_in=timedelta(days=1))
    clock.advance(days=2)
    assert "has expired" in texts(await dialog.say("oz", f"/start {code}"))
    async with linli.sessions() as session:
        invite = await session.scalar(select(Invite).where(Invite.code == code))
    assert invite is not None and invite.uses == 0


async def test_group_chat_redirects_private_flows(linli: Linli) -> None:
    dialog = Dialog(linli)
    code = await make_invite(linli)
    reply = await dialog.say("pat", f"/start {code}", chat_id="group-1", private=False)
    assert reply.outcome == "redirected"
    assert reply.messages[0].private_start == code
    reply = await dialog.say("pat", "/language", chat_id="group-1", private=False)
    assert reply.messages[0].private_start is None  # /language is fine in a group
    reply = await dialog.say("pat", "just chatting", chat_id="group-1", private=False)
    assert reply.outcome == "ignored" and reply.messages == []
    reply = await dialog.say("pat", "/start go_help")
    assert "Here is what you can do" in texts(reply)


class ExplodingFlow(Flow):
    """A flow that changes data and then fails, to prove the whole update rolls back."""

    name = "explode"
    command = "explode"

    async def begin(self, ctx: Context, args: str) -> None:
        ctx.person.display_name = "CHANGED"
        ctx.ask(self.name, "never", "half-way")
        raise RuntimeError("boom")


async def test_failing_step_rolls_back_and_apologises(linli: Linli) -> None:
    linli.registry.add(ExplodingFlow())
    dialog = Dialog(linli)
    await dialog.say("quinn", "/help")
    reply = await dialog.say("quinn", "/explode", key="k-boom")
    assert reply.outcome == "error" and "something went wrong" in texts(reply)
    zh = await dialog.say("quinn", "/explode", language_code="zh")
    assert "系统出了点问题" in texts(zh) or "something went wrong" in texts(zh)
    quinn = await person(linli, "quinn")
    assert quinn.display_name == "Quinn"
    async with linli.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 0
    # The failed update's key rolled back too, so a redelivery is tried again.
    assert (await dialog.say("quinn", "/help", key="k-boom")).outcome == "ok"


@pytest.mark.parametrize("approval", ["building_head"])
async def test_unreachable_approver_is_recorded(linli: Linli) -> None:
    dialog = Dialog(linli)
    async with linli.sessions() as session, session.begin():
        head = await people.identify(session, "telegram", "999")  # never wrote to us
        found = await community.building_by_name(session, "Building 3")
        assert found is not None
        await people.grant(session, head.id, Grant(Role.BUILDING_HEAD, building_id=found.id))
    code = await make_invite(linli)
    for said in (f"/start {code}", "303", "Ray"):
        await dialog.say("ray", said)
    async with linli.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage))).all()
    assert [r.status for r in rows] == ["unreachable"]
