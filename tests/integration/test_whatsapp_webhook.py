"""Twilio posting to the gateway: inbound WhatsApp messages and status callbacks, through the real app and Postgres.

Every form is a real Twilio payload shape from ``tests/fixtures/whatsapp`` (one fixture per condition), signed the
way Twilio signs it. Each test gives its fixture a fresh MessageSid and patient number, so tests never meet.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.request_validator import RequestValidator

from booking_core.db.tables import ChannelIdentity, DeliveryEvent, Lead, Message, OutboxMessage
from booking_core.services import delivery_status
from channels.whatsapp.status import RANK
from gateway.app import create_app
from gateway.keys import METRICS
from infra.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
ACCOUNT_SID = "AC3f9a1c0d7be24e6a8c5d2b1f0e9a7c64"
AUTH_TOKEN = "clinic-twilio-auth-token"
CLINIC_WHATSAPP = "whatsapp:+14155238886"
INBOUND = "/webhooks/whatsapp"
STATUS = "/webhooks/whatsapp/status"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def twilio_posts(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The gateway with WhatsApp configured (the shared ``client`` fixture has no Twilio credentials)."""
    configured = settings.model_copy(
        update={"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_WHATSAPP_FROM": CLINIC_WHATSAPP}
    )  # fmt: skip
    async with TestClient(TestServer(create_app(configured))) as http:
        yield http


def fixture(name: str) -> dict[str, str]:
    form: dict[str, str] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return form


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


def new_number() -> str:
    return "+62812" + "".join(secrets.choice("0123456789") for _ in range(8))


def from_a_new_patient(name: str) -> dict[str, str]:
    """Fixture ``name`` with a fresh MessageSid (all three sid fields) and a fresh patient number."""
    form = fixture(name)
    sid = new_sid(form["MessageSid"][:2])
    number = new_number()
    for key in ("MessageSid", "SmsMessageSid", "SmsSid"):
        if key in form:
            form[key] = sid
    form["From"] = f"whatsapp:{number}" if form["From"].startswith("whatsapp:") else number
    if "WaId" in form:
        form["WaId"] = number.removeprefix("+")
    return form


def signature(settings: Settings, path: str, form: dict[str, str], *, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(settings.PUBLIC_BASE_URL + path, form)


async def post(
    http: TestClient[Any, Any], settings: Settings, path: str, form: dict[str, str], *, token: str = AUTH_TOKEN
) -> Any:
    headers = {**FORM, "X-Twilio-Signature": signature(settings, path, form, token=token)}
    return await http.post(path, data=urlencode(form), headers=headers)


async def assert_empty_twiml(response: Any) -> None:
    assert response.status == 200, await response.text()
    assert response.content_type == "text/xml"
    assert (await response.text()).endswith("<Response/>")


async def stored(db: AsyncSession, sid: str) -> Message | None:
    result = await db.execute(
        select(Message)
        .where(Message.channel == "whatsapp", Message.external_id == sid)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def identity_of(db: AsyncSession, number: str) -> ChannelIdentity:
    result = await db.execute(
        select(ChannelIdentity)
        .where(ChannelIdentity.channel == "whatsapp", ChannelIdentity.external_id == number)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one()


def counted(http: TestClient[Any, Any], outcome: str) -> float:
    registry = http.server.app[METRICS].registry
    value = registry.get_sample_value("frontdesk_inbound_messages_total", {"channel": "whatsapp", "outcome": outcome})
    return value or 0.0


def number_of(form: dict[str, str]) -> str:
    return form["From"].removeprefix("whatsapp:")


# --- inbound messages ---


async def test_a_patients_question_is_stored_before_twilio_gets_an_empty_twiml(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("text.json")

    response = await post(twilio_posts, settings, INBOUND, form)

    await assert_empty_twiml(response)
    message = await stored(db, form["MessageSid"])
    assert message is not None
    assert message.direction == "in" and message.author == "patient"
    assert message.text == "Hi, can I book a dental check-up tomorrow morning?"
    assert message.payload["kind"] == "text"
    assert message.payload["raw"]["WaId"] == form["WaId"]
    identity = await identity_of(db, number_of(form))
    assert identity.display_name == "Budi Santoso"
    lead = (await db.execute(select(Lead).where(Lead.conversation_id == message.conversation_id))).scalar_one()
    assert lead.channel == "whatsapp" and lead.status == "new"
    assert lead.contact_phone == number_of(form)


async def test_a_chosen_slot_arrives_as_button_data(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("button.json")

    await assert_empty_twiml(await post(twilio_posts, settings, INBOUND, form))

    message = await stored(db, form["MessageSid"])
    assert message is not None
    assert message.payload["kind"] == "button"
    assert message.payload["button_data"] == "slot:2026-11-24T09:00"
    assert message.text == "Tue 09:00"


async def test_a_photo_without_words_is_a_media_message(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("media_without_body.json")

    await assert_empty_twiml(await post(twilio_posts, settings, INBOUND, form))

    message = await stored(db, form["MessageSid"])
    assert message is not None
    assert message.payload["kind"] == "media"
    assert message.payload["media_count"] == 1
    assert message.text == ""
    assert message.payload["raw"]["MediaContentType0"] == "image/jpeg"


async def test_a_photo_with_a_caption_is_a_text_with_its_media_counted(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("media_with_caption.json")

    await assert_empty_twiml(await post(twilio_posts, settings, INBOUND, form))

    message = await stored(db, form["MessageSid"])
    assert message is not None
    assert message.payload["kind"] == "text"
    assert message.payload["media_count"] == 1
    assert message.text == "Here is my referral letter from Dr. Sari"


async def test_a_ten_thousand_character_message_is_cut_not_refused(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("long_body.json")
    assert len(form["Body"]) == 10_000

    await assert_empty_twiml(await post(twilio_posts, settings, INBOUND, form))

    message = await stored(db, form["MessageSid"])
    assert message is not None
    assert len(message.text) == 4096
    assert form["Body"].startswith(message.text)
    assert message.payload["raw"]["Body"] == form["Body"]  # the provider's payload is kept whole


async def test_emoji_right_to_left_and_zero_width_text_arrives_unchanged(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("unicode_body.json")

    await assert_empty_twiml(await post(twilio_posts, settings, INBOUND, form))

    message = await stored(db, form["MessageSid"])
    assert message is not None
    assert message.text == "Halo 👋🏽 أريد موعدًا مع الطبيب\u200f 👨\u200d⚕️ besok\u200b pagi? שלום"
    identity = await identity_of(db, number_of(form))
    assert identity.display_name == "Sari\u200b 🌸"  # the right-to-left override that would flip the inbox is gone


async def test_html_in_a_profile_name_is_kept_as_plain_text(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("html_profile_name.json")

    await assert_empty_twiml(await post(twilio_posts, settings, INBOUND, form))

    identity = await identity_of(db, number_of(form))
    assert identity.display_name == "<script>alert('hi')</script><b>Budi</b> & Co"
    message = await stored(db, form["MessageSid"])
    assert message is not None
    lead = (await db.execute(select(Lead).where(Lead.conversation_id == message.conversation_id))).scalar_one()
    assert lead.contact_name == "<script>alert('hi')</script><b>Budi</b> & Co"


async def test_an_sms_to_the_clinics_number_is_acknowledged_and_ignored(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("sms_sender.json")
    assert not form["From"].startswith("whatsapp:")

    await assert_empty_twiml(await post(twilio_posts, settings, INBOUND, form))

    assert counted(twilio_posts, "ignored") == 1

    assert await stored(db, form["MessageSid"]) is None
    identities = select(func.count()).select_from(ChannelIdentity).where(ChannelIdentity.external_id == form["From"])
    assert (await db.execute(identities)).scalar_one() == 0


async def test_a_post_without_a_signature_is_refused(twilio_posts: TestClient[Any, Any], db: AsyncSession) -> None:
    form = from_a_new_patient("text.json")

    response = await twilio_posts.post(INBOUND, data=urlencode(form), headers=FORM)

    assert response.status == 403
    assert (await response.json())["error"]["code"] == "bad_signature"
    assert await stored(db, form["MessageSid"]) is None
    assert counted(twilio_posts, "refused") == 1


@pytest.mark.parametrize("forgery", ["another account's token", "body changed after signing", "another URL"])
async def test_a_post_with_a_wrong_signature_is_refused(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession, forgery: str
) -> None:
    form = from_a_new_patient("text.json")
    if forgery == "another account's token":
        signed = signature(settings, INBOUND, form, token="someone-elses-token")
    elif forgery == "body changed after signing":
        signed = signature(settings, INBOUND, form)
        form["Body"] = "Cancel all my visits"
    else:
        signed = signature(settings, STATUS, form)

    response = await twilio_posts.post(INBOUND, data=urlencode(form), headers={**FORM, "X-Twilio-Signature": signed})

    assert response.status == 403
    assert await stored(db, form["MessageSid"]) is None


async def test_an_unreadable_form_is_a_bad_request(twilio_posts: TestClient[Any, Any]) -> None:
    body = (FIXTURES / "malformed_body.txt").read_bytes()

    response = await twilio_posts.post(
        INBOUND, data=body, headers={**FORM, "X-Twilio-Signature": "bm90LWEtcmVhbC1zaWduYXR1cmU="}
    )

    assert response.status == 400
    assert (await response.json())["error"]["code"] == "malformed_form"


async def test_a_form_too_large_for_the_gateway_is_refused(twilio_posts: TestClient[Any, Any]) -> None:
    form = {**fixture("text.json"), "Body": "x" * (2 * 1024 * 1024)}

    response = await twilio_posts.post(
        INBOUND, data=urlencode(form), headers={**FORM, "X-Twilio-Signature": "bm90LWEtcmVhbC1zaWduYXR1cmU="}
    )

    assert response.status == 413


async def test_a_webhook_url_with_a_query_string_is_verified_with_it(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("text.json")
    path = INBOUND + "?clinic=kemang&lang=id"

    await assert_empty_twiml(await post(twilio_posts, settings, path, form))

    assert await stored(db, form["MessageSid"]) is not None


async def test_a_json_body_is_a_bad_request(twilio_posts: TestClient[Any, Any]) -> None:
    response = await twilio_posts.post(
        INBOUND, json=fixture("text.json"), headers={"X-Twilio-Signature": "bm90LWEtcmVhbC1zaWduYXR1cmU="}
    )

    assert response.status == 400


async def test_a_twilio_retry_of_the_same_message_is_stored_once(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("text.json")

    first = await post(twilio_posts, settings, INBOUND, form)
    retry = await post(twilio_posts, settings, INBOUND, form)

    await assert_empty_twiml(first)
    await assert_empty_twiml(retry)
    assert (counted(twilio_posts, "handled"), counted(twilio_posts, "duplicate")) == (1, 1)
    count = select(func.count()).select_from(Message).where(Message.external_id == form["MessageSid"])
    assert (await db.execute(count)).scalar_one() == 1
    message = await stored(db, form["MessageSid"])
    assert message is not None
    leads = select(func.count()).select_from(Lead).where(Lead.conversation_id == message.conversation_id)
    assert (await db.execute(leads)).scalar_one() == 1


async def test_whatsapp_webhooks_are_not_found_when_twilio_is_not_configured(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    form = from_a_new_patient("text.json")

    for path in (INBOUND, STATUS):
        response = await post(client, settings, path, form)
        assert response.status == 404


# --- status callbacks ---


async def sent_reminder(db: AsyncSession) -> OutboxMessage:
    """An outbox row the worker has handed to Twilio (its Message sid recorded)."""
    row = OutboxMessage(
        channel="whatsapp",
        recipient=new_number(),
        kind="reminder",
        payload={"channel": "whatsapp", "text": "See you tomorrow at 09:00"},
        status="sent",
        provider_id=new_sid(),
    )
    db.add(row)
    await db.commit()
    return row


def callback(name: str, sid: str) -> dict[str, str]:
    form = fixture(name)
    form["MessageSid"] = form["SmsSid"] = sid
    return form


async def delivery_state(db: AsyncSession, row: OutboxMessage) -> tuple[str | None, str | None]:
    await db.refresh(row)
    return row.delivery_state, row.last_error


async def events(db: AsyncSession, sid: str) -> list[str]:
    result = await db.execute(select(DeliveryEvent.state).where(DeliveryEvent.provider_id == sid).order_by("id"))
    return list(result.scalars())


async def report(http: TestClient[Any, Any], settings: Settings, *names: str, sid: str) -> None:
    for name in names:
        await assert_empty_twiml(await post(http, settings, STATUS, callback(name, sid)))


async def test_callbacks_in_order_move_the_reminder_to_read(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    row = await sent_reminder(db)
    assert row.provider_id is not None

    await report(twilio_posts, settings, "status_sent.json", "status_delivered.json", "status_read.json",
                 sid=row.provider_id)  # fmt: skip

    assert await delivery_state(db, row) == ("read", None)
    assert row.delivery_state_at is not None
    assert await events(db, row.provider_id) == ["sent", "delivered", "read"]


async def test_delivered_then_a_late_sent_stays_delivered(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    row = await sent_reminder(db)
    assert row.provider_id is not None

    await report(twilio_posts, settings, "status_delivered.json", "status_sent.json", sid=row.provider_id)

    assert await delivery_state(db, row) == ("delivered", None)
    assert await events(db, row.provider_id) == ["delivered", "sent"]


async def test_read_then_a_late_delivered_stays_read(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    row = await sent_reminder(db)
    assert row.provider_id is not None

    await report(twilio_posts, settings, "status_read.json", "status_delivered.json", sid=row.provider_id)

    assert await delivery_state(db, row) == ("read", None)
    assert await events(db, row.provider_id) == ["read", "delivered"]


async def test_an_undelivered_reminder_keeps_twilios_error_code(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    row = await sent_reminder(db)
    assert row.provider_id is not None

    await report(twilio_posts, settings, "status_sent.json", "status_undelivered.json", sid=row.provider_id)

    assert await delivery_state(db, row) == ("undelivered", "63024: undelivered")
    event = (
        (await db.execute(select(DeliveryEvent).where(DeliveryEvent.provider_id == row.provider_id).order_by("id")))
        .scalars()
        .all()[-1]
    )
    assert event.error_code == "63024"
    assert event.raw["ErrorMessage"] == "Invalid message recipient"


async def test_a_callback_for_an_unknown_message_is_recorded_and_acknowledged(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    sid = new_sid()

    await report(twilio_posts, settings, "status_delivered.json", sid=sid)

    assert await events(db, sid) == ["delivered"]


async def test_an_unsigned_status_callback_is_refused(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    row = await sent_reminder(db)
    assert row.provider_id is not None
    form = callback("status_read.json", row.provider_id)

    response = await twilio_posts.post(STATUS, data=urlencode(form), headers=FORM)

    assert response.status == 403
    assert await delivery_state(db, row) == (None, None)
    assert await events(db, row.provider_id) == []


async def test_delivered_and_read_arriving_together_end_at_read(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    row = await sent_reminder(db)
    assert row.provider_id is not None
    sid = row.provider_id

    await asyncio.gather(
        *(report(twilio_posts, settings, name, sid=sid) for name in ("status_read.json", "status_delivered.json") * 3)
    )

    assert await delivery_state(db, row) == ("read", None)
    assert sorted(await events(db, sid)) == ["delivered"] * 3 + ["read"] * 3


async def test_a_callback_that_beats_the_sender_is_applied_once_the_sid_is_recorded(
    twilio_posts: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    row = await sent_reminder(db)
    early_sid, row.provider_id = row.provider_id, None
    await db.commit()
    assert early_sid is not None
    await report(twilio_posts, settings, "status_sent.json", "status_delivered.json", sid=early_sid)
    assert await delivery_state(db, row) == (None, None)

    row.provider_id = early_sid  # what the sender records after Twilio's answer
    await db.commit()
    async with db.begin():
        moved = await delivery_status.catch_up(db, channel="whatsapp", provider_id=early_sid, rank=RANK)

    assert moved == (row.id,)
    assert await delivery_state(db, row) == ("delivered", None)
