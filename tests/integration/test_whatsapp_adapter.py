"""Sending on WhatsApp: the real twilio client (async, URL rewritten) against the fake Twilio Messages API."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from booking_core.domain.messages import Button, DeliveryFailed, Image, OutboundMessage
from channels.whatsapp import options
from channels.whatsapp.adapter import WhatsAppAdapter
from devtools.fakes.twilio_api import FakeTwilio, running_fake_twilio

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "clinic-auth-token"
CLINIC_WHATSAPP = "whatsapp:+14155238886"
PATIENT = "+6281234567890"
PATIENT_WHATSAPP = "whatsapp:+6281234567890"
PUBLIC_BASE_URL = "https://clinic.example"
REMINDER_TEMPLATE = "HX" + "3c5e7a9b1d2f4a6c" * 2
SLOTS = (Button("Tue 09:00", "slot:2026-11-24T09:00"), Button("Tue 10:30", "slot:2026-11-24T10:30"),
         Button("Another day", "slot:more"))  # fmt: skip


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with running_fake_twilio(accounts={ACCOUNT_SID: AUTH_TOKEN}) as fake:
        yield fake


def whatsapp_adapter(api_url: str, *, auth_token: str = AUTH_TOKEN) -> WhatsAppAdapter:
    return WhatsAppAdapter(
        account_sid=ACCOUNT_SID,
        auth_token=auth_token,
        sender=CLINIC_WHATSAPP,
        api_url=api_url,
        public_base_url=PUBLIC_BASE_URL,
    )


@pytest.fixture
async def adapter(twilio: FakeTwilio) -> AsyncIterator[WhatsAppAdapter]:
    adapter = whatsapp_adapter(twilio.base_url)
    yield adapter
    await adapter.close()


def reply(
    text: str = "Which time suits you?", *, wrote: timedelta | None = timedelta(minutes=5), **fields: Any
) -> OutboundMessage:
    """A message to the patient, who last wrote ``wrote`` ago (None: never)."""
    last_inbound = None if wrote is None else datetime.now(UTC) - wrote
    return OutboundMessage(channel="whatsapp", recipient=PATIENT, text=text, last_inbound_at=last_inbound, **fields)


async def test_offered_slots_are_sent_as_numbered_options(adapter: WhatsAppAdapter, twilio: FakeTwilio) -> None:
    sid = await adapter.send(reply("Which time suits you?", buttons=SLOTS))

    [sent] = twilio.sent_messages(PATIENT_WHATSAPP)
    assert sent.response["sid"] == sid
    assert sent.params["Body"] == (
        "Which time suits you?\n\nReply with a number:\n1 = Tue 09:00\n2 = Tue 10:30\n3 = Another day"
    )
    assert sent.params["Body"] == options.render("Which time suits you?", SLOTS)


async def test_a_reply_within_the_window_is_plain_text_with_a_status_callback(
    adapter: WhatsAppAdapter, twilio: FakeTwilio
) -> None:
    sid = await adapter.send(reply("Your visit is confirmed for Tue 09:00.", wrote=timedelta(hours=23, minutes=59)))

    [sent] = twilio.sent_messages(PATIENT_WHATSAPP)
    assert sid.startswith("SM") and twilio.messages[sid]["status"] == "queued"
    assert sent.params == {
        "To": PATIENT_WHATSAPP,
        "From": CLINIC_WHATSAPP,
        "Body": "Your visit is confirmed for Tue 09:00.",
        "StatusCallback": f"{PUBLIC_BASE_URL}/webhooks/whatsapp/status",
    }


async def test_outside_the_window_the_reminder_template_is_sent(adapter: WhatsAppAdapter, twilio: FakeTwilio) -> None:
    message = reply(
        "Reminder: your visit is tomorrow at 09:00.",
        wrote=timedelta(hours=25),
        template=REMINDER_TEMPLATE,
        template_fields=(("name", "Budi"), ("when", "Selasa 09:00")),
    )

    sid = await adapter.send(message)

    [sent] = twilio.sent_messages(PATIENT_WHATSAPP)
    assert sent.response["sid"] == sid
    assert sent.params["ContentSid"] == REMINDER_TEMPLATE
    assert json.loads(sent.params["ContentVariables"]) == {"1": "Budi", "2": "Selasa 09:00"}
    assert "Body" not in sent.params


async def test_a_patient_who_never_wrote_gets_only_the_template(adapter: WhatsAppAdapter, twilio: FakeTwilio) -> None:
    await adapter.send(reply("Your visit is booked.", wrote=None, template=REMINDER_TEMPLATE))

    [sent] = twilio.sent_messages(PATIENT_WHATSAPP)
    assert sent.params["ContentSid"] == REMINDER_TEMPLATE
    assert "ContentVariables" not in sent.params


async def test_outside_the_window_without_a_template_fails_for_good_before_calling_twilio(
    adapter: WhatsAppAdapter, twilio: FakeTwilio
) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await adapter.send(reply("Are you still coming?", wrote=timedelta(hours=24, seconds=1)))

    assert failed.value.transient is False
    assert failed.value.code == "outside_24h_window"
    assert twilio.requests == []


async def test_a_throttled_send_is_retried_after_twilios_retry_after(
    adapter: WhatsAppAdapter, twilio: FakeTwilio
) -> None:
    twilio.throttle_next(retry_after=7, method="Messages.create")

    with pytest.raises(DeliveryFailed) as throttled:
        await adapter.send(reply())

    assert throttled.value.transient is True
    assert throttled.value.retry_after == 7
    assert throttled.value.code == "20429"
    assert twilio.sent_messages() == []


@pytest.mark.parametrize("status", [500, 503])
async def test_a_twilio_outage_is_transient(adapter: WhatsAppAdapter, twilio: FakeTwilio, status: int) -> None:
    twilio.fail_next(status=status)

    with pytest.raises(DeliveryFailed) as outage:
        await adapter.send(reply())

    assert outage.value.transient is True
    assert outage.value.retry_after is None
    assert outage.value.code == str(20000 + status)


async def test_wrong_credentials_fail_for_good(twilio: FakeTwilio) -> None:
    intruder = whatsapp_adapter(twilio.base_url, auth_token="guessed-token")
    try:
        with pytest.raises(DeliveryFailed) as refused:
            await intruder.send(reply())
    finally:
        await intruder.close()

    assert refused.value.transient is False
    assert refused.value.code == "20003"
    assert twilio.sent_messages() == []


async def test_an_invalid_number_fails_for_good_with_twilios_error_code(adapter: WhatsAppAdapter) -> None:
    message = OutboundMessage(
        channel="whatsapp", recipient="+12", text="Hello", last_inbound_at=datetime.now(UTC) - timedelta(minutes=1)
    )

    with pytest.raises(DeliveryFailed) as refused:
        await adapter.send(message)

    assert refused.value.transient is False
    assert refused.value.code == "21211"


async def test_an_unreachable_twilio_is_transient() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = whatsapp_adapter(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(DeliveryFailed) as unreachable:
            await adapter.send(reply())
    finally:
        await adapter.close()

    assert unreachable.value.transient is True
    assert unreachable.value.code == "network"


async def test_a_check_in_qr_code_without_a_public_url_goes_as_text_only(
    adapter: WhatsAppAdapter, twilio: FakeTwilio
) -> None:
    qr = Image(b"\x89PNG\r\n\x1a\n fake png", filename="check-in.png")

    await adapter.send(reply("Show this code at the front desk: K7M-2QX", image=qr))

    [sent] = twilio.sent_messages(PATIENT_WHATSAPP)
    assert sent.params["Body"] == "Show this code at the front desk: K7M-2QX"
    assert "MediaUrl" not in sent.params


async def test_one_adapter_sends_many_messages_and_closing_twice_is_harmless(
    adapter: WhatsAppAdapter, twilio: FakeTwilio
) -> None:
    sids = {await adapter.send(reply(f"Your queue number is {n}")) for n in range(3)}
    await adapter.close()
    await adapter.close()

    assert len(sids) == 3
    assert [entry.params["Body"] for entry in twilio.sent_messages()] == [f"Your queue number is {n}" for n in range(3)]
