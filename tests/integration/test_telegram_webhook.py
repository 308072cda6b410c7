"""`POST /webhooks/telegram` as Telegram calls it: one real Update fixture per condition, one test per fixture.

The gateway runs in-process against real Postgres and Redis; its aiogram Bot talks to the fake Bot API (which
records the answerCallbackQuery calls). Every fixture is sent with fresh ids, so each test is a new patient.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import ChannelIdentity, Conversation, Lead, Message, Patient
from channels.telegram.adapter import SECRET_HEADER
from devtools import harness
from devtools.fakes.telegram_api import FakeTelegram, running_fake_telegram
from gateway.app import create_app
from gateway.keys import METRICS
from infra.settings import Settings, SettingsError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "telegram"
PATH = "/webhooks/telegram"
BOT_TOKEN = "123456:clinic-bot-token"
WEBHOOK_SECRET = "clinic-webhook-secret_0123456789"
SIGNED = {SECRET_HEADER: WEBHOOK_SECRET}
# Telegram user/chat ids of the people in the fixtures; replaced by fresh ones in every test.
PEOPLE = ("5342492667", "7012345678", "6650012345")

Client = TestClient[Any, Any]


def update(name: str) -> dict[str, Any]:
    """The fixture ``name`` with a fresh update id and fresh ids for its people (the database lives for the run)."""
    text = (FIXTURES / f"{name}.json").read_text(encoding="utf-8")
    for person in PEOPLE:
        text = re.sub(rf"\b{person}\b", str(10**10 + secrets.randbelow(10**12)), text)
    data: dict[str, Any] = json.loads(text)
    data["update_id"] = 10**9 + secrets.randbelow(10**9)
    return data


def chat_of(data: dict[str, Any]) -> str:
    """The private chat an update comes from (the identity's external id)."""
    if "callback_query" in data:
        return str(data["callback_query"]["message"]["chat"]["id"])
    return str(data["message"]["chat"]["id"])


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram(tokens={BOT_TOKEN}) as fake:
        yield fake


@pytest.fixture
def telegram_settings(settings: Settings, telegram: FakeTelegram) -> Settings:
    return settings.model_copy(
        update={
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_API_URL": telegram.base_url,
        }
    )


@pytest.fixture
async def gateway(telegram_settings: Settings) -> AsyncIterator[Client]:
    """The gateway with Telegram configured, its Bot pointed at the fake Bot API."""
    async with TestClient(TestServer(create_app(telegram_settings))) as http:
        yield http


async def post(gateway: Client, data: Any, *, headers: dict[str, str] = SIGNED) -> tuple[int, Any]:
    response = await gateway.post(PATH, json=data, headers=headers)
    return response.status, await response.json()


async def inbound(sessionmaker: async_sessionmaker[AsyncSession], chat: str) -> list[Message]:
    """Inbound messages stored for a Telegram chat, oldest first."""
    async with sessionmaker() as db:
        result = await db.execute(
            select(Message)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .join(ChannelIdentity, Conversation.identity_id == ChannelIdentity.id)
            .where(ChannelIdentity.channel == "telegram", ChannelIdentity.external_id == chat)
            .where(Message.direction == "in")
            .order_by(Message.id)
        )
        return list(result.scalars())


async def the_message(sessionmaker: async_sessionmaker[AsyncSession], chat: str) -> Message:
    messages = await inbound(sessionmaker, chat)
    assert len(messages) == 1, messages
    return messages[0]


async def identity_of(sessionmaker: async_sessionmaker[AsyncSession], chat: str) -> ChannelIdentity | None:
    async with sessionmaker() as db:
        result = await db.execute(
            select(ChannelIdentity).where(ChannelIdentity.channel == "telegram", ChannelIdentity.external_id == chat)
        )
        return result.scalar_one_or_none()


async def leads_of(sessionmaker: async_sessionmaker[AsyncSession], chat: str) -> list[Lead]:
    async with sessionmaker() as db:
        result = await db.execute(
            select(Lead)
            .join(ChannelIdentity, Lead.identity_id == ChannelIdentity.id)
            .where(ChannelIdentity.channel == "telegram", ChannelIdentity.external_id == chat)
        )
        return list(result.scalars())


async def all_inbound_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as db:
        query = select(func.count()).select_from(Message).where(Message.direction == "in")
        return int((await db.execute(query)).scalar_one())


def counted(gateway: Client, outcome: str) -> float:
    app = gateway.app
    assert app is not None
    registry = app[METRICS].registry
    value = registry.get_sample_value("frontdesk_inbound_messages_total", {"channel": "telegram", "outcome": outcome})
    return value or 0.0


# --- one test per fixture: what a patient sends ---


async def test_a_patients_text_message_lands_on_a_new_lead(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("text_message")
    assert await post(gateway, data) == (200, {"ok": True})

    chat = chat_of(data)
    message = await the_message(sessionmaker, chat)
    assert message.channel == "telegram"
    assert message.external_id == f"{chat}:{data['message']['message_id']}"
    assert message.text == "Halo, saya mau periksa gigi hari Selasa pagi"
    assert message.payload["kind"] == "text"
    assert message.payload["raw"] == data
    identity = await identity_of(sessionmaker, chat)
    assert identity is not None
    assert (identity.display_name, identity.language_code) == ("Siti Rahmawati", "id")
    [lead] = await leads_of(sessionmaker, chat)
    assert (lead.status, lead.channel, lead.contact_name) == ("new", "telegram", "Siti Rahmawati")
    assert lead.requested_text == "Halo, saya mau periksa gigi hari Selasa pagi"
    assert counted(gateway, "handled") == 1


async def test_start_opens_a_conversation_without_a_payload(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("start")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert (message.payload["kind"], message.payload["start_payload"], message.text) == ("start", None, "/start")


async def test_a_deep_link_start_keeps_its_payload_for_the_dialog(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("start_with_payload")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert message.payload["kind"] == "start"
    assert message.payload["start_payload"] == "branch-2_dental"


async def test_a_pressed_slot_button_is_stored_and_its_spinner_stopped(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession], telegram: FakeTelegram
) -> None:
    data = update("callback_query")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert message.external_id == f"u{data['update_id']}"
    assert message.payload["kind"] == "button"
    assert message.payload["button_data"] == "slot:2024-06-04T09:00"
    assert message.text == "Tue 09:00"  # the label, so the inbox reads like the chat
    [answer] = telegram.requests_for("answerCallbackQuery")
    assert answer.ok
    assert answer.token == BOT_TOKEN
    assert answer.params["callback_query_id"] == "2317581337613286427"


async def test_sharing_ones_own_contact_gives_the_patient_a_phone_number(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("own_contact")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert (message.payload["kind"], message.payload["phone"]) == ("contact", "6281234567890")
    identity = await identity_of(sessionmaker, chat_of(data))
    assert identity is not None and identity.patient_id is not None
    async with sessionmaker() as db:
        patient = await db.get(Patient, identity.patient_id)
        assert patient is not None
        while patient.merged_into_id is not None:  # another test's patient may already hold this number
            patient = await db.get(Patient, patient.merged_into_id)
            assert patient is not None
    assert patient.phone_e164 == "+6281234567890"


async def test_someone_elses_contact_is_not_taken_as_the_patients_phone(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("someone_elses_contact")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert (message.payload["kind"], message.payload["phone"]) == ("contact", None)
    identity = await identity_of(sessionmaker, chat_of(data))
    assert identity is not None and identity.patient_id is not None
    async with sessionmaker() as db:
        patient = await db.get(Patient, identity.patient_id)
    assert patient is not None
    assert patient.phone_e164 is None
    [lead] = await leads_of(sessionmaker, chat_of(data))
    assert lead.contact_phone is None


async def test_a_sticker_is_media_for_the_dialog_to_answer_politely(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("sticker")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert (message.payload["kind"], message.payload["media_count"], message.text) == ("media", 1, "")


async def test_a_photo_without_a_caption_is_media(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("photo_without_caption")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert (message.payload["kind"], message.payload["media_count"], message.text) == ("media", 1, "")


async def test_a_photo_caption_is_read_as_the_patients_text(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("photo_with_caption")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert (message.payload["kind"], message.payload["media_count"]) == ("text", 1)
    assert message.text == "Ini hasil rontgen minggu lalu"


async def test_a_voice_note_is_media(gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    data = update("voice")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert (message.payload["kind"], message.payload["media_count"]) == ("media", 1)


async def test_a_10000_character_message_is_cut_and_flagged_not_refused(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("long_text")
    assert len(data["message"]["text"]) == 10_000
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert len(message.text) == 4096
    assert data["message"]["text"].startswith(message.text)
    assert message.payload["text_cut"] is True


async def test_emoji_right_to_left_and_zero_width_text_is_kept_as_written(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("emoji_rtl_zero_width")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert message.text == data["message"]["text"]
    identity = await identity_of(sessionmaker, chat_of(data))
    assert identity is not None
    assert identity.display_name == "🌸 Dewi\u200b أحمد"
    assert identity.language_code == "ar"


async def test_html_in_a_name_is_stored_as_written_for_the_page_to_escape(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("html_in_first_name")
    assert await post(gateway, data) == (200, {"ok": True})

    name = "<script>alert('pwned')</script> <b>Budi</b> & \"Co\""
    identity = await identity_of(sessionmaker, chat_of(data))
    assert identity is not None and identity.display_name == name
    [lead] = await leads_of(sessionmaker, chat_of(data))
    assert lead.contact_name == name


async def test_nul_characters_are_dropped_before_anything_is_stored(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("text_with_nul")
    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    assert message.text == "Jam buka hari Sabtu?"
    assert message.payload["raw"]["message"]["text"] == "Jam buka hari Sabtu?"
    identity = await identity_of(sessionmaker, chat_of(data))
    assert identity is not None and identity.display_name == "Siti Rahmawati"


# --- updates ignored on purpose: 200 so Telegram does not retry, nothing stored, counted ---


@pytest.mark.parametrize(
    "name", ["edited_message", "channel_post", "group_message", "my_chat_member", "unknown_update_type"]
)
async def test_updates_that_are_not_a_patient_writing_are_acknowledged_and_not_stored(
    name: str, gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    before = await all_inbound_count(sessionmaker)
    data = update(name)

    assert await post(gateway, data) == (200, {"ok": True})

    assert await all_inbound_count(sessionmaker) == before
    assert counted(gateway, "ignored") == 1
    assert counted(gateway, "handled") == 0


# --- refusals ---


@pytest.mark.parametrize(
    "headers",
    [{}, {SECRET_HEADER: "forged-secret"}, {SECRET_HEADER: WEBHOOK_SECRET + "x"}, {SECRET_HEADER: ""}],
    ids=["missing", "forged", "longer", "empty"],
)
async def test_a_missing_or_forged_secret_is_refused_and_nothing_is_stored(
    headers: dict[str, str], gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("text_message")

    status, body = await post(gateway, data, headers=headers)

    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert await identity_of(sessionmaker, chat_of(data)) is None
    assert counted(gateway, "refused") == 1


async def test_malformed_json_is_a_400_never_a_500(gateway: Client) -> None:
    for body in (b'{"update_id": 1, "message": ', b"\xff\xfe not utf-8", b"", b"[" * 100_000, b'{"update_id": NaN}'):
        response = await gateway.post(PATH, data=body, headers={**SIGNED, "Content-Type": "application/json"})
        assert response.status == 400, body[:20]
        assert (await response.json())["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("field", ["text", "first_name"])
async def test_half_an_emoji_escape_is_replaced_and_the_message_kept(
    field: str, gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("text_message")
    where = data["message"] if field == "text" else data["message"]["from"]
    where[field] = "Halo \ud83c"  # the first half of a surrogate pair, alone: JSON allows it, Unicode does not

    assert await post(gateway, data) == (200, {"ok": True})

    message = await the_message(sessionmaker, chat_of(data))
    identity = await identity_of(sessionmaker, chat_of(data))
    assert identity is not None
    stored = message.text if field == "text" else identity.display_name
    assert stored.startswith("Halo \ufffd")  # U+FFFD, the replacement character, where the half was
    assert "\ufffd" in json.dumps(message.payload["raw"], ensure_ascii=False)


async def test_json_that_is_not_a_telegram_update_is_a_400(gateway: Client) -> None:
    not_updates = [
        [],
        "update",
        {"message": {"text": "no update id"}},
        {"update_id": "twelve", "message": {}},
        {"update_id": 5, "message": {"message_id": 1, "text": "no chat, no date"}},
    ]
    for data in not_updates:
        status, body = await post(gateway, data)
        assert status == 400, data
        assert body["error"]["code"] == "invalid_update"
    assert counted(gateway, "refused") == len(not_updates)


async def test_an_oversized_body_is_refused_with_413(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("text_message")
    data["padding"] = "x" * (1024 * 1024)

    status, body = await post(gateway, data)

    assert status == 413
    assert body["error"]["code"] == "too_large"
    assert await identity_of(sessionmaker, chat_of(data)) is None


# --- retries ---


async def test_telegram_retrying_an_update_stores_it_once(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("text_message")

    assert await post(gateway, data) == (200, {"ok": True})
    assert await post(gateway, data) == (200, {"ok": True})

    assert len(await inbound(sessionmaker, chat_of(data))) == 1
    assert len(await leads_of(sessionmaker, chat_of(data))) == 1
    assert (counted(gateway, "handled"), counted(gateway, "duplicate")) == (1, 1)


async def test_two_deliveries_of_one_update_at_the_same_moment_store_it_once(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = update("callback_query")

    results = await asyncio.gather(post(gateway, data), post(gateway, data))

    assert results == [(200, {"ok": True}), (200, {"ok": True})]
    assert len(await inbound(sessionmaker, chat_of(data))) == 1
    assert len(await leads_of(sessionmaker, chat_of(data))) == 1


async def test_a_failed_callback_answer_does_not_fail_the_acknowledgement(
    gateway: Client, sessionmaker: async_sessionmaker[AsyncSession], telegram: FakeTelegram
) -> None:
    telegram.fail_next(status=502, method="answerCallbackQuery")
    data = update("callback_query")

    assert await post(gateway, data) == (200, {"ok": True})

    assert [entry.status for entry in telegram.requests_for("answerCallbackQuery")] == [502]
    assert (await the_message(sessionmaker, chat_of(data))).payload["button_data"] == "slot:2024-06-04T09:00"


# --- configuration ---


def test_the_gateway_refuses_to_start_with_a_bot_token_but_no_webhook_secret(telegram_settings: Settings) -> None:
    unsafe = telegram_settings.model_copy(update={"TELEGRAM_WEBHOOK_SECRET": None})
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET"):
        create_app(unsafe)


async def test_without_a_bot_token_the_webhook_is_not_there(client: Client) -> None:
    response = await client.post(PATH, json=update("text_message"), headers=SIGNED)
    assert response.status == 404


async def _frontdesk(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run `frontdesk ARGS` as a real process without blocking the loop that serves the fake Bot API."""
    process = await asyncio.create_subprocess_exec(
        *harness.frontdesk_command(*args),
        env=env,
        cwd=harness.ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_frontdesk_telegram_webhook_points_telegram_at_the_gateway_with_the_secret(
    telegram: FakeTelegram, child_env: dict[str, str]
) -> None:
    env = {
        **child_env,
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": telegram.base_url,
        "PUBLIC_BASE_URL": "https://clinic.example.org",
    }

    code, out, err = await _frontdesk("telegram-webhook", env=env)

    assert code == 0, err
    assert out.strip().splitlines()[-1] == "Telegram webhook set to https://clinic.example.org/webhooks/telegram"
    hook = telegram.webhook(BOT_TOKEN)
    assert hook is not None
    assert hook["url"] == "https://clinic.example.org/webhooks/telegram"
    assert hook["secret_token"] == WEBHOOK_SECRET
    assert hook["allowed_updates"] == ["message", "callback_query"]


async def test_frontdesk_telegram_webhook_without_a_secret_says_what_to_set(
    telegram: FakeTelegram, child_env: dict[str, str]
) -> None:
    env = {**child_env, "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_URL": telegram.base_url}

    code, _, err = await _frontdesk("telegram-webhook", env=env)

    assert code == 1
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("frontdesk: error:")]
    assert "TELEGRAM_WEBHOOK_SECRET" in line
    assert telegram.requests_for("setWebhook") == []


async def test_frontdesk_telegram_webhook_reports_telegrams_refusal_in_one_line(
    telegram: FakeTelegram, child_env: dict[str, str]
) -> None:
    env = {
        **child_env,
        "TELEGRAM_BOT_TOKEN": "999:not-this-bot",
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": telegram.base_url,
    }

    code, _, err = await _frontdesk("telegram-webhook", env=env)

    assert code == 1
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("frontdesk: error:")]
    assert "Unauthorized" in line and "TELEGRAM_BOT_TOKEN" in line
    assert telegram.webhook("999:not-this-bot") is None
