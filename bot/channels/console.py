"""A terminal chat with the same flows: options are numbered, a photo is `/photo PATH`."""

from __future__ import annotations

import asyncio
import codecs
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TextIO

from handlers.messages import ChatRef, FileRef, Incoming, Kind, Option, Outgoing, Reply, Sender
from handlers.reports.intake import FileTooBig

CHANNEL = "console"
Handle = Callable[[Incoming], Awaitable[Reply]]


class ConsoleChannel:
    name = CHANNEL

    def __init__(
        self,
        handle: Handle,
        user: str,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        language_code: str | None = None,
    ) -> None:
        self.handle = handle
        self.user = user
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.language_code = language_code
        # What the last numbered list meant; the payloads are still checked by the engine.
        self._shown: list[Option] = []

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
        if text.isdigit() and 1 <= int(text) <= len(self._shown):
            return Incoming(kind=Kind.CHOICE, payload=self._shown[int(text) - 1].payload, **base)
        return Incoming(kind=Kind.TEXT, text=text, **base)

    async def send(self, chat_id: str, message: Outgoing) -> None:
        if chat_id != self.user:
            self.stdout.write(f"[to {chat_id}] ")
        self.render(message, remember=chat_id == self.user)

    def render(self, message: Outgoing, *, remember: bool = True) -> None:
        lines = [message.text]
        if message.image_path:
            lines.insert(0, f"[image: {message.image_path}]")
        lines[:0] = [f"[{a.kind}: {a.path}]" for a in message.attachments]
        lines += [f"  {i}) {option.label}" for i, option in enumerate(message.options, 1)]
        lines += [f"  → {link.label}: {link.url}" for link in message.links]
        if message.options and remember:
            self._shown = list(message.options)
        self.stdout.write("\n".join(lines) + "\n")
        self.stdout.flush()

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
                self.stdout.write("> ")
                self.stdout.flush()
                line = await anext(lines, "")
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
