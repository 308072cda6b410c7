"""No input makes a 500: text a database cannot keep and numbers past a column's range, on every way in.

Patients' messages with a NUL or half an emoji escape are kept, cleaned; staff API requests with them are refused
with 422, as are ids past 2**31 - 1 and JSON booleans where numbers belong. What the API sends matches what its
OpenAPI document says (times of day as the branch's wall clock, not RFC 3339 times with an offset).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema_rs
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import DeliveryEvent
from devtools.builders import Clinic
from infra.settings import Settings
from tests.integration.staff_pages import sign_in_page
from tests.integration.test_booking_form import fresh_rate_limit, leads_named, open_form, valid
from tests.integration.test_whatsapp_webhook import (
    INBOUND,
    STATUS,
    assert_empty_twiml,
    callback,
    from_a_new_patient,
    identity_of,
    new_sid,
    number_of,
    post,
    stored,
    twilio_posts,
)

__all__ = ["fresh_rate_limit", "twilio_posts"]  # fixtures used by the tests below

Client = TestClient[Any, Any]
SignIn = Callable[..., Awaitable[dict[str, str]]]
TOO_BIG = 2**40


# --- WhatsApp: a NUL in any field is dropped, the message is stored


@pytest.mark.parametrize("field", ["Body", "ProfileName", "WaId"])
async def test_a_nul_in_a_whatsapp_field_is_dropped_and_the_message_kept(
    field: str, twilio_posts: Client, settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("text.json")
    form[field] = form[field][:3] + "\x00" + form[field][3:]

    await assert_empty_twiml(await post(twilio_posts, settings, INBOUND, form))

    message = await stored(db, form["MessageSid"])
    assert message is not None
    assert message.text == "Hi, can I book a dental check-up tomorrow morning?"
    assert message.payload["raw"][field] == form[field].replace("\x00", "")
    assert (await identity_of(db, number_of(form))).display_name == "Budi Santoso"


async def test_a_nul_in_a_button_payload_is_dropped_and_the_choice_kept(
    twilio_posts: Client, settings: Settings, db: AsyncSession
) -> None:
    form = from_a_new_patient("button.json")
    form["ButtonPayload"] = "slot:2026-11-24T\x0009:00"

    await assert_empty_twiml(await post(twilio_posts, settings, INBOUND, form))

    message = await stored(db, form["MessageSid"])
    assert message is not None and message.payload["button_data"] == "slot:2026-11-24T09:00"


async def test_a_nul_in_a_status_callbacks_error_message_is_dropped_and_the_event_kept(
    twilio_posts: Client, settings: Settings, db: AsyncSession
) -> None:
    sid = new_sid()
    form = callback("status_undelivered.json", sid)
    form["ErrorMessage"] = "Invalid\x00 message recipient"

    await assert_empty_twiml(await post(twilio_posts, settings, STATUS, form))

    event = (await db.execute(select(DeliveryEvent).where(DeliveryEvent.provider_id == sid))).scalar_one()
    assert event.raw["ErrorMessage"] == "Invalid message recipient"


# --- the public booking form: kept cleaned, and a body that is not a form is a 400 page


async def test_a_nul_in_the_booking_form_is_dropped_and_the_lead_kept(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    page = await open_form(client)
    data = valid(clinic, page, note="Sakit gigi\x00 kiri")

    response = await client.post("/book", data=data)

    assert response.status == 200, await response.text()
    (lead,) = await leads_named(db, data["name"])
    assert "Sakit gigi kiri" in lead.requested_text


@pytest.mark.parametrize("path", ["/book", "/queue", "/c/not-a-real-link"])
async def test_a_public_form_that_is_not_utf8_is_a_400_page(path: str, client: Client) -> None:
    # \xed\xa0\xbd is half an emoji written as UTF-8 bytes: not UTF-8 at all, like \xff
    for body in (b"name=\xff\xfe&note=x", b"note=Halo \xed\xa0\xbd"):
        response = await client.post(path, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status == 400, (path, body)
        assert "text/html" in response.headers["Content-Type"]


async def test_a_nul_in_the_inbox_search_finds_nothing_rather_than_failing(client: Client, db: AsyncSession) -> None:
    await sign_in_page(client, db, "owner")
    for query in ("?q=%00", "?q=Budi%00&status=new"):
        response = await client.get(f"/inbox{query}")
        assert response.status == 200, query


# --- the staff API: refused with 422, never stored, never a 500


async def test_ids_past_32_bits_are_422_in_the_path_the_query_and_the_body(client: Client, sign_in: SignIn) -> None:
    owner = await sign_in("owner")
    calls = [
        ("GET", f"/api/v1/leads/{TOO_BIG}", None, "invalid_path"),
        ("POST", f"/api/v1/sessions/{TOO_BIG}/start", None, "invalid_path"),
        ("GET", f"/api/v1/leads?branch_id={TOO_BIG}", None, "invalid_query"),
        (
            "GET",
            f"/api/v1/availability?branch_id={TOO_BIG}&examination_id=1&from=2026-12-01T00:00:00Z"
            "&to=2026-12-02T00:00:00Z",
            None,
            "invalid_query",
        ),
        ("POST", "/api/v1/invoices/preview", {"branch_id": TOO_BIG}, "invalid_body"),
        (
            "POST",
            "/api/v1/sessions",
            {"branch_id": 1, "patient_id": 1, "examination_ids": [TOO_BIG], "start": "2026-12-01T09:00:00+07:00"},
            "invalid_body",
        ),
    ]
    for method, path, body, code in calls:
        response = await client.request(method, path, json=body, headers=owner)
        assert response.status == 422, (path, await response.text())
        assert (await response.json())["error"]["code"] == code


async def test_an_outbox_id_is_a_bigint_and_past_64_bits_is_422(client: Client, sign_in: SignIn) -> None:
    owner = await sign_in("owner")
    inside = await client.post(f"/api/v1/failures/{TOO_BIG}/retry", headers=owner)
    assert inside.status == 404  # a bigint column: a valid id, just not one of ours
    past = await client.post(f"/api/v1/failures/{2**64}/retry", headers=owner)
    assert past.status == 422


async def test_a_boolean_is_not_a_number_of_loyalty_points(client: Client, sign_in: SignIn) -> None:
    owner = await sign_in("owner")
    for points in (False, True, "5", 1.0):
        response = await client.post(
            "/api/v1/invoices/preview", json={"branch_id": 1, "loyalty_points": points}, headers=owner
        )
        assert response.status == 422, points
        [detail] = (await response.json())["error"]["details"]
        assert detail["field"] == "loyalty_points"


async def test_text_a_database_cannot_keep_is_422_in_a_body_and_a_query(client: Client, sign_in: SignIn) -> None:
    owner = await sign_in("owner")
    for text in ("Sakit\x00 gigi", "Halo \ud83c"):
        body = await client.post("/api/v1/leads/1/reject", json={"reason": text}, headers=owner)
        assert body.status == 422
        assert (await body.json())["error"]["details"][0]["field"] == "reason"
    backdated = await client.post(
        "/api/v1/sessions/1/start", json={"backdated": True, "reason": "lupa\x00"}, headers=owner
    )  # an optional body, read by its handler: the same rule
    assert backdated.status == 422
    query = await client.get("/api/v1/leads?q=%00", headers=owner)
    assert query.status == 422
    assert (await query.json())["error"]["code"] == "invalid_query"


async def test_a_body_nested_past_any_reason_is_a_400(client: Client, sign_in: SignIn) -> None:
    owner = await sign_in("owner")
    for path in ("/api/v1/invoices/preview", f"/api/v1/sessions/{1}"):
        method = "POST" if path.endswith("preview") else "DELETE"
        response = await client.request(method, path, data=b'{"a": ' + b"[" * 50_000, headers=owner)
        assert response.status == 400, path
        assert (await response.json())["error"]["code"] == "invalid_json"


# --- responses match the document


async def test_an_examinations_weekly_window_validates_against_its_response_schema(
    client: Client, sign_in: SignIn, clinic: Clinic
) -> None:
    owner = await sign_in("owner")
    exam = clinic.examinations["DENTAL"]
    windows = [{"weekday": 0, "starts": "08:00", "ends": "12:00:00"}]
    changed = await client.patch(f"/api/v1/examinations/{exam.id}", json={"windows": windows}, headers=owner)
    assert changed.status == 200, await changed.text()
    document = await (await client.get("/api/v1/openapi.json")).json()

    sent = await (await client.get(f"/api/v1/examinations/{exam.id}", headers=owner)).json()

    assert sent["windows"] == [{"weekday": 0, "starts": "08:00:00", "ends": "12:00:00"}]
    schema = {"$ref": "#/components/schemas/ExaminationOut", "components": document["components"]}
    jsonschema_rs.validator_for(schema, validate_formats=True).validate(sent)
    starts = document["components"]["schemas"]["WindowOut"]["properties"]["starts"]
    assert "format" not in starts and re.fullmatch(starts["pattern"], "08:00:00")


async def test_a_time_with_an_offset_is_not_a_wall_time(client: Client, sign_in: SignIn, clinic: Clinic) -> None:
    owner = await sign_in("owner")
    exam = clinic.examinations["DENTAL"]
    windows = [{"weekday": 0, "starts": "08:00:00Z", "ends": "12:00:00+07:00"}]
    response = await client.patch(f"/api/v1/examinations/{exam.id}", json={"windows": windows}, headers=owner)
    assert response.status == 422
