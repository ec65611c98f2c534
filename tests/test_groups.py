"""Group chats and their scope (issue 11): linked by a building head or staff, privately, when
they add the bot or send /group; refused to anyone else; unlinked when the bot is removed; and
the same from the command line. Through real python-telegram-bot and the Bot API stub, on
SQLite and PostgreSQL, in Chinese and English."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.app import Linli
from bot.database import create_engine
from models import GroupChat, OutboxMessage, Role
from services import community, groups, people
from services.people import Grant
from tests.conftest import FakeClock
from tests.processes import run_linli
from tests.telegram_harness import TelegramUser, running_bot
from tests.telegram_stub import BotApiStub

GROUP = -1001234567


@pytest.fixture
async def bot(db_url: str, stub: BotApiStub, clock: FakeClock) -> AsyncIterator[Linli]:
    async with running_bot(db_url, stub, clock) as linli:
        yield linli


async def grant(bot: Linli, user: TelegramUser, role: Role, building: str | None = None) -> None:
    await user.send("/help")  # a private chat the bot can write to
    async with bot.transaction() as session:
        person = await people.by_identity(session, "telegram", str(user.id))
        assert person is not None
        found = await community.building_by_name(session, building) if building else None
        await people.grant(session, person.id, Grant(role, building_id=found.id if found else None))


async def scope_of(bot: Linli, chat_id: int = GROUP) -> str | None:
    async with bot.sessions() as session:
        group = await groups.find(session, "telegram", str(chat_id))
    assert group is not None
    return group.scope.spelled if group.scope is not None else None


async def test_a_building_head_adds_the_bot_and_links_the_group_to_their_building(
    bot: Linli, stub: BotApiStub
) -> None:
    head = TelegramUser(stub, 8101, "Wang", language="zh-hans")
    await grant(bot, head, Role.BUILDING_HEAD, "Building 2")
    mark = len(stub.sent)
    stub.push_update(
        stub.my_chat_member_update(head.id, GROUP, title="2号楼邻居群", language_code="zh-hans")
    )
    await stub.wait_for_message(GROUP, contains="我已私信您", after=mark)
    asked = await stub.wait_for_message(head.id, contains="群聊“2号楼邻居群”服务于", after=mark)
    # A building head may choose their own building, and nothing else.
    assert [label for label, _ in stub.buttons(asked)] == ["楼栋：Building 2"]
    assert await scope_of(bot) is None
    await head.press("楼栋：Building 2", on=asked, expect="现在服务于楼栋：Building 2")
    assert await scope_of(bot) == "building:Building 2"

    # Removed from the group: it serves nothing any more.
    stub.push_update(stub.my_chat_member_update(head.id, GROUP, old="member", new="kicked"))
    await until_scope(bot, None)


async def until_scope(bot: Linli, expected: str | None) -> None:
    """An update that answers nothing: poll the database for its effect (no fixed sleep)."""
    for _ in range(500):
        if await scope_of(bot) == expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the group's scope is {await scope_of(bot)!r}, not {expected!r}")


async def test_staff_send_group_and_may_choose_any_scope(bot: Linli, stub: BotApiStub) -> None:
    ann = TelegramUser(stub, 8102, "Ann")
    await grant(bot, ann, Role.STAFF)
    mark = len(stub.sent)
    await ann.send("/group", chat_id=GROUP, chat_type="supergroup", chat_title="Grid 1 neighbours")
    await stub.wait_for_message(GROUP, contains="I have written to you privately", after=mark)
    asked = await stub.wait_for_message(ann.id, contains="“Grid 1 neighbours” for?", after=mark)
    assert [label for label, _ in stub.buttons(asked)] == [
        "The whole community",
        "Grid: Grid 1",
        "Grid: Grid 2",
        "Building: Building 1",
        "Building: Building 2",
        "Building: Building 3",
        "Building: Building 4",
    ]
    await ann.press("Grid: Grid 1", on=asked, expect="now serves Grid: Grid 1")
    assert await scope_of(bot) == "grid:Grid 1"


@pytest.mark.parametrize(
    ("language", "refusal"), [("en", "not available to you"), ("zh-hans", "/group")]
)
async def test_anyone_else_is_refused_and_the_group_stays_unlinked(
    bot: Linli, stub: BotApiStub, language: str, refusal: str
) -> None:
    bob = TelegramUser(stub, 8103, "Bob", language=language)
    await bob.send("/help")
    mark = len(stub.sent)
    stub.push_update(stub.my_chat_member_update(bob.id, GROUP, language_code=language))
    refused = await stub.wait_for_message(GROUP, contains=refusal, after=mark)
    assert "/group" in refused["text"]
    async with bot.sessions() as session:
        assert await groups.find(session, "telegram", str(GROUP)) is None
    assert not [m for m in stub.messages_to(bob.id) if stub.buttons(m)]


async def test_a_head_without_a_private_chat_is_sent_to_one_first(
    bot: Linli, stub: BotApiStub
) -> None:
    async with bot.transaction() as session:
        head = await people.identify(session, "telegram", "8104")  # granted before writing
        building = await community.building_by_name(session, "Building 1")
        assert building is not None
        await people.grant(session, head.id, Grant(Role.BUILDING_HEAD, building_id=building.id))
    mark = len(stub.sent)
    stub.send_text(8104, "/group", chat_id=GROUP, chat_type="supergroup")
    answer = await stub.wait_for_message(GROUP, contains="open a private chat", after=mark)
    assert [label for label, _ in stub.buttons(answer)] == ["Open private chat"]


async def test_a_role_revoked_before_the_answer_links_nothing(bot: Linli, stub: BotApiStub) -> None:
    head = TelegramUser(stub, 8105, "Li")
    await grant(bot, head, Role.BUILDING_HEAD, "Building 3")
    mark = len(stub.sent)
    await head.send("/group", chat_id=GROUP, chat_type="supergroup")
    asked = await stub.wait_for_message(head.id, contains="for?", after=mark)
    async with bot.transaction() as session:
        person = await people.by_identity(session, "telegram", str(head.id))
        building = await community.building_by_name(session, "Building 3")
        assert person is not None and building is not None
        await people.revoke(session, person.id, Grant(Role.BUILDING_HEAD, building_id=building.id))
    await head.press("Building: Building 3", on=asked, expect="can no longer link groups")
    assert await scope_of(bot) is None


async def test_the_command_line_lists_links_and_unlinks_groups(db_url: str) -> None:
    env = {"LINLI_DATABASE__URL": db_url}
    await run_linli(env, "init")
    poll_id = int(
        await run_linli(
            env,
            *("poll", "create", "--scope", "building:Building 4", "--question", "Bins?"),
            *("--option", "Yes", "--option", "No", "--deadline", "2099-01-31T20:00"),
        )
    )
    assert (
        await run_linli(env, "group", "link", str(GROUP), "--scope", "building:Building 4")
    ).strip() == (f"group {GROUP}: building:Building 4")
    # Linked in the middle of a poll of its building: the poll's card is queued for it, once.
    assert await queued_for_group(db_url) == [f"poll.group:{poll_id}"]
    await run_linli(env, "group", "link", str(GROUP), "--scope", "building:Building 4")
    assert await queued_for_group(db_url) == [f"poll.group:{poll_id}"]
    listed = (await run_linli(env, "group", "list")).strip().splitlines()
    assert listed == [f"{GROUP}\t-\tbuilding:Building 4"]
    await run_linli(env, "group", "link", str(GROUP), "--scope", "community")
    assert (await run_linli(env, "group", "list")).strip() == f"{GROUP}\t-\tcommunity"
    assert (
        await run_linli(env, "group", "unlink", str(GROUP))
    ).strip() == f"group {GROUP}: unlinked"
    assert (await run_linli(env, "group", "list")).strip() == f"{GROUP}\t-\t-"


async def queued_for_group(db_url: str) -> list[str | None]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                select(OutboxMessage.card_key)
                .join(GroupChat, GroupChat.id == OutboxMessage.group_chat_id)
                .where(GroupChat.chat_id == str(GROUP))
            )
            return list(found.scalars())
    finally:
        await engine.dispose()
