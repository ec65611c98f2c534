"""Telegram through python-telegram-bot, fed by polling or by our own Starlette webhook route.

PTB is used as a transport only (no ConversationHandler): every update goes to one callback
that builds an `Incoming`, so dialogue state stays in the database with the engine.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import BotCommand, InlineKeyboardMarkup, MessageEntity, Update, User
from telegram.constants import MessageLimit
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.channels.telegram_http import AiohttpRequest
from bot.config import TelegramSettings
from bot.delivery import RecipientBlocked
from handlers.i18n import Catalogs
from handlers.messages import ChatRef, FileRef, Incoming, Kind, Outgoing, Reply, Sender
from handlers.reports.intake import FileTooBig

log = logging.getLogger("linli.telegram")

CHANNEL = "telegram"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
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
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    chat = ChatRef(CHANNEL, str(message.chat.id), message.chat.type == "private")
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

    def __init__(
        self,
        settings: TelegramSettings,
        handle: Handle,
        catalogs: Catalogs,
        menu: Iterable[MenuEntry],
        default_locale: str,
    ) -> None:
        self.settings = settings
        self.handle = handle
        self.catalogs = catalogs
        self.menu = list(menu)
        self.default_locale = default_locale
        self.locks = KeyedLocks()
        self.http = AiohttpRequest(connection_pool_size=64)
        self._send_url = f"{settings.api_base_url}{settings.token}/sendMessage"
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
        return [Route(WEBHOOK_PATH, self._webhook, methods=["POST"])]

    async def _webhook(self, request: Request) -> Response:
        secret = self.settings.webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if secret and not hmac.compare_digest(given.encode(), secret.encode()):
            return JSONResponse({"ok": False}, status_code=403)
        try:
            data = json.loads(await request.body())
            update = Update.de_json(data, self.app.bot)
        except (ValueError, TypeError, KeyError):
            return JSONResponse({"ok": False, "error": "bad update"}, status_code=400)
        # Handled before we answer: if we die first, Telegram redelivers and the key dedups it.
        await self.app.process_update(update)
        return JSONResponse({"ok": True})

    async def _on_update(self, update: object, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert isinstance(update, Update)
        incoming = to_incoming(update, self.username)
        if incoming is None:
            return
        query = update.callback_query
        if query is not None:
            try:
                await query.answer()
            except TelegramError as exc:
                log.debug("answerCallbackQuery failed: %s", exc)
        async with self.locks.hold(incoming.chat.chat_id):
            reply = await self.handle(incoming)
            if query is not None and query.message is not None and reply.outcome != "duplicate":
                # The buttons did their work (or were stale): make them unpressable, first,
                # so the person's next tap lands on the new message.
                try:
                    await query.edit_message_reply_markup(reply_markup=None)
                except TelegramError as exc:
                    log.debug("could not clear keyboard: %s", exc)
            for message in reply.messages:
                await self.send(incoming.chat.chat_id, message)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error(
            "telegram handler error update=%s",
            getattr(update, "update_id", "?"),
            exc_info=context.error,
        )

    def _keyboard(self, message: Outgoing) -> dict[str, Any] | None:
        """Options as inline buttons, two to a row when they are short; links under them."""
        buttons = [{"text": o.label, "callback_data": o.payload} for o in message.options]
        short = all(len(o.label) <= 12 for o in message.options)
        width = 2 if short and len(buttons) > 1 else 1
        rows = [buttons[i : i + width] for i in range(0, len(buttons), width)]
        rows.extend([{"text": link.label, "url": link.url}] for link in message.links)
        if message.private_start is not None:
            url = deep_link(self.username, message.private_start)
            rows.append([{"text": message.private_label or "→", "url": url}])
        return {"inline_keyboard": rows} if rows else None

    async def send(self, chat_id: str, message: Outgoing) -> None:
        """Render one neutral message; long text is split on line breaks to fit Telegram.

        A picture carries the text as its caption (and the buttons) when it fits, so a
        dispatch card arrives as one message.
        """
        keyboard = self._keyboard(message)
        try:
            for attachment in message.attachments:
                if attachment.kind == "voice":
                    await self.app.bot.send_voice(chat_id, Path(attachment.path))
                else:
                    await self.app.bot.send_photo(chat_id, Path(attachment.path))
            if message.image_path:
                photo = Path(message.image_path)
                if len(message.text) <= MessageLimit.CAPTION_LENGTH:
                    await self.app.bot.send_photo(
                        chat_id,
                        photo,
                        caption=message.text or None,
                        reply_markup=InlineKeyboardMarkup.de_json(keyboard, self.app.bot)
                        if keyboard
                        else None,
                    )
                    return
                await self.app.bot.send_photo(chat_id, photo)
            chunks = _split(message.text, MessageLimit.MAX_TEXT_LENGTH)
            for index, chunk in enumerate(chunks):
                payload: dict[str, Any] = {"chat_id": chat_id, "text": chunk}
                if keyboard is not None and index == len(chunks) - 1:
                    payload["reply_markup"] = keyboard
                await self.http.call(self._send_url, payload)
        except Forbidden as exc:
            raise RecipientBlocked(str(exc)) from exc
        except BadRequest as exc:
            if "chat not found" in str(exc).lower():
                raise RecipientBlocked(str(exc)) from exc
            raise


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
