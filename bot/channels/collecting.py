"""A channel that keeps what it would send, per chat: for tests, benchmarks and dry runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable

from handlers.messages import (
    Capabilities,
    ChatRef,
    FileRef,
    Incoming,
    Kind,
    Outgoing,
    Reply,
    Sender,
)
from handlers.reports.intake import FileTooBig

Handle = Callable[[Incoming], Awaitable[Reply]]


class CollectingChannel:
    # It reaches every chat of its own (the outbox gives it everything addressed to it).
    reach: frozenset[str] | None = None

    def __init__(
        self, handle: Handle, name: str = "collect", capabilities: Capabilities | None = None
    ) -> None:
        self.name = name
        # Like Telegram unless a test says otherwise (a numbered channel: buttons=False).
        self.capabilities = capabilities or Capabilities()
        self.handle = handle
        self.outbox: defaultdict[str, list[Outgoing]] = defaultdict(list)
        # What `fetch` serves, by file reference: the photos a test "uploads".
        self.files: dict[str, bytes] = {}
        # What was fetched, in order: what the bot chose to download.
        self.fetched: list[str] = []
        self._counter = 0

    async def fetch(self, ref: FileRef, limit: int) -> bytes:
        self.fetched.append(ref.file_ref)
        data = self.files[ref.file_ref]
        if len(data) > limit:
            raise FileTooBig(len(data))
        return data

    async def send(self, chat_id: str, message: Outgoing, *, bulk: bool = False) -> str | None:
        self.outbox[chat_id].append(message)
        return None

    def incoming(
        self,
        who: str,
        text: str = "",
        *,
        kind: Kind | None = None,
        payload: str | None = None,
        chat_id: str | None = None,
        private: bool = True,
        language_code: str | None = "en",
        key: str | None = None,
        **extra: object,
    ) -> Incoming:
        """Build what a platform would deliver; commands are parsed as Telegram does."""
        self._counter += 1
        if kind is None:
            kind = Kind.COMMAND if text.startswith("/") else Kind.TEXT
        command, args = None, ""
        if kind is Kind.COMMAND:
            word, _, args = text[1:].partition(" ")
            command = word.lower()
        return Incoming(
            chat=ChatRef(self.name, chat_id or who, private),
            sender=Sender(who, who.title(), language_code=language_code),
            kind=kind,
            update_key=key if key is not None else f"u{self._counter}",
            text=text,
            command=command,
            args=args.strip(),
            payload=payload,
            **extra,  # type: ignore[arg-type]
        )

    async def say(self, who: str, text: str = "", **kw: object) -> Reply:
        """Deliver what `who` sends; the replies count as sent once handed back."""
        reply = await self.handle(self.incoming(who, text, **kw))  # type: ignore[arg-type]
        reply.sent()
        return reply
