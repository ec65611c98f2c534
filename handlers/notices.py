"""The one writer of notification intents: each `Notice` a use case returns is rendered in its
reader's language and queued in the outbox in the same transaction, with its actions as
durable buttons (tickets). Features register how their notices read; nothing else writes
notices to other people."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from handlers.i18n import Translator
from handlers.messages import CardRef, Outgoing
from services import tickets
from services.notices import GroupNotice, Notice

if TYPE_CHECKING:
    from handlers.flow import Notifier, Someone

Render = Callable[["Notifier", Translator, Notice], Awaitable[Outgoing]]
GroupRender = Callable[["Notifier", Translator, GroupNotice], Awaitable[Outgoing]]


@dataclass(frozen=True)
class NoticeKind:
    # How it reads for a person (None: a kind that goes to group chats only).
    render: Render | None
    # The ticket kind the notice's actions are pressed as, and each action's label (an N_ msgid).
    ticket: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # How it reads in a group chat (GroupNotice), where the kind can go to one.
    group: GroupRender | None = None
    # How long its buttons work: a card that waits for a whole phase outlives the default.
    lifetime: timedelta = tickets.LIFETIME


@dataclass
class NoticeKinds:
    kinds: dict[str, NoticeKind] = field(default_factory=dict)

    def add(self, kind: str, spec: NoticeKind) -> None:
        self.kinds[kind] = spec

    def update(self, kinds: Mapping[str, NoticeKind]) -> None:
        self.kinds.update(kinds)

    async def render(self, notifier: Notifier, reader: Someone, notice: Notice) -> Outgoing:
        """The notice as `reader` reads it, with its actions as their own durable buttons."""
        spec = self.kinds[notice.kind]
        assert spec.render is not None, notice.kind
        t = notifier.translator_for(reader)
        message = replace(await spec.render(notifier, t, notice), notice=notice.kind)
        if notice.actions:
            assert spec.ticket is not None and notice.subject_id is not None, notice.kind
            options = await notifier.ticket_options(
                reader,
                spec.ticket,
                notice.subject_id,
                [(t.gettext(spec.labels[a]), a) for a in notice.actions],
                lifetime=spec.lifetime,
            )
            message = replace(message, options=options)
        if notice.card is not None:
            message = replace(message, card=CardRef(notice.card, str(notice.subject_id)))
        return message

    async def render_group(self, notifier: Notifier, notice: GroupNotice) -> Outgoing:
        """The notice as a group chat reads it: in the community's language."""
        spec = self.kinds[notice.kind]
        assert spec.group is not None, notice.kind
        t = notifier.catalogs.get(notifier.default_locale)
        message = replace(await spec.group(notifier, t, notice), notice=notice.kind)
        if notice.card is not None:
            message = replace(message, card=CardRef(notice.card, str(notice.subject_id)))
        return message
