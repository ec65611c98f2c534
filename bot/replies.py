"""Sends the replies a dead process committed but never sent (services/replies.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bot.delivery import RecipientBlocked, Sender
from handlers.messages import Outgoing
from services import replies
from services.sql import Transaction

log = logging.getLogger("linli.replies")

# A live process sends its replies within moments and forgets them within a second; replies
# older than this were left by a process that died in between.
LEFT_AFTER = timedelta(minutes=2)


class LeftReplies:
    def __init__(
        self,
        transaction: Transaction,
        senders: Mapping[str, Sender],
        clock: Callable[[], datetime],
    ) -> None:
        self.transaction = transaction
        # The outbox dispatcher's channels, read at call time: channels attach as they start.
        self.senders = senders
        self.clock = clock

    async def run_once(self) -> int:
        """Send what was left behind; returns how many updates' replies went out.

        Sent outside any transaction (a send can take seconds, and SQLite has one writer); a
        crash before they are forgotten sends them once more, which at-least-once allows.
        """
        async with self.transaction() as session:
            left = await replies.left_behind(session, self.clock() - LEFT_AFTER)
        done: list[tuple[str, str]] = []
        for unsent in left:
            sender = self.senders.get(unsent.channel)
            if sender is None or (sender.reach is not None and unsent.chat_id not in sender.reach):
                continue  # that chat is not reachable from here; keep them for one that is
            try:
                for message in unsent.messages:
                    await sender.send(unsent.chat_id, Outgoing.from_dict(message))
            except RecipientBlocked:
                log.info("left replies unreachable channel=%s key=%s", unsent.channel, unsent.key)
            except Exception as exc:
                log.warning(
                    "left replies not sent channel=%s key=%s: %s",
                    unsent.channel,
                    unsent.key,
                    type(exc).__name__,
                )
                continue
            done.append((unsent.channel, unsent.key))
        if done:
            async with self.transaction() as session:
                await replies.forget(session, done)
        return len(done)
