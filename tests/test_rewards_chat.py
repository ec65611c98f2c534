"""`/rewards` and `/pickup` in chat (issue 12): staff add a reward and change it, a resident
redeems one and gets a pickup code with its QR image, staff hand it over by the code or by
scanning the QR (a deep link into /pickup), in English and in Chinese; refusals are polite
and change nothing."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image
from sqlalchemy import select

from bot.app import Linli
from handlers.messages import Kind, Outgoing
from models import AuditEntry, Redemption, Reward, Role
from services.points import awards, ledger
from services.points.audit import audit_points
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
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
