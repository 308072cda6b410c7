"""The Telegram adapter's outbound half with the REAL aiogram Bot against the fake Bot API, plus verify and setup."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from channels.base import Button, ContactRef, DeliveryFailed, Image, InboundMessage, OutboundMessage, Refused
from channels.telegram.adapter import SECRET_HEADER, TelegramAdapter, delivery_failure
from channels.telegram.setup import WebhookSetupError, set_webhook
from devtools import harness
from devtools.fakes.control import serve
from devtools.fakes.telegram_api import FakeTelegram, running_fake_telegram

BOT_TOKEN = "123456:clinic-bot-token"
WEBHOOK_SECRET = "clinic-webhook-secret_0123456789"
PATIENT_CHAT = 5342492667


def png(width: int = 4, height: int = 4) -> bytes:
    """A valid PNG, standing in for the check-in QR code."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def reply(text: str = "Which time suits you?", *buttons: Button, image: Image | None = None) -> OutboundMessage:
    return OutboundMessage(channel="telegram", recipient=str(PATIENT_CHAT), text=text, buttons=buttons, image=image)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram(tokens={BOT_TOKEN}) as fake:
        yield fake


@pytest.fixture
async def adapter(telegram: FakeTelegram) -> AsyncIterator[TelegramAdapter]:
    adapter = TelegramAdapter(token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET, api_url=telegram.base_url)
    yield adapter
    await adapter.close()


async def adapter_against(app: web.Application) -> AsyncIterator[TelegramAdapter]:
    async with serve(app) as base_url:
        adapter = TelegramAdapter(token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET, api_url=base_url)
        yield adapter
        await adapter.close()


@pytest.fixture
async def blocked_adapter() -> AsyncIterator[TelegramAdapter]:
    """An adapter whose Bot API answers sends as Telegram does once the patient blocked the bot.

    The shared fake has no 403 fault, so this tiny server stands at the same network edge.
    """

    async def forbidden(request: web.Request) -> web.Response:
        body = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        return web.json_response(body, status=403)

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", forbidden)
    async for adapter in adapter_against(app):
        yield adapter


# --- sending ---


async def test_a_slot_offer_goes_out_with_short_buttons_two_to_a_row(
    adapter: TelegramAdapter, telegram: FakeTelegram
) -> None:
    buttons = (Button("Tue 09:00", "slot:1"), Button("Tue 09:30", "slot:2"), Button("Another day", "slot:more"))

    provider_id = await adapter.send(reply("Which time suits you?", *buttons))

    [sent] = telegram.sent_messages(PATIENT_CHAT)
    assert sent.method == "sendMessage"
    assert sent.params["text"] == "Which time suits you?"
    assert sent.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Tue 09:00", "callback_data": "slot:1"}, {"text": "Tue 09:30", "callback_data": "slot:2"}],
            [{"text": "Another day", "callback_data": "slot:more"}],
        ]
    }
    assert provider_id == str(sent.response["result"]["message_id"])


async def test_long_button_labels_get_a_row_each(adapter: TelegramAdapter, telegram: FakeTelegram) -> None:
    buttons = (Button("Dental check-up with Dr. Rahman", "exam:3"), Button("Yes", "yes"))

    await adapter.send(reply("What would you like to book?", *buttons))

    [sent] = telegram.sent_messages(PATIENT_CHAT)
    rows = sent.params["reply_markup"]["inline_keyboard"]
    assert [[button["callback_data"] for button in row] for row in rows] == [["exam:3"], ["yes"]]


async def test_a_plain_reply_has_no_keyboard(adapter: TelegramAdapter, telegram: FakeTelegram) -> None:
    await adapter.send(reply("Thank you, see you on Tuesday."))

    [sent] = telegram.sent_messages(PATIENT_CHAT)
    assert sent.params["text"] == "Thank you, see you on Tuesday."
    assert "reply_markup" not in sent.params


async def test_the_check_in_qr_code_is_uploaded_as_a_photo_captioned_with_the_text(
    adapter: TelegramAdapter, telegram: FakeTelegram
) -> None:
    qr = png()
    message = reply("Show this code at the front desk.", Button("Cancel visit", "cancel:77"), image=Image(qr, "qr.png"))

    provider_id = await adapter.send(message)

    [sent] = telegram.sent_messages(PATIENT_CHAT)
    assert sent.method == "sendPhoto"
    assert sent.params["caption"] == "Show this code at the front desk."
    assert sent.files["photo"].data == qr
    assert sent.files["photo"].filename == "qr.png"
    assert sent.params["reply_markup"]["inline_keyboard"] == [[{"text": "Cancel visit", "callback_data": "cancel:77"}]]
    assert provider_id == str(sent.response["result"]["message_id"])


async def test_text_too_long_for_a_caption_follows_the_photo_with_the_buttons(
    adapter: TelegramAdapter, telegram: FakeTelegram
) -> None:
    text = ("Your visit details. " * 60).strip()  # 1,199 characters: over Telegram's 1,024 caption limit

    provider_id = await adapter.send(reply(text, Button("Cancel visit", "cancel:77"), image=Image(png())))

    photo, note = telegram.sent_messages(PATIENT_CHAT)
    assert (photo.method, note.method) == ("sendPhoto", "sendMessage")
    assert "caption" not in photo.params
    assert note.params["text"] == text
    assert note.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "cancel:77"
    assert provider_id == str(note.response["result"]["message_id"])


@pytest.mark.parametrize("data", ["x" * 65, "🦷" * 17, ""], ids=["65 ascii bytes", "68 bytes of emoji", "empty"])
async def test_callback_data_telegram_would_refuse_is_caught_before_any_call(
    data: str, adapter: TelegramAdapter, telegram: FakeTelegram
) -> None:
    with pytest.raises(ValueError, match="callback data"):
        await adapter.send(reply("Pick one", Button("Tue 09:00", data)))
    assert telegram.requests == []


async def test_64_bytes_of_callback_data_is_allowed(adapter: TelegramAdapter, telegram: FakeTelegram) -> None:
    await adapter.send(reply("Pick one", Button("Tue 09:00", "🦷" * 16)))

    [sent] = telegram.sent_messages(PATIENT_CHAT)
    assert sent.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "🦷" * 16


async def test_telegrams_429_is_a_transient_failure_with_its_retry_after(
    adapter: TelegramAdapter, telegram: FakeTelegram
) -> None:
    telegram.throttle_next(retry_after=7)

    with pytest.raises(DeliveryFailed) as failed:
        await adapter.send(reply())

    assert (failed.value.transient, failed.value.retry_after, failed.value.code) == (True, 7.0, "rate_limited")


async def test_a_502_from_telegram_is_transient(adapter: TelegramAdapter, telegram: FakeTelegram) -> None:
    telegram.fail_next(status=502)

    with pytest.raises(DeliveryFailed) as failed:
        await adapter.send(reply())

    assert (failed.value.transient, failed.value.retry_after, failed.value.code) == (True, None, "server_error")


async def test_a_patient_who_blocked_the_bot_is_a_permanent_failure(blocked_adapter: TelegramAdapter) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await blocked_adapter.send(reply())

    assert (failed.value.transient, failed.value.code) == (False, "blocked")
    assert "blocked by the user" in str(failed.value)


async def test_a_message_telegram_refuses_to_read_is_a_permanent_bad_request(
    adapter: TelegramAdapter, telegram: FakeTelegram
) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await adapter.send(reply("   "))

    assert (failed.value.transient, failed.value.code) == (False, "bad_request")
    assert [entry.status for entry in telegram.requests] == [400]


async def test_an_unreachable_bot_api_is_transient() -> None:
    adapter = TelegramAdapter(
        token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET, api_url=f"http://127.0.0.1:{harness.free_port()}"
    )
    try:
        with pytest.raises(DeliveryFailed) as failed:
            await adapter.send(reply())
    finally:
        await adapter.close()

    assert (failed.value.transient, failed.value.code) == (True, "network")


async def test_a_revoked_bot_token_is_permanent(telegram: FakeTelegram) -> None:
    adapter = TelegramAdapter(token="999:revoked-token", webhook_secret=WEBHOOK_SECRET, api_url=telegram.base_url)
    try:
        with pytest.raises(DeliveryFailed) as failed:
            await adapter.send(reply())
    finally:
        await adapter.close()

    assert (failed.value.transient, failed.value.code) == (False, "unauthorized")


def test_a_timeout_waiting_for_the_answer_is_transient_and_uncertain() -> None:
    """The request may have reached Telegram: it is sent again, but at most once more (the outbox's policy)."""
    failure = delivery_failure(TimeoutError())
    assert (failure.transient, failure.uncertain, failure.code) == (True, True, "uncertain")


async def test_a_connection_that_was_never_made_is_transient_and_certain() -> None:
    """Nothing listens there: the request never left, so sending it again cannot make a copy."""
    closed = TelegramAdapter(
        token="123456:clinic-bot-token", webhook_secret="secret_0123456789", api_url="http://127.0.0.1:9"
    )
    try:
        with pytest.raises(DeliveryFailed) as failed:
            await closed.send(OutboundMessage(channel="telegram", recipient="42", text="Hello"))
    finally:
        await closed.close()
    assert (failed.value.transient, failed.value.uncertain, failed.value.code) == (True, False, "network")


async def test_a_recipient_that_is_not_a_chat_id_is_a_permanent_failure(
    adapter: TelegramAdapter, telegram: FakeTelegram
) -> None:
    message = OutboundMessage(channel="telegram", recipient="whatsapp:+6281234567890", text="Hello")

    with pytest.raises(DeliveryFailed) as failed:
        await adapter.send(message)

    assert (failed.value.transient, failed.value.code) == (False, "bad_recipient")
    assert telegram.requests == []


# --- acknowledging ---


def _inbound(kind: str, raw: dict[str, Any]) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        external_id="u1",
        contact=ContactRef(channel="telegram", external_id=str(PATIENT_CHAT)),
        received_at=datetime.now(UTC),
        kind=kind,  # type: ignore[arg-type]
        raw=raw,
    )


async def test_only_a_pressed_button_is_answered(adapter: TelegramAdapter, telegram: FakeTelegram) -> None:
    await adapter.acknowledge(_inbound("text", {"message": {"text": "hi"}}))
    assert telegram.requests == []

    await adapter.acknowledge(_inbound("button", {"callback_query": {"id": "4382"}}))

    [answer] = telegram.requests_for("answerCallbackQuery")
    assert answer.params["callback_query_id"] == "4382"


async def test_answering_a_button_never_raises_even_when_telegram_fails(
    adapter: TelegramAdapter, telegram: FakeTelegram
) -> None:
    telegram.fail_next(status=502, method="answerCallbackQuery")

    await adapter.acknowledge(_inbound("button", {"callback_query": {"id": "4382"}}))

    assert [entry.status for entry in telegram.requests_for("answerCallbackQuery")] == [502]


# --- verifying ---


def _request(headers: dict[str, str]) -> web.Request:
    return make_mocked_request("POST", "/webhooks/telegram", headers=CIMultiDict(headers))


async def test_the_right_secret_passes(adapter: TelegramAdapter) -> None:
    assert await adapter.verify(_request({SECRET_HEADER: WEBHOOK_SECRET})) is None  # type: ignore[func-returns-value]


@pytest.mark.parametrize(
    "headers",
    [{}, {SECRET_HEADER: ""}, {SECRET_HEADER: "forged"}, {SECRET_HEADER: "sécret-ünïcode"}, {"X-Other": "x"}],
    ids=["missing", "empty", "forged", "non-ascii", "other header"],
)
async def test_anything_but_the_secret_is_refused_with_401(headers: dict[str, str], adapter: TelegramAdapter) -> None:
    with pytest.raises(Refused) as refused:
        await adapter.verify(_request(headers))
    assert refused.value.status == 401


def test_an_adapter_without_a_webhook_secret_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="secret"):
        TelegramAdapter(token=BOT_TOKEN, webhook_secret="", api_url="http://127.0.0.1:1")


# --- setting the webhook ---


async def test_set_webhook_sends_the_secret_and_only_the_updates_we_handle(telegram: FakeTelegram) -> None:
    url = "https://clinic.example.org/webhooks/telegram"

    await set_webhook(token=BOT_TOKEN, secret=WEBHOOK_SECRET, url=url, api_url=telegram.base_url)

    hook = telegram.webhook(BOT_TOKEN)
    assert hook is not None
    assert (hook["url"], hook["secret_token"]) == (url, WEBHOOK_SECRET)
    assert hook["allowed_updates"] == ["message", "callback_query"]


async def test_set_webhook_says_why_telegram_refused(telegram: FakeTelegram) -> None:
    with pytest.raises(WebhookSetupError, match="HTTPS URL must be provided"):
        await set_webhook(token=BOT_TOKEN, secret=WEBHOOK_SECRET, url="ftp://clinic", api_url=telegram.base_url)
    assert telegram.webhook(BOT_TOKEN) is None
