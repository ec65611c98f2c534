"""A terminal chat with the same flows: options are numbered, a photo is `/photo PATH`.

It is a channel like any other (DESIGN.md step 3): it shows one person's chat, the person named
by `--as`. Several consoles on one database are several people; each process delivers only its
own person's messages, and the others wait in the outbox for their own console.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TextIO

from handlers.messages import (
    Capabilities,
    ChatRef,
    FileRef,
    Incoming,
    Kind,
    Outgoing,
    Reply,
    Sender,
    numbered,
)
from handlers.reports.intake import FileTooBig
from services.media import MediaStorage

CHANNEL = "console"
PROMPT = "> "
Handle = Callable[[Incoming], Awaitable[Reply]]
log = logging.getLogger("linli.console")


class ConsoleChannel:
    name = CHANNEL
    # Plain text in a terminal: options are a numbered list answered with a digit or the
    # option's text (the engine resolves both against the chat's stored menu), a card's update
    # is printed anew, and a photo's place or a location can't be sent.
    capabilities = Capabilities(
        buttons=False,
        edits=False,
        press_answers=False,
        files_keep_location=False,
        locations=False,
    )

    def __init__(
        self,
        handle: Handle,
        user: str,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        language_code: str | None = None,
        media: MediaStorage | None = None,
    ) -> None:
        self.handle = handle
        self.user = user
        # The only chat this process can deliver to: the person at this keyboard.
        self.reach: frozenset[str] | None = frozenset({user})
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.language_code = language_code
        # Where images are shown from: a URL the person can open; without it, the bare key.
        self.media = media
        # A prompt is on screen, waiting for a line: a card arriving now goes on a line of
        # its own, and the prompt is shown again after it.
        self._prompting = False

    async def fetch(self, ref: FileRef, limit: int) -> bytes:
        """`/photo PATH` names a file on this machine; read no more than the limit allows."""
        return await asyncio.to_thread(self._read, Path(ref.file_ref), limit)

    @staticmethod
    def _read(path: Path, limit: int) -> bytes:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise FileTooBig(len(data))
        return data

    def to_incoming(self, line: str) -> Incoming:
        """A typed digit is plain text: what it answers is the chat's stored menu, which the
        engine knows (cards delivered by the outbox included), not this process."""
        text = line.strip()
        base = {
            "chat": ChatRef(CHANNEL, self.user, True),
            "sender": Sender(self.user, self.user, language_code=self.language_code),
        }
        if text.startswith("/photo"):
            path = text.removeprefix("/photo").strip()
            return Incoming(kind=Kind.PHOTO, photo=FileRef(str(Path(path).expanduser())), **base)
        if text.startswith("/") and len(text) > 1:
            command, _, args = text[1:].partition(" ")
            return Incoming(
                kind=Kind.COMMAND, text=text, command=command.lower(), args=args.strip(), **base
            )
        return Incoming(kind=Kind.TEXT, text=text, **base)

    async def send(self, chat_id: str, message: Outgoing, *, bulk: bool = False) -> str | None:
        """The outbox's way in: only this person's chat can be shown here."""
        if chat_id != self.user:
            # The dispatcher claims only rows within `reach`: this is a bug, not a person.
            log.warning("console asked to show another chat's message")
            raise ValueError("a console shows only its own person's chat")
        if self._prompting:
            self.stdout.write("\n")
        self.render(message)
        if self._prompting:
            self.stdout.write(PROMPT)
            self.stdout.flush()

    def render(self, message: Outgoing) -> None:
        lines = [f"[{a.kind}: {self._where(a.key)}]" for a in message.attachments]
        if message.image_key:
            lines.append(f"[image: {self._where(message.image_key)}]")
        lines.append(message.plain_text)
        lines += [f"  {n}) {option.label}" for n, option in numbered(message.options)]
        self.stdout.write("\n".join(lines) + "\n")
        self.stdout.flush()

    def _where(self, key: str) -> str:
        """How a stored file is shown: its link on the web app (the key, with no storage)."""
        return self.media.url(key) if self.media is not None else key

    async def say(self, line: str) -> Reply:
        reply = await self.handle(self.to_incoming(line))
        for message in reply.messages:
            self.render(message)
        reply.sent()
        return reply

    async def run(self) -> None:
        """Read lines until end of input. Cancelling this stops it at once, whatever stdin does."""
        self.stdout.write(
            f"Linli console — you are {self.user}. /help lists commands; Ctrl-D quits.\n"
        )
        self.stdout.flush()
        lines = self._lines()
        try:
            while True:
                self.stdout.write(PROMPT)
                self.stdout.flush()
                self._prompting = True
                try:
                    line = await anext(lines, "")
                finally:
                    self._prompting = False
                if not line:
                    return
                if line.strip():
                    await self.say(line)
        finally:
            await lines.aclose()

    async def _lines(self) -> AsyncIterator[str]:
        """stdin's lines, read on the event loop when the descriptor can tell us it is readable.

        A read blocked in a thread can't be cancelled: an open pipe that never sends anything
        (a service manager's stdin) would then hold up the process after SIGTERM.
        """
        try:
            fd = self.stdin.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is None:  # an in-memory stream: its reads never wait
            while line := self.stdin.readline():
                yield line
            return
        decoder = codecs.getincrementaldecoder(self.stdin.encoding or "utf-8")(errors="replace")
        pending = ""
        while True:
            chunk = await _read(fd)
            pending += decoder.decode(chunk, final=not chunk)
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line + "\n"
            if not chunk:
                if pending:
                    yield pending
                return


async def _read(fd: int, size: int = 65536) -> bytes:
    """One read from `fd`, awaited without a thread where the descriptor can be watched.

    The descriptor stays in blocking mode (a terminal shares it with stdout): the read only
    happens once the loop has seen that it won't wait.
    """
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    try:
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    except PermissionError:
        return os.read(fd, size)  # a file or /dev/null: can't be watched, and never waits
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    return os.read(fd, size)
