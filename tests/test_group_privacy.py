"""Issue 8, item 6: nothing personal is said in a group chat, whatever command is sent there.

Every registered command is sent in a building group by someone who holds every role, while
registrations wait for approval and reports exist. What the group sees may be general text or a
link to the private chat, never names, rooms, descriptions or report numbers. The private chat
that the link opens then shows what was asked for.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.app import Linli
from models import Role
from services import community, invites, people
from services.people import Grant
from tests.conftest import FakeClock
from tests.telegram_harness import TelegramUser, running_bot
from tests.telegram_stub import BotApiStub

GROUP = -1001
DEPARTMENT = "市政 Municipal works"
# Everything below is personal: none of it may reach the group.
BOSS, AMY, ZED = "Bossname Wei", "Amyname Li", "Zedname Zhou"
BOSS_ROOM, AMY_ROOM, ZED_ROOM = "304", "502", "603"
AMY_REPORT = "Amy-canary broken bench behind stairs"
BOSS_REPORT = "Boss-canary loose railing on landing"


@pytest.fixture
async def bot(db_url: str, stub: BotApiStub, clock: FakeClock) -> AsyncIterator[Linli]:
    async with running_bot(db_url, stub, clock, LINLI_COMMUNITY__APPROVAL="building_head") as linli:
        yield linli


async def new_invite(bot: Linli, role: Role = Role.RESIDENT) -> str:
    async with bot.transaction() as session:
        building = await community.building_by_name(session, "Building 2")
        assert building is not None
        invite = await invites.create(session, building.id, role=role, now=bot.dialogue.clock())
        return invite.code


async def join(user: TelegramUser, code: str, room: str, name: str, expect: str) -> None:
    await user.send(f"/start {code}", expect="Which room")
    await user.send(room, expect="What is your name")
    await user.send(name, expect=expect)


async def grant_every_role(bot: Linli, user: TelegramUser) -> None:
    async with bot.transaction() as session:
        person = await people.by_identity(session, "telegram", str(user.id))
        building = await community.building_by_name(session, "Building 2")
        grid = await community.grid_by_name(session, "Grid 1")
        assert person is not None and building is not None and grid is not None
        for role in Role:
            scope: dict[str, Any] = {}
            if role is Role.BUILDING_HEAD:
                scope = {"building_id": building.id}
            elif role is Role.GRID_WORKER:
                scope = {"grid_id": grid.id}
            elif role in (Role.DEPARTMENT, Role.DEPARTMENT_HEAD):
                scope = {"department": DEPARTMENT}
            await people.grant(session, person.id, Grant(role, **scope))


async def report(user: TelegramUser, description: str) -> str:
    await user.send("/report", expect="Please send up to 4 photos")
    await user.press("Continue without a photo", expect="What kind of problem")
    await user.press("Something else", expect="Where is the problem")
    await user.press("My building", expect="Anything that helps")
    await user.press("Skip", expect="Describe the problem")
    answer = await user.send(description)
    if "reported this already" in answer["text"]:
        await user.press("Mine is different", on=answer, expect="Please check your report")
    submitted = await user.press("Submit", expect="is in")
    number = next(word for word in submitted["text"].split() if word.startswith("R-"))
    return number


def said(entry: dict[str, Any]) -> str:
    """Everything a group member can read in one message: text, caption, buttons, links."""
    parts = [entry.get("text") or "", entry.get("caption") or ""]
    for label, value in BotApiStub.buttons(entry):
        parts += [label, value]
    return "\n".join(parts)


async def test_no_command_says_anything_personal_in_a_group(bot: Linli, stub: BotApiStub) -> None:
    boss = TelegramUser(stub, 9000, "Boss")
    amy = TelegramUser(stub, 9001, "Amy")
    zed = TelegramUser(stub, 9002, "Zed")
    # The boss joins as building head (role invites need no approval), then gets every role.
    await join(boss, await new_invite(bot, Role.BUILDING_HEAD), BOSS_ROOM, BOSS, "registered")
    await grant_every_role(bot, boss)
    await join(amy, await new_invite(bot), AMY_ROOM, AMY, "Your building head will confirm")
    card = await stub.wait_for_message(boss.id, contains=f"{AMY} asks to join")
    await boss.press("Approve", on=card, expect=f"Approved: {AMY}")
    await join(zed, await new_invite(bot), ZED_ROOM, ZED, "Your building head will confirm")
    await stub.wait_for_message(boss.id, contains=f"{ZED} asks to join")
    numbers = [await report(amy, AMY_REPORT), await report(boss, BOSS_REPORT)]
    await stub.wait_idle()
    personal = [BOSS, AMY, ZED, BOSS_ROOM, AMY_ROOM, ZED_ROOM, AMY_REPORT, BOSS_REPORT, *numbers]

    commands = [flow.command for flow in bot.registry.commands()]
    assert "pending" in commands and "queue" in commands  # the walk covers the registry
    for command in commands:
        mark = len(stub.sent)
        stub.send_text(
            boss.id,
            f"/{command}@{stub.username}",
            chat_id=GROUP,
            chat_type="group",
            chat_title="Building 2",
            first_name="Boss",
        )
        await stub.wait_for_message(GROUP, after=mark)
        await stub.wait_idle()
        for entry in (e for e in stub.sent[mark:] if e["chat_id"] == GROUP):
            text = said(entry)
            # Whole words only: a button's random ticket ("sf3d45304.1") may hold a room's
            # digits without saying anything.
            leaked = [
                p
                for p in personal
                if re.search(rf"(?<![0-9A-Za-z]){re.escape(p)}(?![0-9A-Za-z])", text)
            ]
            assert not leaked, f"/{command} in the group showed {leaked}: {text!r}"

    # Each redirect's link opens the private chat, where the command runs in full.
    link_prefix = f"https://t.me/{stub.username}?start="
    starts = {
        value.removeprefix(link_prefix)
        for entry in stub.messages_to(GROUP)
        for _, value in stub.buttons(entry)
        if value.startswith(link_prefix)
    }
    assert "go_pending" in starts, starts
    await boss.send("/start go_pending", expect=f"{ZED} asks to join Building 2, room {ZED_ROOM}")
    await boss.send("/start go_myreports", expect=numbers[1])
    await boss.send("/start go_queue", expect=numbers[0])
