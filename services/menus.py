"""The last numbered menu shown in each chat (DESIGN.md step 3).

Channels without buttons show options as a numbered list, and people answer with the digit or
the option's text. What the numbers meant is kept here, not in a process's memory, so the answer
is understood after a restart and by any worker; a card from the outbox counts as shown when it
is sent. The payloads found here are then checked like any button press.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import ChatMenu
from services.sql import upsert

_TABLE = ChatMenu.__table__
_LAST = select(ChatMenu.options).where(
    ChatMenu.channel == bindparam("channel"), ChatMenu.chat_id == bindparam("chat_id")
)


def remember(
    connection: Connection,
    channel: str,
    chat_id: str,
    options: Sequence[dict[str, Any]],
    now: datetime,
) -> None:
    """`options` ({"label", "payload"}, in their numbering from 1) are now the chat's menu."""
    upsert(
        connection,
        _TABLE,  # type: ignore[arg-type]
        {"channel": channel, "chat_id": chat_id, "options": list(options), "shown_at": now},
        ("options", "shown_at"),
    )


async def show(
    session: AsyncSession,
    channel: str,
    chat_id: str,
    options: Sequence[dict[str, Any]],
    now: datetime,
) -> None:
    await session.run_sync(lambda s: remember(s.connection(), channel, chat_id, options, now))


def last(connection: Connection, channel: str, chat_id: str) -> list[dict[str, Any]]:
    found = connection.execute(_LAST, {"channel": channel, "chat_id": chat_id}).scalar()
    return list(found or ())


def normalise(text: str) -> str:
    """How a typed answer is compared with an option's label: case, width, spaces and
    punctuation don't matter ("完成，继续" = "完成, 继续" = "完成继续")."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum())


def pick(options: Sequence[dict[str, Any]], text: str, *, by_number: bool) -> str | None:
    """The payload the typed `text` chooses from `options`: its number (where options are
    shown numbered), or its label; None when it names no option."""
    text = text.strip()
    if by_number and text.isdigit() and 1 <= int(text) <= len(options):
        return str(options[int(text) - 1]["payload"])
    wanted = normalise(text)
    if not wanted:
        return None
    matches = [o for o in options if wanted in _names(str(o["label"]))]
    return str(matches[0]["payload"]) if len(matches) == 1 else None


def _names(label: str) -> set[str]:
    """A label, and the word it starts with before a comma ("Done, continue": "Done"), which
    is what people type when a prompt says "press Done"."""
    names = {normalise(label)}
    head = label.replace("，", ",").split(",", 1)[0]
    if head != label and len(normalise(head)) >= 2:
        names.add(normalise(head))
    return names
