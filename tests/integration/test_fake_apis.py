"""The real aiogram and twilio clients talking to our fake Telegram Bot API and Twilio Messages API."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import struct
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from twilio.rest.api.v2010.account.message import MessageInstance

from channels.telegram.client import make_bot
from channels.whatsapp.client import Throttled, basic_authorization, twilio_client
from channels.whatsapp.client import rewrite_url as rewrite_twilio_url
from devtools.fakes.clients import sync_twilio_client
from devtools.fakes.control import CUT_OFF, Recorded
from devtools.fakes.telegram_api import FakeTelegram, running_fake_telegram
from devtools.fakes.twilio_api import FakeTwilio, running_fake_twilio

BOT_TOKEN = "123456:clinic-bot-token"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "clinic-auth-token"
CLINIC_WHATSAPP = "whatsapp:+14155238886"
PATIENT_WHATSAPP = "whatsapp:+6281234567890"
PATIENT_CHAT = 555_000_111
TWILIO_AUTH = {"Authorization": basic_authorization(ACCOUNT_SID, AUTH_TOKEN)}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ManualClock:
    """A monotonic clock the test moves by hand, so limit tests never depend on how fast the machine is."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def png_bytes(width: int, height: int) -> bytes:
    """A valid RGB PNG of the given size (a stand-in for a check-in QR code)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\xff\xff" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def booking_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Tue 09:00", callback_data="slot:2024-06-04T09:00")],
            [InlineKeyboardButton(text="Another day", callback_data="slot:more")],
        ]
    )


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram(tokens={BOT_TOKEN}) as fake:
        yield fake


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(BOT_TOKEN, api_url=telegram.base_url)
    yield bot
    await bot.session.close()


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with running_fake_twilio(accounts={ACCOUNT_SID: AUTH_TOKEN}) as fake:
        yield fake


@pytest.fixture
def twilio_rest(twilio: FakeTwilio) -> Client:
    return sync_twilio_client(ACCOUNT_SID, AUTH_TOKEN, api_url=twilio.base_url)


async def send_whatsapp(client: Client, body: str = "Your visit is confirmed for Tue 09:00.") -> MessageInstance:
    """The sync twilio client, off the loop that runs the fake."""
    return await asyncio.to_thread(client.messages.create, to=PATIENT_WHATSAPP, from_=CLINIC_WHATSAPP, body=body)


# --- Telegram ---


async def test_get_me_answers_as_the_clinic_bot(bot: Bot, telegram: FakeTelegram) -> None:
    me = await bot.get_me()

    assert me.id == 123456
    assert me.is_bot
    assert me.username == "frontdesk_test_bot"
    assert [entry.method for entry in telegram.requests] == ["getMe"]
    assert telegram.requests[0].token == BOT_TOKEN


async def test_a_slot_offer_is_recorded_with_its_booking_buttons(bot: Bot, telegram: FakeTelegram) -> None:
    message = await bot.send_message(PATIENT_CHAT, "Which time suits you?", reply_markup=booking_keyboard())

    assert message.chat.id == PATIENT_CHAT
    assert message.chat.type == "private"
    assert message.text == "Which time suits you?"
    assert message.from_user is not None and message.from_user.is_bot
    assert message.reply_markup is not None
    assert [[button.callback_data for button in row] for row in message.reply_markup.inline_keyboard] == [
        ["slot:2024-06-04T09:00"],
        ["slot:more"],
    ]
    [sent] = telegram.sent_messages()
    assert sent.params["chat_id"] == PATIENT_CHAT
    assert sent.params["text"] == "Which time suits you?"
    assert sent.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Tue 09:00", "callback_data": "slot:2024-06-04T09:00"}],
            [{"text": "Another day", "callback_data": "slot:more"}],
        ]
    }
    assert sent.status == 200


async def test_message_ids_increase_per_chat(bot: Bot) -> None:
    first = await bot.send_message(PATIENT_CHAT, "Hello")
    second = await bot.send_message(PATIENT_CHAT, "Your queue number is 4")
    other_patient = await bot.send_message(PATIENT_CHAT + 1, "Hello")

    assert (first.message_id, second.message_id) == (1, 2)
    assert other_patient.message_id == 1


async def test_a_check_in_qr_code_is_uploaded_as_a_photo(bot: Bot, telegram: FakeTelegram) -> None:
    qr_png = png_bytes(330, 330)

    message = await bot.send_photo(
        PATIENT_CHAT, BufferedInputFile(qr_png, filename="check-in.png"), caption="Show this at the desk"
    )

    assert message.photo is not None
    largest = message.photo[-1]
    assert (largest.width, largest.height) == (330, 330)
    assert message.caption == "Show this at the desk"
    [sent] = telegram.sent_messages()
    assert sent.method == "sendPhoto"
    assert sent.params["chat_id"] == PATIENT_CHAT
    assert sent.params["caption"] == "Show this at the desk"
    upload = sent.files["photo"]
    assert upload.filename == "check-in.png"
    assert upload.sha256 == hashlib.sha256(qr_png).hexdigest()
    assert upload.data == qr_png


async def test_callback_answers_and_edits_are_accepted(bot: Bot, telegram: FakeTelegram) -> None:
    answered = await bot.answer_callback_query("4382bfdwdsb323b2d9", text="Slot held for 10 minutes")
    edited = await bot.edit_message_text("Booked: Tue 09:00 with Dr. Sari", chat_id=PATIENT_CHAT, message_id=17)
    unbuttoned = await bot.edit_message_reply_markup(chat_id=PATIENT_CHAT, message_id=17)

    assert answered is True
    assert not isinstance(edited, bool) and edited.message_id == 17
    assert edited.text == "Booked: Tue 09:00 with Dr. Sari"
    assert edited.edit_date is not None
    assert not isinstance(unbuttoned, bool) and unbuttoned.message_id == 17
    assert [entry.method for entry in telegram.requests] == [
        "answerCallbackQuery",
        "editMessageText",
        "editMessageReplyMarkup",
    ]
    assert telegram.requests[0].params["callback_query_id"] == "4382bfdwdsb323b2d9"
    assert telegram.sent_messages() == []


async def test_the_webhook_can_be_set_inspected_and_deleted(bot: Bot, telegram: FakeTelegram) -> None:
    url = "https://clinic.example/webhooks/telegram"

    assert await bot.set_webhook(url, secret_token="s3cret_token-1", allowed_updates=["message"])
    info = await bot.get_webhook_info()
    hook = telegram.webhook(BOT_TOKEN)
    assert await bot.delete_webhook()
    after = await bot.get_webhook_info()

    assert info.url == url
    assert info.allowed_updates == ["message"]
    assert hook is not None and hook["secret_token"] == "s3cret_token-1"
    assert after.url == ""
    assert telegram.webhook(BOT_TOKEN) is None


async def test_a_throttled_send_raises_retry_after(bot: Bot, telegram: FakeTelegram) -> None:
    telegram.throttle_next(retry_after=7, method="sendMessage")

    await bot.get_me()
    with pytest.raises(TelegramRetryAfter) as refused:
        await bot.send_message(PATIENT_CHAT, "Reminder: your visit is tomorrow")
    retried = await bot.send_message(PATIENT_CHAT, "Reminder: your visit is tomorrow")

    assert refused.value.retry_after == 7
    assert retried.message_id == 1
    statuses = [(entry.method, entry.status) for entry in telegram.requests]
    assert statuses == [("getMe", 200), ("sendMessage", 429), ("sendMessage", 200)]
    assert telegram.requests[1].response["parameters"] == {"retry_after": 7}
    assert len(telegram.sent_messages()) == 1


@pytest.mark.parametrize("status", [500, 502])
async def test_a_telegram_outage_raises_server_error(bot: Bot, telegram: FakeTelegram, status: int) -> None:
    telegram.fail_next(status=status)

    with pytest.raises(TelegramServerError):
        await bot.send_message(PATIENT_CHAT, "Your visit is confirmed")

    assert telegram.requests[-1].status == status
    assert telegram.sent_messages() == []


async def test_a_delay_fault_answers_normally_afterwards(bot: Bot, telegram: FakeTelegram) -> None:
    telegram.delay_next(seconds=0.01)

    message = await bot.send_message(PATIENT_CHAT, "Please wait, checking the calendar")

    assert message.text == "Please wait, checking the calendar"
    assert telegram.faults.pending == []


async def send_and_hang_up(fake: FakeTelegram) -> None:
    """A sendMessage the fake holds for 2 s (a slow provider) and whose sender stops waiting after 0.2 s."""
    fake.delay_next(seconds=2, method="sendMessage")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as http:
        with pytest.raises(TimeoutError):
            await http.post(f"{fake.base_url}/bot{BOT_TOKEN}/sendMessage", json={"chat_id": PATIENT_CHAT, "text": "Hi"})


async def recorded(fake: FakeTelegram, status: int) -> list[Recorded]:
    for _ in range(200):  # up to 10 s: the fake records the call when its 2 s are up (or the sender hung up)
        found = [entry for entry in fake.requests if entry.status == status]
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no request recorded with status {status}: {fake.requests}")


async def test_served_cut_off_a_message_whose_sender_hung_up_is_dropped_and_recorded_as_cut_off() -> None:
    async with running_fake_telegram(cut_off=True) as fake:
        await send_and_hang_up(fake)
        [cut_off] = await recorded(fake, CUT_OFF)

    assert cut_off.method == "sendMessage"
    assert fake.sent_messages() == []


async def test_served_normally_a_message_whose_sender_hung_up_is_still_accepted() -> None:
    async with running_fake_telegram() as fake:
        await send_and_hang_up(fake)
        [accepted] = await recorded(fake, 200)

    assert fake.sent_messages() == [accepted]


async def test_concurrent_calls_use_each_fault_exactly_once(bot: Bot, telegram: FakeTelegram) -> None:
    telegram.throttle_next(times=3)

    outcomes = await asyncio.gather(*(bot.get_me() for _ in range(10)), return_exceptions=True)

    assert sum(isinstance(outcome, TelegramRetryAfter) for outcome in outcomes) == 3
    assert telegram.faults.pending == []


async def test_a_second_message_to_the_same_patient_within_a_second_is_throttled() -> None:
    clock = ManualClock()
    async with running_fake_telegram(enforce_limits=True, clock=clock) as fake:
        bot = make_bot(BOT_TOKEN, api_url=fake.base_url)
        try:
            await bot.send_message(PATIENT_CHAT, "Your queue number is 4")
            with pytest.raises(TelegramRetryAfter) as refused:
                await bot.send_message(PATIENT_CHAT, "You are next")
            other_patient = await bot.send_message(PATIENT_CHAT + 1, "Your queue number is 5")
            clock.advance(1.0)
            later = await bot.send_message(PATIENT_CHAT, "You are next")
        finally:
            await bot.session.close()

    assert refused.value.retry_after == 1
    assert other_patient.message_id == 1
    assert later.message_id == 2
    assert fake.throttled_count == 1


async def test_more_than_thirty_messages_a_second_per_bot_are_throttled() -> None:
    async with running_fake_telegram(enforce_limits=True, clock=ManualClock()) as fake:
        bot = make_bot(BOT_TOKEN, api_url=fake.base_url)
        try:
            outcomes = await asyncio.gather(
                *(bot.send_message(PATIENT_CHAT + n, "Clinic closes early today") for n in range(40)),
                return_exceptions=True,
            )
        finally:
            await bot.session.close()

    assert sum(isinstance(outcome, TelegramRetryAfter) for outcome in outcomes) == 10
    assert len(fake.sent_messages()) == 30
    assert fake.throttled_count == 10


async def test_limits_are_off_unless_switched_on(bot: Bot, telegram: FakeTelegram) -> None:
    for _ in range(3):
        await bot.send_message(PATIENT_CHAT, "Reminder")

    assert len(telegram.sent_messages(PATIENT_CHAT)) == 3
    assert telegram.throttled_count == 0


async def test_an_unknown_bot_token_is_unauthorized(telegram: FakeTelegram) -> None:
    stranger = make_bot("999999:not-our-bot", api_url=telegram.base_url)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await stranger.session.close()

    assert telegram.requests[-1].status == 401


async def test_callback_data_longer_than_sixty_four_bytes_is_refused(bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Book", callback_data="slot:" + "x" * 64)]]
    )

    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(PATIENT_CHAT, "Pick a time", reply_markup=keyboard)


async def test_a_text_over_4096_characters_is_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(PATIENT_CHAT, "a" * 4097)


async def test_an_unknown_method_answers_404_in_bot_api_shape(telegram: FakeTelegram) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{telegram.base_url}/bot{BOT_TOKEN}/sendPigeon", data={"chat_id": "1"}) as response,
    ):
        body = await response.json()

    assert response.status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}


async def test_json_bodies_and_any_case_method_names_are_accepted(telegram: FakeTelegram) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{telegram.base_url}/bot{BOT_TOKEN}/SENDMESSAGE", json={"chat_id": 77, "text": "Hi from JSON"}
        ) as response,
    ):
        body = await response.json()

    assert response.status == 200
    assert body["ok"] is True
    assert body["result"]["chat"] == {"id": 77, "type": "private", "first_name": "Patient"}
    assert telegram.sent_messages(77)[0].method == "sendMessage"


async def test_control_endpoints_steer_and_read_the_telegram_fake(bot: Bot, telegram: FakeTelegram) -> None:
    control = f"{telegram.base_url}/_fake"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{control}/faults", json={"kind": "retry_after", "retry_after": 3, "method": "sendMessage"}
        ) as added:
            assert added.status == 201
        async with http.post(f"{control}/faults", json={"kind": "meteor"}) as malformed:
            assert malformed.status == 400
        with pytest.raises(TelegramRetryAfter) as refused:
            await bot.send_message(PATIENT_CHAT, "Reminder")
        await bot.send_message(PATIENT_CHAT, "Reminder")
        async with http.get(f"{control}/requests", params={"method": "sendMessage"}) as listed:
            recorded = await listed.json()
        async with http.put(f"{control}/limits", json={"enforce": True}) as limits:
            assert (await limits.json())["enforce"] is True
        async with http.delete(f"{control}/requests") as reset:
            assert (await reset.json()) == {"cleared": 2}
        async with http.get(f"{control}/requests") as emptied:
            remaining = await emptied.json()

    assert refused.value.retry_after == 3
    assert [entry["status"] for entry in recorded["requests"]] == [429, 200]
    assert recorded["requests"][1]["params"]["chat_id"] == PATIENT_CHAT
    assert telegram.enforce_limits is True
    assert remaining["requests"] == []


# --- Twilio ---


async def test_a_whatsapp_confirmation_is_created_and_recorded(twilio_rest: Client, twilio: FakeTwilio) -> None:
    message = await send_whatsapp(twilio_rest)

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert message.to == PATIENT_WHATSAPP
    assert message.from_ == CLINIC_WHATSAPP
    assert message.date_created is not None
    [sent] = twilio.sent_messages(PATIENT_WHATSAPP)
    assert sent.params == {
        "To": PATIENT_WHATSAPP,
        "From": CLINIC_WHATSAPP,
        "Body": "Your visit is confirmed for Tue 09:00.",
    }
    assert sent.token == ACCOUNT_SID
    assert sent.response["sid"] == message.sid


async def test_a_created_message_can_be_fetched_back(twilio_rest: Client, twilio: FakeTwilio) -> None:
    created = await send_whatsapp(twilio_rest, "Your queue number is 4")
    twilio.set_status(created.sid, "delivered")

    fetched = await asyncio.to_thread(twilio_rest.messages(created.sid).fetch)

    assert fetched.body == "Your queue number is 4"
    assert fetched.status == "delivered"
    assert fetched.date_sent is not None


async def test_fetching_an_unknown_message_is_not_found(twilio_rest: Client) -> None:
    with pytest.raises(TwilioRestException) as missing:
        await asyncio.to_thread(twilio_rest.messages("SM" + "0" * 32).fetch)

    assert missing.value.status == 404
    assert missing.value.code == 20404


async def test_a_wrong_auth_token_is_refused_with_401(twilio: FakeTwilio) -> None:
    intruder = sync_twilio_client(ACCOUNT_SID, "guessed-token", api_url=twilio.base_url)

    with pytest.raises(TwilioRestException) as refused:
        await send_whatsapp(intruder)

    assert refused.value.status == 401
    assert refused.value.code == 20003
    assert twilio.sent_messages() == []


async def test_a_throttled_create_raises_429(twilio_rest: Client, twilio: FakeTwilio) -> None:
    twilio.throttle_next(retry_after=5, method="Messages.create")

    with pytest.raises(TwilioRestException) as refused:
        await send_whatsapp(twilio_rest)
    retried = await send_whatsapp(twilio_rest)

    assert refused.value.status == 429
    assert refused.value.code == 20429
    assert retried.status == "queued"
    assert [entry.status for entry in twilio.requests] == [429, 201]


async def test_a_throttled_create_carries_retry_after(twilio: FakeTwilio) -> None:
    twilio.throttle_next(retry_after=5)
    form = {"To": PATIENT_WHATSAPP, "From": CLINIC_WHATSAPP, "Body": "Hi"}

    async with (
        aiohttp.ClientSession(headers=TWILIO_AUTH) as http,
        http.post(f"{twilio.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data=form) as response,
    ):
        body = await response.json()

    assert response.status == 429
    assert response.headers["Retry-After"] == "5"
    assert body["code"] == 20429


async def test_a_twilio_outage_raises_rest_exception(twilio_rest: Client, twilio: FakeTwilio) -> None:
    twilio.fail_next(status=503)

    with pytest.raises(TwilioRestException) as failed:
        await send_whatsapp(twilio_rest)

    assert failed.value.status == 503
    assert twilio.messages == {}


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": CLINIC_WHATSAPP, "Body": "Hi"}, 21604),
        ({"To": PATIENT_WHATSAPP, "Body": "Hi"}, 21603),
        ({"To": PATIENT_WHATSAPP, "From": CLINIC_WHATSAPP}, 21602),
        ({"To": PATIENT_WHATSAPP, "From": "+14155238886", "Body": "Hi"}, 21910),
        ({"To": "whatsapp:0812-345", "From": CLINIC_WHATSAPP, "Body": "Hi"}, 21211),
        ({"To": PATIENT_WHATSAPP, "From": CLINIC_WHATSAPP, "Body": "x" * 1601}, 21617),
    ],
    ids=["no-to", "no-from", "no-body", "mixed-channels", "bad-number", "too-long"],
)
async def test_an_incomplete_message_is_refused_with_twilio_error_codes(
    twilio: FakeTwilio, form: dict[str, str], code: int
) -> None:
    async with (
        aiohttp.ClientSession(headers=TWILIO_AUTH) as http,
        http.post(f"{twilio.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data=form) as response,
    ):
        body = await response.json()

    assert response.status == 400
    assert body["code"] == code
    assert body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


async def test_a_template_message_needs_no_body(twilio_rest: Client, twilio: FakeTwilio) -> None:
    message = await asyncio.to_thread(
        twilio_rest.messages.create,
        to=PATIENT_WHATSAPP,
        from_=CLINIC_WHATSAPP,
        content_sid="HX" + "ab" * 16,
        content_variables='{"1": "Tue 09:00"}',
        status_callback="https://clinic.example/webhooks/whatsapp/status",
    )

    assert message.status == "queued"
    [sent] = twilio.sent_messages()
    assert sent.params["ContentVariables"] == '{"1": "Tue 09:00"}'
    assert sent.params["StatusCallback"] == "https://clinic.example/webhooks/whatsapp/status"


async def test_the_async_client_goes_through_the_rewriting_http_client(twilio: FakeTwilio) -> None:
    client = twilio_client(ACCOUNT_SID, AUTH_TOKEN, api_url=twilio.base_url)
    try:
        created = await client.messages.create_async(
            to=PATIENT_WHATSAPP,
            from_=CLINIC_WHATSAPP,
            body="Your invoice",
            media_url=["https://clinic.example/i/1.pdf", "https://clinic.example/i/2.pdf"],
        )
        fetched = await client.messages(created.sid).fetch_async()
    finally:
        await client.http_client.close()

    assert fetched.num_media == "2"
    assert twilio.sent_messages()[0].params["MediaUrl"] == [
        "https://clinic.example/i/1.pdf",
        "https://clinic.example/i/2.pdf",
    ]


async def test_messages_can_be_listed_page_by_page(twilio_rest: Client) -> None:
    for n in range(3):
        await send_whatsapp(twilio_rest, f"Reminder {n}")

    listed = await asyncio.to_thread(twilio_rest.messages.list, to=PATIENT_WHATSAPP, page_size=2)

    assert [message.body for message in listed] == ["Reminder 2", "Reminder 1", "Reminder 0"]


async def test_more_than_eighty_messages_a_second_from_one_sender_are_throttled() -> None:
    async with running_fake_twilio(enforce_limits=True, clock=ManualClock()) as fake:
        client = twilio_client(ACCOUNT_SID, AUTH_TOKEN, api_url=fake.base_url)
        try:
            outcomes = await asyncio.gather(
                *(
                    client.messages.create_async(
                        to=f"whatsapp:+62812345{n:05d}", from_=CLINIC_WHATSAPP, body="Clinic closed"
                    )
                    for n in range(90)
                ),
                return_exceptions=True,
            )
        finally:
            await client.http_client.close()

    refusals = [outcome for outcome in outcomes if isinstance(outcome, Throttled)]  # the worker's client: a 429
    assert len(refusals) == 10
    assert {refusal.code for refusal in refusals} == {20429}
    assert len(fake.sent_messages()) == 80
    assert fake.throttled_count == 10


async def test_control_endpoints_steer_and_read_the_twilio_fake(twilio_rest: Client, twilio: FakeTwilio) -> None:
    control = f"{twilio.base_url}/_fake"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{control}/faults", json={"kind": "server_error", "status": 500}) as added:
            assert added.status == 201
        async with http.get(f"{control}/faults") as pending:
            assert len((await pending.json())["faults"]) == 1
        with pytest.raises(TwilioRestException):
            await send_whatsapp(twilio_rest)
        await send_whatsapp(twilio_rest)
        async with http.get(f"{control}/requests") as listed:
            recorded = await listed.json()
        async with http.delete(f"{control}/requests") as reset:
            assert (await reset.json()) == {"cleared": 2}

    assert [(entry["method"], entry["status"]) for entry in recorded["requests"]] == [
        ("Messages.create", 500),
        ("Messages.create", 201),
    ]
    assert recorded["requests"][1]["params"]["To"] == PATIENT_WHATSAPP
    assert twilio.requests == []


def test_only_twilio_api_urls_are_rewritten() -> None:
    base = "http://127.0.0.1:8082"

    assert rewrite_twilio_url("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json", base) == (
        "http://127.0.0.1:8082/2010-04-01/Accounts/AC1/Messages.json"
    )
    assert rewrite_twilio_url("https://api.sydney.au1.twilio.com/2010-04-01/x.json", base + "/") == (
        "http://127.0.0.1:8082/2010-04-01/x.json"
    )
    assert rewrite_twilio_url("https://api.twilio.com.evil.example/x", base) == (
        "https://api.twilio.com.evil.example/x"
    )
    assert rewrite_twilio_url("https://api.twilio.com/x", None) == "https://api.twilio.com/x"


# --- the command line ---


async def test_the_fake_apis_command_serves_both_until_interrupted() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devtools.fakes",
        "--telegram-port",
        "0",
        "--twilio-port",
        "0",
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        lines = [(await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip() for _ in range(2)]
        urls = dict(line.split("=", 1) for line in lines)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{urls['TELEGRAM_API_URL']}/bot{BOT_TOKEN}/getMe") as me,
            http.get(f"{urls['TWILIO_API_URL']}/_fake/requests") as requests,
        ):
            me_body = await me.json()
            requests_body = await requests.json()
        process.send_signal(signal.SIGINT)
        exit_code = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert me_body["ok"] is True
    assert requests_body["requests"] == []
    assert exit_code == 0
