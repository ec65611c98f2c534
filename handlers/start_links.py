"""Links that open a command in the bot's private chat, for QR codes people scan (a reward's
pickup code): Telegram's deep links, `https://t.me/<bot>?start=go_<command>-<args>`.

The handlers cannot know the bot's username: the Telegram channel learns it when it starts and
gives this object the way to make its links (bot/channels/telegram.py). Without Telegram there
is no link, and what a QR code carries is the command's argument itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# `/start go_<command>[-<args>]` runs `/<command> [args]` (handlers/engine.py): a start
# parameter allows only letters, digits, "_" and "-", and command names have no "-".
GO_PREFIX = "go_"
ARGS = "-"


def start_parameter(command: str, args: str = "") -> str:
    return f"{GO_PREFIX}{command}{ARGS}{args}" if args else f"{GO_PREFIX}{command}"


def command_of(parameter: str) -> tuple[str, str] | None:
    """The command and its argument that a start parameter carries; None for an invite code."""
    if not parameter.startswith(GO_PREFIX):
        return None
    command, _, args = parameter.removeprefix(GO_PREFIX).partition(ARGS)
    return command, args


@dataclass
class StartLinks:
    # start parameter → link; set by the channel that can make them, once it knows its name.
    make: Callable[[str], str] | None = None

    def to_command(self, command: str, args: str = "") -> str | None:
        return None if self.make is None else self.make(start_parameter(command, args))
