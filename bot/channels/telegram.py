"""Telegram through python-telegram-bot, fed by polling or by our own Starlette webhook route.

PTB is used as a transport only (no ConversationHandler): every update goes to one callback
that builds an `Incoming`, so dialogue state stays in the database with the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import (
    BotCommand,
    ChatMemberUpdated,
    InlineKeyboardMarkup,
    MessageEntity,
    Update,
    User,
)
from telegram.constants import MessageLimit
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler
from telegram.warnings import PTBDeprecationWarning

from bot.channels.telegram_http import AiohttpRequest
from bot.config import TelegramSettings
from bot.delivery import RateLimited, RecipientBlocked
from bot.pace import MemoryPace, Pace
from handlers.i18n import Catalogs
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
from handlers.reports.intake import FileTooBig, is_pdf
from handlers.start_links import StartLinks
from services import cards, groups
from services.media import MediaStorage
from services.sql import Transaction

log = logging.getLogger("linli.telegram")

CHANNEL = "telegram"
# Paid broadcasts (Bot API 7.11, `allow_paid_broadcast`) may go up to 1,000 a second.
PAID_PER_SECOND = 950.0
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# An update is a few kilobytes; anything this big is not from Telegram.
MAX_WEBHOOK_BODY = 1 << 20
# The update fields that carry a Message (PTB reads them all; the dialogue reads `message`).
MESSAGE_FIELDS = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
)
# A callback answer shows at most this many characters; a longer answer goes to the private chat.
PRESS_ANSWER_LIMIT = 200
# An edit that changes nothing is not an error: the card already shows what it should.
NOT_MODIFIED = "message is not modified"
# Telegram's command menu takes ISO 639-1 codes.
MENU_LANGUAGES = {"zh_CN": "zh", "en": "en"}
UNUSABLE_KINDS = (
    "video",
    "video_note",
    "audio",
    "sticker",
    "animation",
    "contact",
    "poll",
)

Handle = Callable[[Incoming], Awaitable[Reply]]


def deep_link(bot_username: str, start: str) -> str:
    """Opens the private chat with the bot and sends it `/start <start>`."""
    return f"https://t.me/{bot_username}?start={start}"


@dataclass(frozen=True)
class MenuEntry:
    command: str
    description: str  # untranslated msgid


class KeyedLocks:
    """Updates of one chat are handled in order, while different chats run concurrently."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _sender(user: User) -> Sender:
    return Sender(
        external_id=str(user.id),
        display_name=user.full_name,
        username=user.username,
        language_code=user.language_code,
    )


def _is_id(value: object) -> bool:
    return type(value) is int  # not a bool, not a string of digits


def _bad_message(message: object) -> bool:
    """Whether a Message lacks the shape of the fields we read (chat, sender, text)."""
    if not isinstance(message, dict):
        return True
    chat = message.get("chat")
    if not isinstance(chat, dict) or not _is_id(chat.get("id")):
        return True
    if not isinstance(chat.get("type"), str):
        return True
    sender = message.get("from")
    if sender is not None and not (isinstance(sender, dict) and _is_id(sender.get("id"))):
        return True
    if any(not isinstance(message.get(k, ""), str) for k in ("text", "caption")):
        return True
    return any(not isinstance(message.get(k, []), list) for k in ("entities", "photo"))


def well_formed(data: object) -> bool:
    """Whether a webhook body has the shape of a Telegram update, where the dialogue reads it.

    Every field of an Update but `update_id` is an object. PTB's parser trusts the shape it is
    given, so this is checked first; whatever else it can't parse is refused where it is parsed.
    """
    if not isinstance(data, dict) or not _is_id(data.get("update_id")):
        return False
    if any(not isinstance(v, dict) for k, v in data.items() if k != "update_id"):
        return False
    if any(_bad_message(data[k]) for k in MESSAGE_FIELDS if k in data):
        return False
    query = data.get("callback_query")
    if query is None:
        return True
    sender = query.get("from")
    if not isinstance(sender, dict) or not _is_id(sender.get("id")):
        return False
    if "message" in query and _bad_message(query["message"]):
        return False
    return isinstance(query.get("data", ""), str)


def retry_after_seconds(exc: RetryAfter) -> float:
    """PTB 22 gives an int or a timedelta, and warns when asked for the int."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return max(seconds, 0.0)


IN_CHAT = frozenset({"member", "administrator", "creator", "restricted"})


def _added_to_group(member: ChatMemberUpdated, key: str) -> Incoming | None:
    """Adding the bot to a group asks, as `/group` from whoever added it, which part of the
    community the group serves."""
    if member.chat.type == "private" or member.from_user is None or member.from_user.is_bot:
        return None
    was_in = member.old_chat_member.status in IN_CHAT
    is_in = member.new_chat_member.status in IN_CHAT
    if was_in or not is_in:
        return None
    return Incoming(
        chat=ChatRef(CHANNEL, str(member.chat.id), False, member.chat.title or ""),
        sender=_sender(member.from_user),
        kind=Kind.COMMAND,
        text="/group",
        command="group",
        update_key=key,
    )


def removed_from_group(update: Update) -> str | None:
    """The group's chat id when this update says the bot was removed from it."""
    member = update.my_chat_member
    if member is None or member.chat.type == "private":
        return None
    if member.new_chat_member.status in IN_CHAT:
        return None
    return str(member.chat.id)


def group_moved(update: Update) -> tuple[str, str] | None:
    """(old chat id, new chat id) when this update says a group became a supergroup: Telegram
    says it in both chats, once each."""
    message = update.message
    if message is None:
        return None
    if message.migrate_to_chat_id is not None:
        return str(message.chat.id), str(message.migrate_to_chat_id)
    if message.migrate_from_chat_id is not None:
        return str(message.migrate_from_chat_id), str(message.chat.id)
    return None


def to_incoming(update: Update, bot_username: str) -> Incoming | None:
    """The one place that reads Telegram's structures; None means "not for the dialogue"."""
    key = str(update.update_id)
    query = update.callback_query
    if query is not None:
        chat = query.message.chat if query.message is not None else None
        chat_id = str(chat.id) if chat is not None else str(query.from_user.id)
        private = chat is None or chat.type == "private"
        return Incoming(
            chat=ChatRef(CHANNEL, chat_id, private),
            sender=_sender(query.from_user),
            kind=Kind.CHOICE,
            update_key=key,
            payload=query.data or "",
        )
    member = update.my_chat_member
    if member is not None:
        return _added_to_group(member, key)
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    chat = ChatRef(
        CHANNEL, str(message.chat.id), message.chat.type == "private", message.chat.title or ""
    )
    base = {"chat": chat, "sender": _sender(message.from_user), "update_key": key}
    text = message.text or ""
    entity = message.entities[0] if message.entities else None
    if entity is not None and entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
        word = text[1 : entity.length]
        command, _, addressee = word.partition("@")
        if addressee and addressee.lower() != bot_username.lower():
            return None  # a command for another bot in the same group
        return Incoming(
            kind=Kind.COMMAND,
            text=text,
            command=command.lower(),
            args=text[entity.length :].strip(),
            **base,
        )
    if text:
        return Incoming(kind=Kind.TEXT, text=text, **base)
    if message.photo:
        largest = message.photo[-1]
        return Incoming(
            kind=Kind.PHOTO,
            text=message.caption or "",
            photo=FileRef(largest.file_id, size=largest.file_size, mime_type="image/jpeg"),
            **base,
        )
    document = message.document
    if document is not None and (document.mime_type or "").startswith("image/"):
        return Incoming(
            kind=Kind.PHOTO,
            text=message.caption or "",
            photo=FileRef(
                document.file_id,
                from_document=True,
                size=document.file_size,
                mime_type=document.mime_type,
            ),
            **base,
        )
    if document is not None and is_pdf(document.mime_type, document.file_name):
        return Incoming(
            kind=Kind.DOCUMENT,
            text=message.caption or "",
            document=FileRef(
                document.file_id,
                from_document=True,
                size=document.file_size,
                mime_type=document.mime_type,
                name=document.file_name or "",
            ),
            **base,
        )
    if message.voice is not None:
        return Incoming(
            kind=Kind.VOICE,
            voice=FileRef(
                message.voice.file_id,
                size=message.voice.file_size,
                mime_type=message.voice.mime_type or "audio/ogg",
            ),
            **base,
        )
    if message.location is not None:
        return Incoming(
            kind=Kind.LOCATION,
            location=(message.location.latitude, message.location.longitude),
            **base,
        )
    other = next((name for name in UNUSABLE_KINDS if getattr(message, name, None)), None)
    return Incoming(
        kind=Kind.OTHER, other_kind=other or ("document" if document else "unknown"), **base
    )


class TelegramChannel:
    name = CHANNEL
    capabilities = Capabilities(
        buttons=True, edits=True, press_answers=True, files_keep_location=True, locations=True
    )
    # One bot reaches every chat it is in.
    reach: frozenset[str] | None = None

    def __init__(
        self,
        settings: TelegramSettings,
        handle: Handle,
        catalogs: Catalogs,
        menu: Iterable[MenuEntry],
        default_locale: str,
        *,
        media: MediaStorage,
        transaction: Transaction,
        links: StartLinks | None = None,
        pace: Pace | None = None,
    ) -> None:
        self.settings = settings
        # Told how to make deep links once the bot's username is known (start).
        self.links = links
        # The bot's send rate, kept with every other process of the bot (bot/pace.py).
        self.pace: Pace = pace or MemoryPace()
        # Pictures are uploaded from storage by key; card message ids are kept in the database.
        self.media = media
        self.transaction = transaction
        self.handle = handle
        self.catalogs = catalogs
        self.menu = list(menu)
        self.default_locale = default_locale
        self.locks = KeyedLocks()
        self.http = AiohttpRequest(connection_pool_size=64)
        # After a 429, replies wait until then (loop time): the bot does not hammer Telegram.
        self._quiet_until = 0.0
        # Set by stop(): waits for a 429 end early, so that shutdown is not held up by them.
        self._stopping = asyncio.Event()
        self._api = f"{settings.api_base_url}{settings.token}/"
        self._send_url = f"{self._api}sendMessage"
        builder = (
            ApplicationBuilder()
            .token(settings.token)
            .base_url(settings.api_base_url)
            .base_file_url(settings.file_base_url)
            .concurrent_updates(True)
            .request(self.http)
            .get_updates_request(
                AiohttpRequest(connection_pool_size=2, read_timeout=settings.poll_timeout + 10.0)
            )
        )
        if settings.mode == "webhook":
            builder = builder.updater(None)
        self.app: Application = builder.build()  # type: ignore[type-arg]
        self.app.add_handler(TypeHandler(Update, self._on_update))
        self.app.add_error_handler(self._on_error)

    @property
    def username(self) -> str:
        return self.app.bot.username

    async def start(self) -> None:
        await self.app.initialize()
        if self.links is not None:
            self.links.make = partial(deep_link, self.username)
        await self._set_menu()
        await self.app.start()
        if self.settings.mode == "polling":
            assert self.app.updater is not None
            await self.app.updater.start_polling(
                poll_interval=0.0,
                timeout=self.settings.poll_timeout,
                allowed_updates=Update.ALL_TYPES,
            )
        else:
            await self.app.bot.set_webhook(
                url=self.settings.webhook_url,
                secret_token=self.settings.webhook_secret or None,
                allowed_updates=Update.ALL_TYPES,
            )

    async def stop(self) -> None:
        self._stopping.set()
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def _set_menu(self) -> None:
        """The menu lists what anyone may do; /help shows the role-specific rest."""
        for locale, language in [*MENU_LANGUAGES.items(), (self.default_locale, None)]:
            t = self.catalogs.get(locale)
            commands = [BotCommand(e.command, t.gettext(e.description)) for e in self.menu]
            await self.app.bot.set_my_commands(commands, language_code=language)

    async def fetch(self, ref: FileRef, limit: int) -> bytes:
        """The bytes behind a file id (getFile, then the file URL); at most `limit` of them."""
        if ref.size is not None and ref.size > limit:
            raise FileTooBig(ref.size)
        file = await self.app.bot.get_file(ref.file_ref)
        if file.file_size is not None and file.file_size > limit:
            raise FileTooBig(file.file_size)
        data = bytes(await file.download_as_bytearray())
        if len(data) > limit:
            raise FileTooBig(len(data))
        return data

    def routes(self) -> list[Route]:
        """The webhook exists only in webhook mode, where the configuration requires a secret."""
        if self.settings.mode != "webhook":
            return []
        return [Route(WEBHOOK_PATH, self._webhook, methods=["POST"])]

    async def _webhook(self, request: Request) -> Response:
        secret = self.settings.webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
            return JSONResponse({"ok": False}, status_code=403)
        body = await _read_capped(request, MAX_WEBHOOK_BODY)
        if isinstance(body, Response):
            return body
        try:
            data = orjson.loads(body)  # nesting deeper than 1024 is a JSONDecodeError here
            if not well_formed(data):
                raise ValueError("not shaped like an update")
            update = Update.de_json(data, self.app.bot)
        except Exception:  # untrusted input: whatever PTB's parser trips on is the sender's fault
            log.info("webhook body refused: not a Telegram update (%d bytes)", len(body))
            return JSONResponse({"ok": False, "error": "bad update"}, status_code=400)
        # Handled before we answer: if we die first, Telegram redelivers and the key dedups it.
        await self.app.process_update(update)
        return JSONResponse({"ok": True})

    async def _on_update(self, update: object, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert isinstance(update, Update)
        left = removed_from_group(update)
        if left is not None:
            # A group that removes the bot serves nothing any more, and gets nothing more (the
            # same on a redelivery).
            async with self.transaction() as session:
                await groups.removed(session, CHANNEL, left, datetime.now(UTC))
            log.info("telegram removed from group chat=%s", left)
            return
        moved = group_moved(update)
        if moved is not None:
            await self._group_moved(*moved)
            return
        incoming = to_incoming(update, self.username)
        if incoming is None:
            return
        if incoming.chat.private and incoming.chat.chat_id != incoming.sender.external_id:
            # In a private chat with the bot, Telegram's chat id is the person's id. An update
            # that says otherwise is forged; acting on it would save someone else's chat as
            # theirs.
            log.warning(
                "telegram update refused update=%s: private chat %s is not sender %s's",
                update.update_id,
                incoming.chat.chat_id,
                incoming.sender.external_id,
            )
            return
        query = update.callback_query
        async with self.locks.hold(incoming.chat.chat_id):
            try:
                reply = await self.handle(incoming)
            except BaseException:
                if query is not None:
                    await self._answer(query, None)  # no spinner left, whatever happened
                raise
            if query is not None:
                answer = reply.press_answer
                short = answer is not None and len(answer) <= PRESS_ANSWER_LIMIT
                await self._answer(query, answer if short else None, alert=reply.press_alert)
                if answer is not None and not short:
                    # Too long to show in place: the presser alone reads it, privately.
                    await self.reply(incoming.sender.external_id, Outgoing(answer))
                if (
                    query.message is not None
                    and reply.outcome != "duplicate"
                    and reply.clear_pressed
                ):
                    # The buttons did their work (or were stale): make them unpressable, first,
                    # so the person's next tap lands on the new message. The flow may keep them.
                    try:
                        await query.edit_message_reply_markup(reply_markup=None)
                    except TelegramError as exc:
                        log.debug("could not clear keyboard: %s", exc)
            for message in reply.messages:
                await self.reply(incoming.chat.chat_id, message, update.update_id)
            reply.sent()

    @staticmethod
    async def _answer(query: Any, text: str | None, *, alert: bool = False) -> None:
        try:
            # An alert stays until the person closes it; a plain answer passes by.
            await query.answer(text=text, show_alert=True if alert and text else None)
        except TelegramError as exc:
            log.debug("answerCallbackQuery failed: %s", exc)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error(
            "telegram handler error update=%s",
            getattr(update, "update_id", "?"),
            exc_info=context.error,
        )

    def _keyboard(self, message: Outgoing) -> dict[str, Any] | None:
        """Options as inline buttons, two to a row when they are short."""
        buttons = [{"text": o.label, "callback_data": o.payload} for o in message.options]
        short = all(len(o.label) <= 12 for o in message.options)
        width = 2 if short and len(buttons) > 1 else 1
        rows = [buttons[i : i + width] for i in range(0, len(buttons), width)]
        if message.private_start is not None:
            url = deep_link(self.username, message.private_start)
            rows.append([{"text": message.private_label or "→", "url": url}])
        return {"inline_keyboard": rows} if rows else None

    async def reply(self, chat_id: str, message: Outgoing, update_id: int | str = "?") -> None:
        """Send a reply to the person who wrote: a 429 is waited out, then the same message is
        sent again; the replies after it follow in order. While a 429 is being waited out, the
        replies in other chats wait too.
        """
        loop = asyncio.get_running_loop()
        while True:
            wait = self._quiet_until - loop.time()
            if wait > 0 and not await self._pause(wait):
                raise RateLimited(wait)  # stopping: the reply stays unsent, as if we had died
            try:
                await self.send(chat_id, message)
                return
            except RateLimited as exc:
                log.warning(
                    "telegram reply rate limited update=%s chat=%s retry_after=%ss",
                    update_id,
                    chat_id,
                    f"{exc.retry_after:g}",
                )

    async def send(self, chat_id: str, message: Outgoing, *, bulk: bool = False) -> str | None:
        """Render one neutral message. A card already shown in this chat is edited in place
        (its id is kept in the database); anything else is sent, and a card's id remembered.

        Sent to a group's old id (we missed Telegram's service message, or it came late): the
        group moves to its new id and the message goes there now, a card as a new message (its
        old message stayed behind). Every part goes to one chat, so none went to the old one.

        `bulk`: a broadcast's message, which waits for a free slot of the bot's rate (pace.py)
        and a group's; replies and notices take the next slot. Returns how it went: None, the
        channel's one way."""
        try:
            await self._send(chat_id, message, bulk)
        except ChatMigrated as exc:
            new = str(exc.new_chat_id)
            await self._group_moved(chat_id, new)
            await self._send(new, message, bulk)
        return None

    async def _send(self, chat_id: str, message: Outgoing, bulk: bool = False) -> None:
        card = message.card
        if card is not None and await self._edit_card(chat_id, message):
            return
        sent = await self._send_new(chat_id, message, bulk)
        if card is not None and sent is not None:
            async with self.transaction() as session:
                await cards.remember(
                    session,
                    CHANNEL,
                    chat_id,
                    card.kind,
                    card.subject,
                    cards.Shown(str(sent), message.image_key is not None),
                    datetime.now(UTC),
                )

    async def _edit_card(self, chat_id: str, message: Outgoing) -> bool:
        """Edit the card's message; False when it must be sent anew (never shown here, deleted,
        too old to edit, or a picture that would become text or the other way round)."""
        assert message.card is not None
        async with self.transaction() as session:
            shown = await cards.find(
                session, CHANNEL, chat_id, message.card.kind, message.card.subject
            )
        if shown is None:
            return False
        keyboard = self._keyboard(message)
        payload: dict[str, Any] = {"chat_id": chat_id, "message_id": int(shown.message_id)}
        if keyboard is not None:
            payload["reply_markup"] = keyboard
        image = message.image_key is not None
        if image and shown.has_image and len(message.text) <= MessageLimit.CAPTION_LENGTH:
            method, payload["caption"] = "editMessageCaption", message.text
        elif (
            not image and not shown.has_image and len(message.text) <= MessageLimit.MAX_TEXT_LENGTH
        ):
            method, payload["text"] = "editMessageText", message.text
        else:
            await self._clear_buttons(chat_id, shown.message_id)
            return False
        try:
            await self._paced(chat_id, False)
            await self.http.call(f"{self._api}{method}", payload)
        except RetryAfter as exc:
            raise RateLimited(retry_after_seconds(exc)) from exc
        except Forbidden as exc:
            raise RecipientBlocked(str(exc)) from exc
        except BadRequest as exc:
            if NOT_MODIFIED in str(exc).lower():
                return True
            log.info("card not editable chat=%s: %s; sending it anew", chat_id, exc)
            return False
        return True

    async def _clear_buttons(self, chat_id: str, message_id: str) -> None:
        """The old message of a card sent anew keeps its text but loses its buttons."""
        try:
            await self.http.call(
                f"{self._api}editMessageReplyMarkup",
                {"chat_id": chat_id, "message_id": int(message_id)},
            )
        except TelegramError as exc:
            log.debug("could not clear an old card's buttons: %s", exc)

    async def _media(self, key: str) -> bytes:
        def read() -> bytes:
            with self.media.open(key) as stored:
                return stored.read()

        return await asyncio.to_thread(read)

    async def _send_new(self, chat_id: str, message: Outgoing, bulk: bool = False) -> int | None:
        """Long text is split on line breaks to fit Telegram. A picture carries the text as its
        caption (and the buttons) when it fits, so a dispatch card arrives as one message.
        Returns the id of the message that carries the text and buttons.

        A 429 on the first part raises RateLimited: nothing went out, and the caller sends the
        whole message again when Telegram allows. A 429 on a later part is waited out here, so
        that no part is sent twice.
        """
        keyboard = self._keyboard(message)
        bot = self.app.bot
        # A broadcast with paid broadcasts on: Telegram takes up to 1,000 a second, for Stars.
        paid = bulk and self.settings.paid_broadcast
        extra: dict[str, Any] = {"allow_paid_broadcast": True} if paid else {}
        parts: list[Callable[[], Awaitable[object]]] = []
        for attachment in message.attachments:
            data = await self._media(attachment.key)
            if attachment.kind == "document":
                name = attachment.name or "document.pdf"
                parts.append(partial(bot.send_document, chat_id, data, filename=name, **extra))
                continue
            send = bot.send_voice if attachment.kind == "voice" else bot.send_photo
            parts.append(partial(send, chat_id, data))
        text_sent = False
        if message.image_key:
            photo = await self._media(message.image_key)
            if len(message.text) <= MessageLimit.CAPTION_LENGTH:
                markup = InlineKeyboardMarkup.de_json(keyboard, bot) if keyboard else None
                caption = message.text or None
                parts.append(
                    partial(
                        bot.send_photo,
                        chat_id,
                        photo,
                        caption=caption,
                        reply_markup=markup,
                        parse_mode="HTML" if message.html else None,
                        **extra,
                    )
                )
                text_sent = True
            else:
                parts.append(partial(bot.send_photo, chat_id, photo))
        if not text_sent:
            chunks = _split(message.text, MessageLimit.MAX_TEXT_LENGTH)
            for index, chunk in enumerate(chunks):
                payload: dict[str, Any] = {"chat_id": chat_id, "text": chunk, **extra}
                if message.html:
                    payload["parse_mode"] = "HTML"
                if keyboard is not None and index == len(chunks) - 1:
                    payload["reply_markup"] = keyboard
                parts.append(partial(self.http.call, self._send_url, payload))
        last: object = None
        try:
            for index, part in enumerate(parts):
                await self._paced(chat_id, bulk)
                last = await self._send_part(part, chat_id, first=index == 0)
        except Forbidden as exc:
            raise RecipientBlocked(str(exc)) from exc
        except BadRequest as exc:
            if "chat not found" in str(exc).lower():
                raise RecipientBlocked(str(exc)) from exc
            raise
        if isinstance(last, dict):
            return last.get("message_id")
        return getattr(last, "message_id", None)

    async def _group_moved(self, old: str, new: str) -> None:
        async with self.transaction() as session:
            await groups.moved(session, CHANNEL, old, new, datetime.now(UTC))
        log.info("telegram group chat=%s is now chat=%s", old, new)

    async def _paced(self, chat_id: str, bulk: bool) -> None:
        """Wait for this message's slot: the bot's (or, for a paid broadcast, the paid rate's),
        and for a broadcast to a group the group's."""
        settings = self.settings
        if bulk and chat_id.startswith("-") and settings.group_messages_per_minute > 0:
            await self.pace.wait(
                f"{CHANNEL}:group:{chat_id}", 60 / settings.group_messages_per_minute, bulk=True
            )
        if bulk and settings.paid_broadcast:
            await self.pace.wait(f"{CHANNEL}:paid", 1 / PAID_PER_SECOND, bulk=True)
        elif settings.messages_per_second > 0:
            await self.pace.wait(CHANNEL, 1 / settings.messages_per_second, bulk=bulk)

    async def _send_part(
        self, part: Callable[[], Awaitable[object]], chat_id: str, *, first: bool
    ) -> object:
        while True:
            try:
                return await part()
            except RetryAfter as exc:
                seconds = retry_after_seconds(exc)
                loop_time = asyncio.get_running_loop().time()
                self._quiet_until = max(self._quiet_until, loop_time + seconds)
                if first:
                    raise RateLimited(seconds) from exc
                log.warning(
                    "telegram 429 within a message chat=%s retry_after=%ss: waiting",
                    chat_id,
                    f"{seconds:g}",
                )
                if not await self._pause(seconds):
                    raise RateLimited(seconds) from exc

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds`; False if the channel started stopping meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()


async def _read_capped(request: Request, limit: int) -> bytes | Response:
    """The body, or the answer that refuses it: 413 past `limit` bytes, before reading it all.

    Content-Length is checked first; the stream is counted as well, for a chunked body.
    """
    too_large = JSONResponse(
        {"ok": False, "error": "body too large"}, status_code=413, headers={"Connection": "close"}
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            return JSONResponse({"ok": False, "error": "bad update"}, status_code=400)
        if int(declared) > limit:
            return too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return too_large
    except ClientDisconnect:
        return JSONResponse({"ok": False, "error": "incomplete body"}, status_code=400)
    return bytes(body)


def _split(text: str, limit: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        chunks.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        chunks.append(text)
    return chunks
