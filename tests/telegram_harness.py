"""A running Linli whose Telegram channel talks real HTTP to the Bot API stub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.app import Linli, assemble
from services import community, invites
from tests.conftest import FakeClock, fresh_linli, settings_for
from tests.telegram_stub import BotApiStub

# What shows a message with its buttons: a new one, or a card edited in place.
SHOWN = ("sendMessage", "sendPhoto", "editMessageText", "editMessageCaption")


def telegram_env(stub: BotApiStub, **extra: str) -> dict[str, str]:
    return {
        "LINLI_TELEGRAM__TOKEN": stub.token,
        "LINLI_TELEGRAM__API_BASE_URL": stub.api_base_url,
        "LINLI_TELEGRAM__FILE_BASE_URL": stub.file_base_url,
        "LINLI_TELEGRAM__POLL_TIMEOUT": "1",
        **extra,
    }


@asynccontextmanager
async def running_bot(
    db_url: str, stub: BotApiStub, clock: FakeClock, *, fresh: bool = True, **env: str
) -> AsyncIterator[Linli]:
    settings = settings_for(db_url, **telegram_env(stub, **env))
    if fresh:
        linli = await fresh_linli(settings, clock)
    else:
        linli = assemble(settings, clock=clock)
    assert linli.telegram is not None
    await linli.telegram.start()
    try:
        yield linli
    finally:
        await linli.dispatcher.drain()  # as `serve` does: sends finish before the channel stops
        await linli.telegram.stop()
        await linli.close()


async def invite_code(linli: Linli, building: str = "Building 2", uses: int = 5) -> str:
    async with linli.sessions() as session, session.begin():
        found = await community.building_by_name(session, building)
        assert found is not None
        return (await invites.create(session, found.id, uses=uses, now=linli.dialogue.clock())).code


async def register(user: TelegramUser, code: str, room: str) -> dict[str, Any]:
    await user.send(f"/start {code}", expect="Which room")
    await user.send(room, expect="What is your name")
    return await user.press("Use", expect="registered")


class TelegramUser:
    """One person's Telegram client: types, presses, and reads what the bot sent them."""

    def __init__(self, stub: BotApiStub, user_id: int, name: str, language: str = "en") -> None:
        self.stub = stub
        self.id = user_id
        self.name = name
        self.language = language

    async def send(
        self, text: str, *, expect: str | None = None, patience: float = 5.0, **kw: Any
    ) -> dict[str, Any]:
        mark = len(self.stub.sent)
        kw.setdefault("first_name", self.name)
        kw.setdefault("language_code", self.language)
        self.stub.send_text(self.id, text, **kw)
        return await self.stub.wait_for_message(
            self.id, contains=expect, after=mark, timeout=patience
        )

    async def press(
        self, label: str, *, on: dict[str, Any] | None = None, expect: str | None = None
    ) -> dict[str, Any]:
        message = on or self.last_with_buttons()
        data = next(value for text, value in self.stub.buttons(message) if label in text)
        mark = len(self.stub.sent)
        self.stub.press(self.id, data, message=message, language_code=self.language)
        return await self.stub.wait_for_message(self.id, contains=expect, after=mark)

    def last_with_buttons(self) -> dict[str, Any]:
        for entry in reversed(self.stub.messages_to(self.id)):
            # A card updated in place counts: its edit carries the buttons it has now.
            if entry.get("method") in SHOWN and self.stub.buttons(entry):
                return entry
        raise AssertionError(f"no message with buttons to {self.id}")

    def texts(self) -> list[str]:
        return [
            e.get("text") or ""
            for e in self.stub.messages_to(self.id)
            if e.get("method") == "sendMessage"
        ]
