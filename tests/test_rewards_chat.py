"""`/rewards` and `/pickup` in chat (issue 12): staff add a reward and change it, a resident
redeems one and gets a pickup code with its QR image, staff hand it over by the code or by
scanning the QR (a deep link into /pickup), in English and in Chinese; refusals are polite
and change nothing."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta

import zxingcpp
from PIL import Image
from sqlalchemy import select

from bot.app import Linli
from handlers.messages import Kind, Outgoing
from models import AuditEntry, Redemption, Reward, Role
from services.points import awards, ledger, timebank
from services.points.audit import audit_points
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.processes import linli_process, run_linli
from tests.report_cast import hire, join, person_id


async def give(linli: Linli, who: str, amount: int, clock: FakeClock) -> None:
    async with linli.transaction() as session:
        await awards.award_by_staff(session, await person_id(linli, who), amount, "test", clock())


async def add_reward(dialog: Dialog, staff: str, zh: str, en: str, price: int, stock: int) -> None:
    await dialog.say(staff, "/rewards")
    await dialog.press(staff, "Add a reward")
    await dialog.say(staff, zh)
    await dialog.say(staff, en)
    await dialog.say(staff, str(price))
    await dialog.say(staff, str(stock))
    summary = texts(await dialog.press(staff, "30 days"))
    assert f"Add {zh} / {en}: {price} points, {stock} in stock" in summary, summary
    done = texts(await dialog.press(staff, "Add it"))
    assert f"Added: {en}." in done


def qr_text(linli: Linli, message: Outgoing) -> str:
    assert message.image_key is not None, message
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(linli.media.get(message.image_key))))
    assert len(found) == 1
    return found[0].text


async def test_a_reward_added_redeemed_and_picked_up_by_its_code(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await join(dialog, "amy", room="302")
    await give(linli, "amy", 120, clock)
    await add_reward(dialog, "sam", "环保袋", "Eco bag", 50, 2)

    menu = texts(await dialog.say("amy", "/rewards"))
    assert "Your points: 120" in menu and "• Eco bag: 50 points (2 left)" in menu
    assert "Add a reward" not in str(dialog.last["amy"].messages)  # staff's only
    asked = texts(await dialog.press("amy", "Eco bag · 50"))
    assert "Redeem Eco bag for 50 points? You will have 70 left." in asked
    assert "within 14 days" in asked
    redeem = dialog.payload("amy", "Redeem")
    redeemed = await dialog.press("amy", "Redeem")
    message = redeemed.messages[0]
    assert message.text.startswith("Redeemed: Eco bag.\nYour pickup code: ")
    assert "Your points: 70" in message.text
    async with linli.sessions() as session:
        held = (await session.scalars(select(Redemption))).one()
        assert held.status == "held" and held.price == 50
        assert (await session.get(Reward, held.reward_id)).stock == 1  # type: ignore[union-attr]
    code = held.code
    assert f"{code[:4]} {code[4:]}" in message.text
    # No Telegram here, so no deep link: the QR code carries the code itself.
    assert qr_text(linli, message) == code

    # The same button pressed again (a double tap): spent, and nothing more is taken.
    again = texts(await dialog.say("amy", "", kind=Kind.CHOICE, payload=redeem))
    assert again == "This button has expired. Nothing was changed."

    waiting = texts(await dialog.say("amy", "/rewards"))
    assert f"• Eco bag: code {code[:4]} {code[4:]}, until " in waiting
    codes = await dialog.press("amy", "Show my pickup codes")
    assert qr_text(linli, codes.messages[0]) == code

    refused = texts(await dialog.say("amy", f"/pickup {code}"))
    assert refused == "Sorry, /pickup is not available to you. Send /help to see your commands."
    bad = texts(await dialog.say("sam", "/pickup 12"))
    assert "That is not a pickup code" in bad
    unknown = texts(await dialog.say("sam", "/pickup ZZZZ ZZZZ"))
    assert unknown == "No reward has the code ZZZZ ZZZZ. Please check it with the resident."
    handed = texts(await dialog.say("sam", f"/pickup {code[:4].lower()}-{code[4:]}"))
    assert handed == (
        "Hand over Eco bag to Amy (Building 2, room 302). It is recorded as picked up."
    )
    assert dialog.notices("amy")[-1] == "You picked up Eco bag. Thank you for taking part!"
    twice = texts(await dialog.say("sam", f"/pickup {code}"))
    assert twice.startswith(f"{code[:4]} {code[4:]} was already picked up (")
    sam, amy = await person_id(linli, "sam"), await person_id(linli, "amy")
    async with linli.sessions() as session:
        done = (await session.scalars(select(Redemption))).one()
        assert done.status == "picked_up" and done.picked_up_by == sam
        actions = [
            e.action for e in (await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        ]
        assert "reward.add" in actions and actions.count("reward.pickup") == 1
        assert await ledger.balance(session, amy, ledger.POINTS) == 70
        assert await audit_points(session) == []


async def test_in_chinese_too_few_points_and_staff_changing_a_reward(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await join(dialog, "bob", room="303")
    await dialog.say("bob", "/language")
    await dialog.press("bob", "中文")
    await give(linli, "bob", 40, clock)
    await add_reward(dialog, "sam", "环保袋", "Eco bag", 50, 3)
    await add_reward(dialog, "sam", "绿植", "Potted plant", 30, 1)

    menu = texts(await dialog.say("bob", "/rewards"))
    assert "您的积分：40" in menu
    assert "• 绿植：30 积分（剩余 1）" in menu and "• 环保袋：50 积分（剩余 3）" in menu
    short = texts(await dialog.press("bob", "环保袋 · 50"))
    assert short == "环保袋需要 50 积分，您有 40 积分，还差 10 分。"

    # Staff: bad answers asked again, politely; the stock set; a reward closed.
    await dialog.say("sam", "/rewards")
    await dialog.press("sam", "Add a reward")
    assert "1 to 60 characters" in texts(await dialog.say("sam", "长" * 61))
    await dialog.say("sam", "雨伞")
    await dialog.say("sam", "Umbrella")
    assert "That is not a whole number from 1 to 1000000." in texts(
        await dialog.say("sam", "cheap")
    )
    assert "Cancelled. Nothing was saved." in texts(await dialog.press("sam", "Cancel"))
    await dialog.say("sam", "/rewards")
    await dialog.press("sam", "Change a reward")
    await dialog.press("sam", "Eco bag (3 left)")
    await dialog.press("sam", "Set the stock")
    assert texts(await dialog.say("sam", "0")) == "Eco bag: 0 in stock now."
    await dialog.say("sam", "/rewards")
    await dialog.press("sam", "Change a reward")
    await dialog.press("sam", "Potted plant")
    closed = texts(await dialog.press("sam", "Stop offering it"))
    assert (
        closed == "Potted plant is no longer offered. Codes already given can still be picked up."
    )

    empty = texts(await dialog.say("bob", "/rewards"))
    assert "目前没有可兑换的奖品。" in empty and "绿植" not in empty
    async with linli.sessions() as session:
        found = {r.name_en: (r.stock, r.active) for r in await session.scalars(select(Reward))}
        assert found == {"Eco bag": (0, True), "Potted plant": (1, False)}
        assert "Umbrella" not in found
        actions = (await session.scalars(select(AuditEntry.action))).all()
        assert actions.count("reward.stock") == 1 and actions.count("reward.close") == 1


async def test_a_code_past_its_time_is_refused_at_pickup_and_refunded(
    linli: Linli, clock: FakeClock
) -> None:
    dialog = Dialog(linli)
    await hire(dialog, "sam", Role.STAFF)
    await join(dialog, "amy", room="302")
    await give(linli, "amy", 50, clock)
    await add_reward(dialog, "sam", "环保袋", "Eco bag", 50, 2)
    await dialog.say("amy", "/rewards")
    await dialog.press("amy", "Eco bag · 50")
    await dialog.press("amy", "Redeem")
    async with linli.sessions() as session:
        code = (await session.scalars(select(Redemption.code))).one()
    clock.now += timedelta(days=15)  # the pickup window is 14 days
    refused = texts(await dialog.say("sam", f"/pickup {code}"))
    assert refused.startswith(f"{code[:4]} {code[4:]} expired (")
    assert "its points went back to the resident" in refused
    await linli.ticker.tick()
    amy = await person_id(linli, "amy")
    async with linli.sessions() as session:
        assert (await session.scalars(select(Redemption.status))).one() == "expired"
        assert await ledger.balance(session, amy, ledger.POINTS) == 50
        assert (await session.scalars(select(Reward.stock))).one() == 2


async def test_the_rewards_and_time_bank_commands(db_url: str, linli: Linli) -> None:
    """`linli rewards add|list|stock|close` and `linli timebank cover` for operators' scripts:
    ids and states printed one a line, mistakes refused with exit status 2 and one line."""
    dialog = Dialog(linli)
    await join(dialog, "amy", room="302")
    env = {"LINLI_DATABASE__URL": db_url}
    added = await run_linli(
        env,
        "rewards", "add", "--name-zh", "环保袋", "--name-en", "Eco bag",
        "--price", "50", "--stock", "10", "--until", "2099-12-31",
    )  # fmt: skip
    assert re.fullmatch(r"reward: \d+\n", added)
    reward = int(added.split()[1])
    assert await run_linli(env, "rewards", "stock", str(reward), "4") == (
        f"reward {reward}: stock 4, offered\n"
    )
    listed = await run_linli(env, "rewards", "list")
    assert listed == f"{reward}\t50\t4\toffered\t2099-12-31\t环保袋 / Eco bag\n"
    assert await run_linli(env, "rewards", "close", str(reward)) == (
        f"reward {reward}: stock 4, closed\n"
    )
    refused = {
        ("rewards", "close", "999"): "no reward 999",
        ("rewards", "stock", str(reward), "-1"): "the stock is 0 or more",
        (
            "rewards", "add", "--name-zh", "伞", "--name-en", "Umbrella", "--price", "0",
            "--stock", "1", "--until", "2099-01-01",
        ): "--price is 1 or more",
        (
            "rewards", "add", "--name-zh", "伞", "--name-en", "Umbrella", "--price", "5",
            "--stock", "1", "--until", "next week",
        ): "--until 'next week' is not a date",
        ("timebank", "cover", "--console", "nobody"): "nobody known as console:nobody",
    }  # fmt: skip

    async def refusal(args: tuple[str, ...]) -> tuple[int | None, str]:
        async with linli_process(*args, env=env) as process:
            _, err = await process.communicate()
        return process.returncode, err.decode()

    said = await asyncio.gather(*(refusal(args) for args in refused))
    for (code, err), message in zip(said, refused.values(), strict=True):
        assert code == 2 and message in err, err
    amy = await person_id(linli, "amy")
    assert await run_linli(env, "timebank", "cover", "--console", "amy") == (
        f"timebank: person {amy} covered by the pool\n"
    )
    assert await run_linli(env, "timebank", "cover", "--console", "amy") == (
        f"timebank: person {amy} covered by the pool (already)\n"
    )
    async with linli.sessions() as session:
        assert await timebank.is_elder(session, amy)
    await run_linli(env, "timebank", "cover", "--console", "amy", "--remove")
    async with linli.sessions() as session:
        assert not await timebank.is_elder(session, amy)
