"""Dialogue transcripts against the real engine and database (zulip's verify_dialog idea)."""

from __future__ import annotations

from bot.app import Linli
from bot.channels.collecting import CollectingChannel
from handlers.messages import Capabilities, Kind, Outgoing, Reply


class Dialog:
    def __init__(
        self, linli: Linli, channel: str = "console", capabilities: Capabilities | None = None
    ) -> None:
        self.linli = linli
        self.channel = CollectingChannel(linli.dialogue.handle, channel, capabilities)
        linli.attach(self.channel)
        self.last: dict[str, Reply] = {}

    async def say(self, who: str, text: str, **kw: object) -> Reply:
        reply = await self.channel.say(who, text, **kw)
        self.last[who] = reply
        await self.linli.dispatcher.drain()
        return reply

    async def press(self, who: str, label: str, *, source: list[Outgoing] | None = None) -> Reply:
        """Press the button labelled `label` among the latest messages `who` has seen."""
        payload = self.payload(who, label, source=source)
        return await self.say(who, "", kind=Kind.CHOICE, payload=payload)

    def payload(self, who: str, label: str, *, source: list[Outgoing] | None = None) -> str:
        messages = source if source is not None else self.seen(who)
        for message in reversed(messages):
            for option in message.options:
                if option.label == label or label in option.label:
                    return option.payload
        raise AssertionError(f"no button {label!r} in {[m.text for m in messages]}")

    def seen(self, who: str) -> list[Outgoing]:
        """What reached them through the outbox, then the replies to their latest message:
        `press` looks from the end, so the answer they are looking at wins."""
        replies = self.last[who].messages if who in self.last else []
        return [*self.channel.outbox.get(who, []), *replies]

    def notices(self, who: str) -> list[str]:
        return [m.text for m in self.channel.outbox.get(who, [])]

    async def verify(self, who: str, transcript: list[tuple[str, str]]) -> None:
        """Each (what they type, a fragment every reply must show) in order."""
        for said, expected in transcript:
            reply = await self.say(who, said)
            texts = "\n".join(m.text for m in reply.messages)
            assert expected in texts, f"{said!r} → {texts!r}, expected {expected!r}"


def texts(reply: Reply) -> str:
    return "\n".join(m.text for m in reply.messages)
