"""The neutral message model between channels and the dialogue engine (DESIGN.md, step 1 and 3).

Channels translate platform updates into `Incoming` and render `Outgoing`; features never see a
platform object. Everything here is plain data so it can be serialised into the outbox.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from services.broadcasts.html import plain


class Kind(enum.StrEnum):
    TEXT = "text"
    COMMAND = "command"
    PHOTO = "photo"
    VOICE = "voice"  # kept with a report, for residents who would rather speak than type
    LOCATION = "location"
    CHOICE = "choice"
    # A file that is not a picture (a PDF): taken only where a step asks for one (staff's
    # announcements).
    DOCUMENT = "document"
    # Something we cannot use (video, sticker, contact…); flows answer it politely.
    OTHER = "other"


@dataclass(frozen=True)
class ChatRef:
    channel: str
    chat_id: str
    private: bool = True
    # A group's name, where the platform says it (for `linli group list`).
    title: str = ""


@dataclass(frozen=True)
class Sender:
    external_id: str
    display_name: str = ""
    username: str | None = None
    language_code: str | None = None


@dataclass(frozen=True)
class FileRef:
    """A reference the channel can later fetch bytes for; big media is not read up front."""

    file_ref: str
    from_document: bool = False
    size: int | None = None
    mime_type: str | None = None
    name: str = ""  # a document's file name, as sent


@dataclass(frozen=True)
class StoredMedia:
    """A photo or voice note after intake: checked, cleaned and stored under its hash."""

    kind: str  # photo | voice
    key: str
    thumb_key: str | None = None
    phash: str | None = None
    # Where an original photo was taken (EXIF GPS, read before stripping), to suggest a place.
    gps: tuple[float, float] | None = None
    name: str = ""  # a document's file name


@dataclass(frozen=True)
class Incoming:
    chat: ChatRef
    sender: Sender
    kind: Kind
    # The platform's redelivery key (update_id, (FromUserName, MsgId)); None: not deduplicated.
    update_key: str | None = None
    text: str = ""
    command: str | None = None
    args: str = ""
    payload: str | None = None
    photo: FileRef | None = None
    voice: FileRef | None = None
    document: FileRef | None = None
    # Filled in by media intake before the update's transaction (handlers/reports/intake.py):
    # the stored file, or why it was refused (too_big, not_an_image, broken, unreadable, …).
    media: StoredMedia | None = None
    media_problem: str | None = None
    location: tuple[float, float] | None = None
    other_kind: str | None = None

    @property
    def channel(self) -> str:
        return self.chat.channel


@dataclass(frozen=True)
class Capabilities:
    """What a channel can show and what its people can send; flows choose their wording by it,
    never by the channel's name."""

    # Options as buttons; False: a numbered list, answered with the digit or the option's text.
    buttons: bool = True
    # A card can be changed in place (an edit); False: its update arrives as a new message.
    edits: bool = True
    # A press on a shared card can be answered to the presser alone, in place (Telegram's
    # callback answer); False: the answer goes to their private chat.
    press_answers: bool = True
    # A photo sent as a file keeps the camera's EXIF, and so where it was taken.
    files_keep_location: bool = True
    # People can send a location pin.
    locations: bool = True


@dataclass(frozen=True)
class Option:
    label: str
    payload: str


def numbered(options: tuple[Option, ...]) -> list[tuple[int, Option]]:
    """The one numbering of options, from 1: what a numbered list shows, what a digit answers
    and what the button payloads carry (handlers/engine.py)."""
    return list(enumerate(options, 1))


@dataclass(frozen=True)
class Attachment:
    """A file sent ahead of a message: the rest of a report's photos, its voice notes."""

    kind: str  # photo | voice | document
    key: str  # the content key in media storage (services/media), never a local path
    name: str = ""  # a document's file name


@dataclass(frozen=True)
class CardRef:
    """A message that stands for something and is kept up to date: a later message for the
    same card (in the same chat) replaces it, by an edit where the channel can edit."""

    kind: str
    subject: str


@dataclass(frozen=True)
class Outgoing:
    text: str
    options: tuple[Option, ...] = ()
    # Ask the channel for a way into the private chat, carrying this start parameter.
    private_start: str | None = None
    private_label: str = ""
    # The message's own picture, by media key; with a short text, the text becomes its caption.
    image_key: str | None = None
    attachments: tuple[Attachment, ...] = ()
    card: CardRef | None = None
    # The notification kind it renders (a notice from a use case), for channels that reach
    # people outside a conversation another way (WeChat's templates).
    notice: str | None = None
    # The text is Telegram's HTML subset (a broadcast, checked when composed); channels
    # without formatting show `plain_text`.
    html: bool = False

    @property
    def plain_text(self) -> str:
        return plain(self.text) if self.html else self.text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outgoing:
        card = data.get("card")
        return cls(
            text=data["text"],
            options=tuple(Option(**o) for o in data.get("options", ())),
            private_start=data.get("private_start"),
            private_label=data.get("private_label", ""),
            image_key=data.get("image_key"),
            attachments=tuple(Attachment(**a) for a in data.get("attachments", ())),
            card=CardRef(**card) if card else None,
            notice=data.get("notice"),
            html=bool(data.get("html", False)),
        )


@dataclass
class Reply:
    """What one handled update produced, and how it went (for the one log line)."""

    messages: list[Outgoing] = field(default_factory=list)
    flow: str = "-"
    step: str = "-"
    outcome: str = "ok"
    # A press: whether the pressed message's buttons go away (the flow's choice, carried by
    # the button's payload), and what the presser alone is told (a shared card in a group).
    clear_pressed: bool = True
    press_answer: str | None = None
    # Shown as an alert the presser closes (a refusal to read), not a passing notification.
    press_alert: bool = False
    # Set by the engine when the messages are kept until sent (services/replies.py).
    receipt: Callable[[], None] | None = None

    def sent(self) -> None:
        """The channel calls this once every message reached the platform."""
        if self.receipt is not None:
            self.receipt()
            self.receipt = None
