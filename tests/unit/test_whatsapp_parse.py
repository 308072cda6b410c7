"""Reading Twilio's forms and answers: senders, names, counts and Retry-After (no network, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels.base import Refused
from channels.whatsapp.adapter import WhatsAppAdapter, address, display_name, sender_channel
from channels.whatsapp.client import retry_after_seconds, rewrite_url

MORNING = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
adapter = WhatsAppAdapter(
    account_sid="AC" + "0" * 32,
    auth_token="token",
    sender="+14155238886",
    api_url="https://api.twilio.com",
    public_base_url="https://clinic.example/",
    clock=lambda: MORNING,
)


def form(**fields: str) -> dict[str, str]:
    return {"MessageSid": "SM" + "1" * 32, "From": "whatsapp:+6281234567890", "To": "whatsapp:+14155238886",
            "Body": "Halo", **fields}  # fmt: skip


def test_the_patient_is_known_by_their_number_without_the_whatsapp_prefix() -> None:
    inbound = adapter.parse(form(ProfileName="Budi"))

    assert inbound is not None
    assert inbound.contact.external_id == inbound.contact.phone == "+6281234567890"
    assert inbound.contact.display_name == "Budi"
    assert inbound.received_at == MORNING
    assert (inbound.kind, inbound.text, inbound.media_count) == ("text", "Halo", 0)


def test_the_sender_and_status_callback_use_whatsapp_addresses_and_the_public_url() -> None:
    assert adapter.sender == "whatsapp:+14155238886"
    assert adapter.status_callback_url == "https://clinic.example/webhooks/whatsapp/status"
    assert address("+6281234567890") == address("whatsapp:+6281234567890") == "whatsapp:+6281234567890"


@pytest.mark.parametrize(("sender", "channel"), [("whatsapp:+62812", "whatsapp"), ("+62812", "sms"),
                                                 ("messenger:1234", "messenger"), ("RCS:brand", "rcs")])  # fmt: skip
def test_the_senders_channel_is_its_address_prefix(sender: str, channel: str) -> None:
    assert sender_channel(sender) == channel


def test_messages_from_other_twilio_channels_are_ignored() -> None:
    assert adapter.parse(form(From="+6281234567890")) is None
    assert adapter.parse(form(From="messenger:1234567890")) is None
    assert adapter.parse(form(From="apple:urn:biz:123")) is None  # unsupported: logged, still not taken in


@pytest.mark.parametrize("missing", ["MessageSid", "From", "the number"])
def test_a_form_without_a_sid_or_a_sender_is_a_bad_request(missing: str) -> None:
    fields = form()
    if missing == "the number":
        fields["From"] = "whatsapp:"
    else:
        del fields[missing]

    with pytest.raises(Refused) as refused:
        adapter.parse(fields)

    assert refused.value.status == 400


def test_an_older_form_with_only_sms_sid_is_still_read() -> None:
    fields = form()
    sid = fields.pop("MessageSid")

    inbound = adapter.parse({**fields, "SmsMessageSid": sid})

    assert inbound is not None and inbound.external_id == sid


def test_a_pressed_template_button_without_a_body_takes_the_button_text() -> None:
    inbound = adapter.parse(form(Body="", ButtonText="Confirm", ButtonPayload="confirm:81"))

    assert inbound is not None
    assert (inbound.kind, inbound.text, inbound.button_data) == ("button", "Confirm", "confirm:81")


@pytest.mark.parametrize("count", ["lots", "11", "-1", " 1", "0NumSegments1", "\uff11", "1" * 400])
def test_a_media_count_twilio_would_not_write_is_a_bad_request(count: str) -> None:
    with pytest.raises(Refused) as refused:
        adapter.parse(form(Body="", NumMedia=count))

    assert refused.value.status == 400


def test_media_counts_from_none_to_ten_are_read() -> None:
    assert [adapter.parse(form(NumMedia=str(n))).media_count for n in (0, 1, 10)] == [0, 1, 10]  # type: ignore[union-attr]


def test_a_number_that_is_not_e164_keeps_its_id_but_gives_no_phone() -> None:
    inbound = adapter.parse(form(From="whatsapp:wa-user-7f3a"))

    assert inbound is not None
    assert inbound.contact.external_id == "wa-user-7f3a" and inbound.contact.phone is None


def test_names_lose_controls_and_direction_overrides_but_keep_what_the_patient_typed() -> None:
    assert display_name("\u202eSari\u202c\x00 <b>Dewi</b>\n  🌸") == "Sari <b>Dewi</b> 🌸"
    assert len(display_name("x" * 500)) == 200


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (" 1.5 ", 1.5), ("-3", 0.0), ("", None), (None, None), ("soon", None), ("nan", None),
     ("Mon, 23 Nov 2026 01:00:30 GMT", 30.0)],
)  # fmt: skip
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=MORNING) == seconds


def test_only_twilio_api_urls_are_rewritten() -> None:
    assert (
        rewrite_url("https://api.twilio.com/2010-04-01/x.json", "http://127.0.0.1:9")
        == "http://127.0.0.1:9/2010-04-01/x.json"
    )
    assert (
        rewrite_url("https://api.twilio.com.evil.example/x", "http://127.0.0.1:9")
        == "https://api.twilio.com.evil.example/x"
    )
    assert rewrite_url("https://api.twilio.com/x", None) == "https://api.twilio.com/x"
