"""A captured, correctly signed Twilio form cannot be re-cut into a new message, nor sent to another clinic's number.

Twilio signs the URL followed by every POST name and value, sorted by name, joined with no separator. So moving the
boundary between fields keeps the signature: ``MessageSid=SM…`` ``MessageType=text`` ``NumMedia=0`` signs exactly
like ``MessageSid=SM…MessageTypetextNumMedia0`` alone. Without a check on the sid's shape, that was a new message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import DeliveryEvent, Message
from gateway.app import create_app
from infra.settings import Settings
from tests.integration.test_whatsapp_webhook import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CLINIC_WHATSAPP,
    FORM,
    INBOUND,
    STATUS,
    callback,
    from_a_new_patient,
    new_sid,
    number_of,
    post,
    signature,
)


@pytest.fixture
async def twilio(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The gateway with the clinic's WhatsApp sender configured."""
    configured = settings.model_copy(
        update={"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_WHATSAPP_FROM": CLINIC_WHATSAPP}
    )  # fmt: skip
    async with TestClient(TestServer(create_app(configured))) as http:
        yield http


def recut(form: dict[str, str], first: str, last: str) -> dict[str, str]:
    """``form`` with ``first`` swallowing every field after it, up to and including ``last`` (in signing order)."""
    names = sorted(form)
    start, end = names.index(first), names.index(last)
    merged = {name: value for name, value in form.items() if name not in names[start : end + 1]}
    merged[first] = form[first] + "".join(name + form[name] for name in names[start + 1 : end + 1])
    return merged


async def messages_from(db: AsyncSession, number: str) -> int:
    query = select(func.count()).select_from(Message).where(Message.channel == "whatsapp")
    query = query.where(Message.payload["raw"]["From"].astext == f"whatsapp:{number}")
    return int((await db.execute(query)).scalar_one())


async def test_a_replayed_form_with_message_sid_and_num_media_merged_is_refused_and_not_stored(
    twilio: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    captured = from_a_new_patient("text.json")
    signed = signature(settings, INBOUND, captured)
    first = await twilio.post(INBOUND, data=urlencode(captured), headers={**FORM, "X-Twilio-Signature": signed})
    assert first.status == 200
    replay = recut(captured, "MessageSid", "NumMedia")
    assert "NumMedia" not in replay and replay["MessageSid"].endswith("NumMedia0")
    assert signature(settings, INBOUND, replay) == signed  # the signature cannot tell them apart

    response = await twilio.post(INBOUND, data=urlencode(replay), headers={**FORM, "X-Twilio-Signature": signed})

    assert response.status == 400
    assert (await response.json())["error"]["code"] == "malformed_form"
    assert await messages_from(db, number_of(captured)) == 1


async def test_a_num_media_that_swallowed_the_next_field_is_refused(
    twilio: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = recut(from_a_new_patient("media_without_body.json"), "NumMedia", "NumSegments")
    assert form["NumMedia"] == "1NumSegments1"

    response = await post(twilio, settings, INBOUND, form)

    assert response.status == 400
    assert await messages_from(db, number_of(form)) == 0


async def test_a_message_to_another_number_is_refused_even_when_signed(
    twilio: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = {**from_a_new_patient("text.json"), "To": "whatsapp:+6221555000111"}

    response = await post(twilio, settings, INBOUND, form)

    assert response.status == 403
    assert await messages_from(db, number_of(form)) == 0
    without_to = {k: v for k, v in from_a_new_patient("text.json").items() if k != "To"}
    assert (await post(twilio, settings, INBOUND, without_to)).status == 403
    assert await messages_from(db, number_of(without_to)) == 0


async def test_a_sid_that_disagrees_with_sms_sid_is_refused(
    twilio: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    form = {**from_a_new_patient("text.json"), "SmsSid": new_sid()}

    response = await post(twilio, settings, INBOUND, form)

    assert response.status == 400
    assert await messages_from(db, number_of(form)) == 0


async def events_for(db: AsyncSession, sid: str) -> int:
    query = select(func.count()).select_from(DeliveryEvent).where(DeliveryEvent.provider_id.startswith(sid))
    return int((await db.execute(query)).scalar_one())


async def test_a_status_callback_with_a_recut_sid_or_from_another_sender_is_refused(
    twilio: TestClient[Any, Any], settings: Settings, db: AsyncSession
) -> None:
    sid = new_sid()
    recut_sid = recut(callback("status_delivered.json", sid), "MessageSid", "MessageStatus")
    assert (await post(twilio, settings, STATUS, recut_sid)).status == 400
    other_sender = {**callback("status_delivered.json", sid), "From": "whatsapp:+6221555000111"}
    assert (await post(twilio, settings, STATUS, other_sender)).status == 403
    assert await events_for(db, sid) == 0
    assert (await post(twilio, settings, STATUS, callback("status_delivered.json", sid))).status == 200
    assert await events_for(db, sid) == 1
