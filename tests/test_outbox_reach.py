"""A process claims only the outbox rows it can deliver (bot/delivery.py, services/outbox.py).

Two `linli chat` consoles on one database are two people: each delivers its own person's
messages, and a card for the other one waits in the outbox for that person's console.
The senders here are channels (the interface the outbox sends through) that keep what
they were given.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.app import Linli
from bot.delivery import OutboxDispatcher
from bot.replies import LeftReplies
from handlers.messages import Capabilities, Option, Outgoing
from models import OutboxMessage
from services import menus, outbox, people, updates
from tests.conftest import FakeClock


class Keeper:
    """A channel that reaches `reach` (None: every chat) and keeps what it was asked to send."""

    def __init__(self, name: str, reach: frozenset[str] | None) -> None:
        self.name = name
        self.reach = reach
        self.capabilities = Capabilities(buttons=name == "telegram")
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat_id: str, message: Outgoing) -> None:
        self.sent.append((chat_id, message.text))


def dispatcher(linli: Linli, clock: FakeClock, *senders: Keeper) -> OutboxDispatcher:
    """Another process's dispatcher on the same database, running only `senders`."""
    made = OutboxDispatcher(linli.transaction, clock)
    for sender in senders:
        made.register(sender)
    return made


async def queue(
    linli: Linli,
    clock: FakeClock,
    channel: str,
    external_id: str,
    message: Outgoing,
    *,
    private: bool = True,
) -> int:
    """A message for the person behind (channel, external_id); returns the row's id."""
    async with linli.transaction() as session:
        person = await people.identify(
            session, channel, external_id, private_chat_id=external_id if private else None
        )
        outbox.enqueue(session, person.id, message.to_dict(), clock())
        await session.flush()
        row_id = await session.scalar(
            select(OutboxMessage.id)
            .where(OutboxMessage.person_id == person.id)
            .order_by(OutboxMessage.id.desc())
        )
        assert row_id is not None
        return row_id


async def state(linli: Linli, row_id: int) -> tuple[str, int]:
    async with linli.sessions() as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        return row.status, row.attempts


async def menu(linli: Linli, channel: str, chat_id: str) -> list[dict[str, Any]]:
    async with linli.sessions() as session:
        return await session.run_sync(lambda s: menus.last(s.connection(), channel, chat_id))


async def test_a_console_sends_only_its_own_persons_rows(linli: Linli, clock: FakeClock) -> None:
    for_wang = await queue(linli, clock, "console", "wang", Outgoing("New report for wang"))
    for_alice = await queue(linli, clock, "console", "alice", Outgoing("Accepted, alice"))
    for_nobody = await queue(
        linli, clock, "console", "ghost", Outgoing("for no chat"), private=False
    )

    alice = Keeper("console", frozenset({"alice"}))
    assert await dispatcher(linli, clock, alice).run_once() == 1
    assert alice.sent == [("alice", "Accepted, alice")]
    assert await state(linli, for_alice) == ("sent", 1)
    # Wang is reachable, but only by wang's console: the row is not even claimed.
    assert await state(linli, for_wang) == ("pending", 0)
    # Nobody can ever reach a person without a private chat: anyone settles it.
    assert await state(linli, for_nobody) == ("unreachable", 1)

    clock.advance(minutes=10)  # past any claim timeout: still nothing for alice's console
    assert await dispatcher(linli, clock, alice).run_once() == 0
    assert alice.sent == [("alice", "Accepted, alice")]
    assert await state(linli, for_wang) == ("pending", 0)

    wang = Keeper("console", frozenset({"wang"}))
    assert await dispatcher(linli, clock, wang).run_once() == 1
    assert wang.sent == [("wang", "New report for wang")]
    assert await state(linli, for_wang) == ("sent", 1)


async def test_a_channel_with_unlimited_reach_takes_every_row_of_its_channel(
    linli: Linli, clock: FakeClock
) -> None:
    first = await queue(linli, clock, "telegram", "5001", Outgoing("water off at 9"))
    second = await queue(linli, clock, "telegram", "5002", Outgoing("lift fixed"))
    for_wang = await queue(linli, clock, "console", "wang", Outgoing("a card for wang"))

    telegram = Keeper("telegram", None)
    assert await dispatcher(linli, clock, telegram).run_once() == 2
    assert telegram.sent == [("5001", "water off at 9"), ("5002", "lift fixed")]
    assert await state(linli, first) == ("sent", 1)
    assert await state(linli, second) == ("sent", 1)
    assert await state(linli, for_wang) == ("pending", 0)


async def test_a_sent_card_becomes_its_chats_menu(linli: Linli, clock: FakeClock) -> None:
    card = Outgoing(
        "New report for you to handle: R-2026-000001",
        options=(
            Option("Accept", "t7.1"),
            Option("Reassign", "t7.2"),
            Option("Reject as not ours", "t7.3"),
        ),
    )
    await queue(linli, clock, "console", "wang", card)
    await queue(linli, clock, "console", "alice", Outgoing("no options here"))

    alice = Keeper("console", frozenset({"alice"}))
    assert await dispatcher(linli, clock, alice).run_once() == 1
    assert await menu(linli, "console", "wang") == []  # not shown yet: no menu to answer
    assert await menu(linli, "console", "alice") == []  # a message without options

    wang = Keeper("console", frozenset({"wang"}))
    assert await dispatcher(linli, clock, wang).run_once() == 1
    assert await menu(linli, "console", "wang") == [
        {"label": "Accept", "payload": "t7.1"},
        {"label": "Reassign", "payload": "t7.2"},
        {"label": "Reject as not ours", "payload": "t7.3"},
    ]


async def test_replies_left_for_another_console_stay_for_it(linli: Linli, clock: FakeClock) -> None:
    """A process that died left Wang's replies unsent; Alice's console can't deliver them, so
    it leaves them kept for Wang's, which sends them."""
    async with linli.transaction() as session:
        await session.run_sync(
            lambda s: updates.claim(
                s.connection(), "console", "k1", clock(), chat_id="wang", replies=[{"text": "hi"}]
            )
        )
    clock.advance(minutes=5)
    alice, wang = Keeper("console", frozenset({"alice"})), Keeper("console", frozenset({"wang"}))
    assert await LeftReplies(linli.transaction, {"console": alice}, clock).run_once() == 0
    assert alice.sent == []
    assert await LeftReplies(linli.transaction, {"console": wang}, clock).run_once() == 1
    assert wang.sent == [("wang", "hi")]
