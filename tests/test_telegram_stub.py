"""Proves the Bot API stub is faithful enough for real python-telegram-bot to run against it.

If these fail, every end-to-end test built on the stub is suspect, so they pin the behaviours
the rest of the suite relies on: PTB's wire encoding, long polling, redelivery, file download,
error mapping and webhook delivery.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Conflict, Forbidden, RetryAfter
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.telegram_stub import BotApiStub, serve_asgi

USER = 4242


@pytest.fixture
async def bot(stub: BotApiStub) -> AsyncIterator[Bot]:
    async with Bot(
        stub.token, base_url=stub.api_base_url, base_file_url=stub.file_base_url
    ) as real_bot:
        yield real_bot


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(buf, "JPEG")
    return buf.getvalue()


async def test_bot_wire_encoding_and_keyboard(stub: BotApiStub, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.username, me.first_name, me.is_bot) == (stub.username, "Linli", True)

    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Yes", callback_data="vote:yes")],
            [InlineKeyboardButton("Docs", url="https://example.org/docs")],
        ]
    )
    message = await bot.send_message(
        USER, "Hi <b>there</b> &amp; welcome", parse_mode="HTML", reply_markup=keyboard
    )
    assert message.message_id == 1
    assert message.chat.id == USER
    assert message.reply_markup == keyboard

    entry = stub.sent[-1]
    assert entry["method"] == "sendMessage"
    assert entry["chat_id"] == USER  # JSON-decoded back to int
    assert entry["text"] == "Hi there & welcome"  # what the user sees
    assert entry["raw_text"] == "Hi <b>there</b> &amp; welcome"
    assert entry["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Yes", "callback_data": "vote:yes"}],
            [{"text": "Docs", "url": "https://example.org/docs"}],
        ]
    }
    assert stub.buttons(entry) == [("Yes", "vote:yes"), ("Docs", "https://example.org/docs")]

    # Free text that looks like JSON must stay a string.
    await bot.send_message(USER, "123")
    assert stub.calls_to("sendMessage")[-1]["text"] == "123"
    assert [m["message_id"] for m in stub.messages_to(USER)] == [1, 2]

    # Things Telegram rejects are rejected here too.
    with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
        await bot.send_message(USER, "line<br>break", parse_mode="HTML")
    with pytest.raises(BadRequest, match="reserved"):
        await bot.send_message(USER, "Done.", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(
            USER,
            "x",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("b", callback_data="x" * 65)]]
            ),
        )

    await bot.set_my_commands([("start", "Start"), ("help", "Help")], language_code="zh")
    assert [c.command for c in await bot.get_my_commands(language_code="zh")] == ["start", "help"]
    assert await bot.get_my_commands() == ()
    assert stub.commands_for(language_code="zh") == [
        {"command": "start", "description": "Start"},
        {"command": "help", "description": "Help"},
    ]


async def test_application_polling_roundtrip(stub: BotApiStub) -> None:
    seen_update_ids: list[int] = []

    async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("welcome")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        seen_update_ids.append(update.update_id)
        await update.message.reply_text(
            f"echo: {update.message.text}",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("Again", callback_data="again")]]
            ),
        )

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("ok")
        await query.edit_message_text(f"pressed {query.data}")

    app = (
        ApplicationBuilder()
        .token(stub.token)
        .base_url(stub.api_base_url)
        .base_file_url(stub.file_base_url)
        .build()
    )
    app.add_handler(CommandHandler("start", on_start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    app.add_handler(CallbackQueryHandler(on_press))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        assert stub.calls[0][0] == "getMe"
        assert "deleteWebhook" in [name for name, _ in stub.calls]

        stub.send_text(USER, "/start")  # bot_command entity makes CommandHandler match
        await stub.wait_for_message(USER, contains="welcome")

        started = time.monotonic()
        stub.send_text(USER, "hello")
        reply = await stub.wait_for_message(USER, contains="echo: hello")
        # The long poll wakes on push instead of waiting out its 1 s timeout.
        assert time.monotonic() - started < 0.5
        assert stub.calls_to("getUpdates")[-1]["timeout"] == 1

        stub.press(USER, stub.buttons(reply)[0][1])
        edited = await stub.wait_for(lambda e: e["method"] == "editMessageText")
        assert edited["text"] == "pressed again"
        assert edited["message_id"] == reply["message_id"]
        assert edited["reply_markup"] is None  # the keyboard is gone after the edit
        assert stub.calls_to("answerCallbackQuery")[-1]["text"] == "ok"

        # Redelivery: PTB does not deduplicate, so the same update reaches the handler twice.
        # Deduplication is the application's job.
        duplicate = stub.message_update(USER, "dup")
        stub.push_update(duplicate)
        await stub.wait_for_message(USER, contains="echo: dup")
        mark = len(stub.sent)
        stub.push_update(duplicate)
        await stub.wait_for_message(USER, contains="echo: dup", after=mark)
        assert seen_update_ids.count(duplicate["update_id"]) == 2

        # Updates after the redelivered (older) id still flow and are not delivered twice.
        stub.send_text(USER, "after")
        await stub.wait_for_message(USER, contains="echo: after")
        await stub.wait_idle()
        assert seen_update_ids.count(seen_update_ids[-1]) == 1
    finally:
        started = time.monotonic()
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        assert time.monotonic() - started < 2


async def test_photo_download_and_upload(stub: BotApiStub, bot: Bot) -> None:
    raw = stub.message_update(USER, "look at this", photo=True)
    update = Update.de_json(raw, bot)
    assert update.message is not None
    assert update.message.caption == "look at this"
    largest = update.message.photo[-1]
    assert (largest.width, largest.height) == (320, 240)

    file = await bot.get_file(largest.file_id)
    data = await file.download_as_bytearray()
    assert bytes(data) == stub.file_bytes(largest.file_id)
    assert data[:2] == b"\xff\xd8"  # a real JPEG

    document_id = stub.add_file(b"%PDF-1.4 minutes", "minutes.pdf")
    pdf = await (await bot.get_file(document_id)).download_as_bytearray()
    assert bytes(pdf) == b"%PDF-1.4 minutes"

    jpeg = _jpeg()
    sent = await bot.send_photo(USER, photo=jpeg, caption="your QR")
    assert (sent.photo[-1].width, sent.photo[-1].height) == (40, 30)
    entry = stub.sent[-1]
    assert (entry["method"], entry["caption"], entry["file"]) == ("sendPhoto", "your QR", jpeg)

    await bot.send_document(USER, document=b"a,b\n1,2\n", filename="export.csv")
    assert stub.sent[-1]["document"]["file_name"] == "export.csv"
    assert stub.sent[-1]["file"] == b"a,b\n1,2\n"


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_failure_injection(stub: BotApiStub, bot: Bot) -> None:
    stub.fail_next("sendMessage")
    with pytest.raises(RetryAfter):
        await bot.send_message(USER, "first")
    await bot.send_message(USER, "second")  # only the next call fails
    assert [e["text"] for e in stub.sent] == ["second"]

    stub.blocked_chats.add(USER)
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(USER, "third")
    assert len(stub.sent) == 1


async def test_webhook_delivery(stub: BotApiStub, bot: Bot) -> None:
    received: list[tuple[str | None, dict[str, object]]] = []

    async def endpoint(request: Request) -> Response:
        secret = request.headers.get("x-telegram-bot-api-secret-token")
        received.append((secret, await request.json()))
        return Response(status_code=200 if secret == "s3cret" else 403)

    async with serve_asgi(Starlette(routes=[Route("/tg", endpoint, methods=["POST"])])) as url:
        assert await bot.set_webhook(url=f"{url}/tg", secret_token="s3cret")
        assert stub.webhook is not None and stub.webhook["secret_token"] == "s3cret"
        assert (await bot.get_webhook_info()).url == f"{url}/tg"
        with pytest.raises(Conflict):
            await bot.get_updates()

        update = stub.message_update(USER, "via webhook")
        assert await stub.deliver_webhook(update) == 200
        assert await stub.deliver_webhook(update, secret=None) == 403
        assert await stub.deliver_webhook(update, secret="wrong") == 403
        assert [secret for secret, _ in received] == ["s3cret", None, "wrong"]
        assert received[0][1] == update

    await bot.delete_webhook()
    assert stub.webhook is None
