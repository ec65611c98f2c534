"""`/link`: one person across two apps. Telegram is the Dialog's "telegram" channel (buttons),
WeChat the real channel fed by the stub's signed and encrypted callbacks. SQLite and PostgreSQL;
the race on one code runs on PostgreSQL with its interleaving forced."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from bot.app import Linli
from handlers.messages import Outgoing
from models import Identity, Person, Role
from services import outbox, people
from services.people import Grant
from tests.conftest import FakeClock
from tests.dialog import Dialog, texts
from tests.races import Blocker
from tests.report_cast import join
from tests.wechat_stub import WeChatStub

AMY = "o_amy_openid"


def code_in(text: str) -> str:
    found = re.search(r"\b(\d{4} \d{4})\b", text)
    assert found, text
    return found.group(1)


async def get_code(dialog: Dialog, who: str, language_code: str = "en") -> str:
    await dialog.say(who, "/link", language_code=language_code)
    label = "Get a code" if language_code == "en" else "获取关联码"
    return code_in(texts(await dialog.press(who, label)))


async def person_of(linli: Linli, channel: str, external_id: str) -> Person:
    async with linli.sessions() as session:
        found = await people.by_identity(session, channel, external_id)
    assert found is not None, (channel, external_id)
    return found


async def head_count(linli: Linli) -> int:
    async with linli.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Person)) or 0)


async def test_a_telegram_resident_links_wechat_and_is_one_person(
    wechat_bot: Linli, wechat: WeChatStub
) -> None:
    """In Chinese on WeChat (it tells us no language), in English on Telegram."""
    assert wechat_bot.web is not None
    telegram = Dialog(wechat_bot, "telegram")
    await join(telegram, "amy")
    amy = await person_of(wechat_bot, "telegram", "amy")
    async with wechat_bot.transaction() as session:
        await people.grant(session, amy.id, Grant(Role.STAFF))
    code = await get_code(telegram, "amy")

    # A stranger to us on WeChat: one more person, for now.
    asked = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "/link")))
    assert asked is not None and "1 获取关联码" in asked and "2 我有另一个应用给的关联码" in asked
    assert await head_count(wechat_bot) == 2
    typed = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "2")))
    assert typed is not None and "8 位关联码" in typed
    done = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, code)))
    assert done is not None and "Telegram和微信" in done and "同一个人" in done

    # One person: the WeChat identity is Amy's, with her home and roles; the stranger is gone.
    assert (await person_of(wechat_bot, "wechat", AMY)).id == amy.id
    assert await head_count(wechat_bot) == 1
    async with wechat_bot.sessions() as session:
        roles = await people.roles_of(session, amy.id)
    assert roles.is_staff
    welcome = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "/start")))
    # Her language is the one she chose on Telegram.
    assert welcome is not None and "You are registered in Building 2, room 302" in welcome

    # Notifications go to the app she used last: WeChat now...
    async with wechat_bot.transaction() as session:
        outbox.enqueue(
            session,
            amy.id,
            Outgoing("Your report was accepted.").to_dict(),
            wechat_bot.dialogue.clock(),
        )
    await wechat_bot.dispatcher.run_once()
    assert wechat.texts_to(AMY)[-1] == "Your report was accepted."
    # ...and Telegram once she writes there again.
    await telegram.say("amy", "/help")
    async with wechat_bot.transaction() as session:
        outbox.enqueue(
            session,
            amy.id,
            Outgoing("Your report was closed.").to_dict(),
            wechat_bot.dialogue.clock(),
        )
    await wechat_bot.dispatcher.run_once()
    assert telegram.notices("amy")[-1] == "Your report was closed."
    assert wechat.texts_to(AMY)[-1] == "Your report was accepted."


async def test_a_wechat_resident_links_a_new_telegram_account(
    wechat_bot: Linli, wechat: WeChatStub
) -> None:
    """The other way round: the code comes from WeChat, the new Telegram account takes it,
    and the person who stays is the registered one on WeChat."""
    assert wechat_bot.web is not None
    async with wechat_bot.transaction() as session:
        amy_id = (await people.identify(session, "wechat", AMY, private_chat_id=AMY)).id
        await people.grant(session, amy_id, Grant(Role.STAFF))
    await wechat.post(wechat_bot.web, wechat.text(AMY, "/link"))
    shown = wechat.reply_text(await wechat.post(wechat_bot.web, wechat.text(AMY, "1")))
    assert shown is not None and "您的关联码是" in shown
    code = code_in(shown)
    telegram = Dialog(wechat_bot, "telegram")
    done = await telegram.say("amy", f"/link {code.replace(' ', '')}", language_code="zh-hans")
    assert "同一个人" in texts(done)
    assert (await person_of(wechat_bot, "telegram", "amy")).id == amy_id
    async with wechat_bot.sessions() as session:
        assert (await people.roles_of(session, amy_id)).is_staff


@pytest.mark.parametrize(
    ("language", "unknown", "too_many"),
    [
        ("en", "not valid or has expired", "Too many wrong codes"),
        ("zh-hans", "关联码无效或已过期", "输错次数太多"),
    ],
)
async def test_codes_that_link_nothing_are_refused_politely(
    linli: Linli, clock: FakeClock, language: str, unknown: str, too_many: str
) -> None:
    telegram, console = Dialog(linli, "telegram"), Dialog(linli, "console")
    await join(telegram, "amy")
    code = await get_code(telegram, "amy", "en")

    # Typed back in the app that made it (Amy reads English).
    same_app = await telegram.say("amy", f"/link {code}")
    assert "made in this app" in texts(same_app)
    # Not a code at all, in the conversation: asked again.
    await console.say("ben", "/link", language_code=language)
    await console.press("ben", "I have a code" if language == "en" else "我有")
    wrong = await console.say("ben", "hello", language_code=language)
    assert ("8 digits" if language == "en" else "8 位数字") in texts(wrong)
    # A code nobody made: asked again, and the conversation ends after three tries.
    second = await console.say("ben", "0000 0000", language_code=language)
    ask = "Type the 8-digit code" if language == "en" else "请输入另一个应用显示的 8 位关联码"
    assert unknown in texts(second) and ask in texts(second)
    third = await console.say("ben", "１１１１ １１１１", language_code=language)
    assert unknown in texts(third) and ask not in texts(third)
    # A code that ran out.
    clock.advance(minutes=11)
    late = await console.say("ben", f"/link {code}", language_code=language)
    assert unknown in texts(late)
    # Five wrong codes in an hour, and even a good one waits.
    fresh = await get_code(telegram, "amy", "en")
    await console.say("ben", "/link 2222 2222", language_code=language)
    await console.say("ben", "/link 3333-3333", language_code=language)
    refused = await console.say("ben", f"/link {fresh}", language_code=language)
    assert too_many in texts(refused)
    assert (await person_of(linli, "console", "ben")).id != (
        await person_of(linli, "telegram", "amy")
    ).id
    clock.advance(hours=1)
    fresh = await get_code(telegram, "amy", "en")
    linked = await console.say("ben", f"/link {fresh}", language_code=language)
    assert ("one person" if language == "en" else "同一个人") in texts(linked)
    # Linked already: a new code from the same person links nothing more (and Ben is Amy now,
    # who reads English).
    again = await get_code(telegram, "amy", "en")
    same = await console.say("ben", f"/link {again}", language_code=language)
    assert "already linked" in texts(same)


async def test_two_registered_people_are_not_merged_by_a_code(linli: Linli) -> None:
    telegram, console = Dialog(linli, "telegram"), Dialog(linli, "console")
    await join(telegram, "amy")
    await join(console, "amy", room="303")
    code = await get_code(telegram, "amy")
    refused = await console.say("amy", f"/link {code}")
    assert "Both accounts are already registered" in texts(refused)
    assert (await person_of(linli, "console", "amy")).id != (
        await person_of(linli, "telegram", "amy")
    ).id


async def test_two_people_typing_one_code_at_once_link_one(
    db_url: str, linli: Linli, clock: FakeClock
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: two redeemers cannot interleave")
    telegram, console = Dialog(linli, "telegram"), Dialog(linli, "console")
    await join(telegram, "amy")
    code = (await get_code(telegram, "amy")).replace(" ", "")
    await console.say("ben", "/help")
    await console.say("cat", "/help")
    async with Blocker(db_url) as blocker:
        await blocker.holder.execute("SELECT 1 FROM link_code WHERE code = $1 FOR UPDATE", code)
        ben, cat = await blocker.queue(
            console.channel.say("ben", f"/link {code}"), console.channel.say("cat", f"/link {code}")
        )
        await blocker.release()
        first, second = await ben, await cat
    assert "one person" in texts(first)
    assert "not valid" in texts(second)
    amy = await person_of(linli, "telegram", "amy")
    assert (await person_of(linli, "console", "ben")).id == amy.id
    assert (await person_of(linli, "console", "cat")).id != amy.id
    async with linli.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Identity).where(Identity.person_id == amy.id)
        )
    assert count == 2
