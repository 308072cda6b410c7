"""`GET,POST /book`: the public booking form as a patient's browser (and a bot's) uses it.

Every test opens the form first (that sets the CSRF cookie and gives the signed token), then posts. All requests
come from 127.0.0.1, so the per-IP limit is reset before each test.
"""

from __future__ import annotations

import html
import re
import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from redis import Redis as SyncRedis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.queries import clinic as clinic_queries
from booking_core.db.tables import Lead, Message
from booking_core.services.settings import DEFAULT_SETTINGS
from devtools.builders import Clinic, build_clinic
from gateway.booking_form import CSRF_COOKIE
from infra.settings import Settings

Client = TestClient[Any, Any]
JAKARTA = ZoneInfo("Asia/Jakarta")


@pytest.fixture(autouse=True)
def fresh_rate_limit(sync_redis: SyncRedis, settings: Settings) -> Iterator[None]:
    key = f"{settings.FRONTDESK_REDIS_PREFIX}:rate:book:ip:127.0.0.1"
    sync_redis.delete(key)
    yield
    sync_redis.delete(key)


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name}"
    return html.unescape(match.group(1))


async def open_form(client: Client, query: str = "", **headers: str) -> str:
    response = await client.get(f"/book{query}", headers=headers)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    return await response.text()


def new_phone() -> str:
    return f"0812{secrets.randbelow(10**8):08d}"


def a_name() -> str:
    return f"Budi Santoso {secrets.token_hex(3)}"


def in_two_days() -> str:
    return (datetime.now(JAKARTA).date() + timedelta(days=2)).isoformat()


def valid(clinic: Clinic, page: str, **changes: str) -> dict[str, str]:
    data = {
        "csrf_token": hidden(page, "csrf_token"),
        "submission_id": hidden(page, "submission_id"),
        "lang": "en",
        "website": "",
        "name": a_name(),
        "phone": new_phone(),
        "email": "budi@example.com",
        "branch": str(clinic.branch.id),
        "examination": str(clinic.examinations["DENTAL"].id),
        "preferred_date": in_two_days(),
        "preferred_time": "10:30",
        "note": "I have a toothache on the left side.",
    }
    data.update(changes)
    return data


async def leads_named(db: AsyncSession, name: str) -> list[Lead]:
    result = await db.execute(
        select(Lead).where(Lead.contact_name == name).order_by(Lead.id).execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def stored_submissions(db: AsyncSession, submission_id: str) -> int:
    query = select(func.count()).select_from(Message)
    count = await db.execute(query.where(Message.channel == "webform", Message.external_id == submission_id))
    return int(count.scalar_one())


# --- a valid request


async def test_a_valid_request_becomes_a_webform_lead_with_its_details(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    page = await open_form(client)
    data = valid(clinic, page, phone="0812-" + new_phone()[4:8] + "-" + new_phone()[8:])
    response = await client.post("/book", data=data)
    assert response.status == 200
    thanks = await response.text()
    assert "Thank you, Budi." in thanks
    assert data["phone"] not in thanks and "budi@example.com" not in thanks and "toothache" not in thanks

    (lead,) = await leads_named(db, data["name"])
    assert lead.channel == "webform" and lead.status == "new"
    assert lead.branch_id == clinic.branch.id
    assert lead.examination_id == clinic.examinations["DENTAL"].id
    expected_start = datetime.fromisoformat(f"{data['preferred_date']}T10:30").replace(tzinfo=JAKARTA)
    assert lead.requested_start == expected_start
    assert lead.contact_phone == "+62" + data["phone"].replace("-", "")[1:]
    assert "I have a toothache on the left side." in lead.requested_text
    assert "budi@example.com" in lead.requested_text
    message = (await db.execute(select(Message).where(Message.conversation_id == lead.conversation_id))).scalar_one()
    assert (message.channel, message.external_id) == ("webform", data["submission_id"])
    assert message.processed_at is not None  # nothing answers a form in chat: the dialog sweep leaves it alone


async def test_a_double_submit_of_one_form_makes_one_lead(client: Client, db: AsyncSession, clinic: Clinic) -> None:
    page = await open_form(client)
    data = valid(clinic, page)
    for _ in range(2):
        response = await client.post("/book", data=data)
        assert response.status == 200
    assert len(await leads_named(db, data["name"])) == 1


async def test_two_forms_from_the_same_person_are_two_leads_for_one_patient(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    name, phone = a_name(), new_phone()
    for exam in ("GP", "DENTAL"):
        page = await open_form(client)
        data = valid(clinic, page, name=name, phone=phone, examination=str(clinic.examinations[exam].id))
        assert (await client.post("/book", data=data)).status == 200
    leads = await leads_named(db, name)
    assert [lead.examination_id for lead in leads] == [clinic.examinations[e].id for e in ("GP", "DENTAL")]
    assert leads[0].patient_id is not None and leads[0].patient_id == leads[1].patient_id


async def test_html_in_the_name_is_stored_as_typed_and_shown_escaped(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    name = f"<script>alert('x')</script> Wati {secrets.token_hex(3)}"
    page = await open_form(client)
    response = await client.post("/book", data=valid(clinic, page, name=name))
    thanks = await response.text()
    assert "<script>alert(" not in thanks
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in thanks
    (lead,) = await leads_named(db, name)
    assert lead.contact_name == name

    page = await open_form(client)
    again = await client.post("/book", data=valid(clinic, page, name=name, phone="12"))
    form = await again.text()
    assert again.status == 422
    assert "<script>alert(" not in form
    assert 'value="&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Wati' in form


# --- CSRF, honeypot, rate limit


async def test_a_post_without_the_csrf_token_is_refused_and_writes_nothing(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    page = await open_form(client)
    data = valid(clinic, page)
    del data["csrf_token"]
    response = await client.post("/book", data=data)
    assert response.status == 403
    assert "form has expired" in await response.text()
    assert await leads_named(db, data["name"]) == []


async def test_a_csrf_token_from_another_browser_is_refused(client: Client, db: AsyncSession, clinic: Clinic) -> None:
    their_page = await open_form(client)
    their_token = hidden(their_page, "csrf_token")
    client.session.cookie_jar.clear()
    page = await open_form(client)  # this browser gets its own cookie
    data = valid(clinic, page, csrf_token=their_token)
    assert (await client.post("/book", data=data)).status == 403
    forged = valid(clinic, page, csrf_token="forged." + secrets.token_urlsafe(20))
    assert (await client.post("/book", data=forged)).status == 403
    assert await leads_named(db, data["name"]) == []
    assert await leads_named(db, forged["name"]) == []


async def test_a_post_without_the_cookie_is_refused(client: Client, db: AsyncSession, clinic: Clinic) -> None:
    page = await open_form(client)
    client.session.cookie_jar.clear()
    data = valid(clinic, page)
    assert (await client.post("/book", data=data)).status == 403
    assert await leads_named(db, data["name"]) == []


async def test_the_csrf_cookie_is_httponly_and_samesite_lax(client: Client) -> None:
    response = await client.get("/book")
    cookie = response.cookies[CSRF_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/book"


async def test_a_bot_filling_the_honeypot_is_thanked_and_nothing_is_stored(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    page = await open_form(client)
    data = valid(clinic, page, website="https://cheap-pills.example")
    response = await client.post("/book", data=data)
    assert response.status == 200
    assert "Thank you, Budi." in await response.text()
    assert await leads_named(db, data["name"]) == []
    assert await stored_submissions(db, data["submission_id"]) == 0


async def test_the_sixth_post_within_ten_minutes_gets_the_too_many_requests_page(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    page = await open_form(client)
    for _ in range(5):
        response = await client.post("/book", data=valid(clinic, page, phone="not a phone"))
        assert response.status == 422
    data = valid(clinic, page)
    blocked = await client.post("/book", data=data)
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "too many times" in await blocked.text()
    assert await leads_named(db, data["name"]) == []


# --- field errors


def _other_day(days: int) -> str:
    return (datetime.now(JAKARTA).date() + timedelta(days=days)).isoformat()


FIELD_ERRORS = [
    ("name", {"name": ""}, "This field is required."),
    ("name", {"name": "N" * 121}, "This is too long."),
    ("phone", {"phone": ""}, "This field is required."),
    ("phone", {"phone": "12345"}, "Enter a valid phone number"),
    ("email", {"email": "budi@"}, "Enter a valid email address"),
    ("branch", {"branch": "0"}, "Choose one of the options."),
    ("branch", {"branch": ""}, "This field is required."),
    ("examination", {"examination": "abc"}, "Choose one of the options."),
    ("examination", {"examination": ""}, "This field is required."),
    ("preferred_date", {"preferred_date": _other_day(-1)}, "Choose today or a later date."),
    ("preferred_date", {"preferred_date": "2027-02-30"}, "Enter a valid date."),
    ("preferred_date", {"preferred_date": _other_day(400)}, "Choose a date within the next year."),
    ("preferred_date", {"preferred_date": ""}, "Choose a date for the time you picked."),
    ("preferred_time", {"preferred_time": "25:00"}, "Enter a valid time."),
    ("preferred_time", {"preferred_date": _other_day(0), "preferred_time": "00:00"}, "That time has passed today"),
    ("note", {"note": "x" * 1001}, "This is too long."),
]


@pytest.mark.parametrize(("field", "changes", "message"), FIELD_ERRORS, ids=[f"{f}-{m[:24]}" for f, _, m in
                                                                              FIELD_ERRORS])  # fmt: skip
async def test_each_field_error_is_shown_next_to_its_field_and_the_values_are_kept(
    client: Client, db: AsyncSession, clinic: Clinic, field: str, changes: dict[str, str], message: str
) -> None:
    page = await open_form(client)
    data = valid(clinic, page, **changes)
    response = await client.post("/book", data=data)
    assert response.status == 422
    form = await response.text()
    error = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', form, re.S)
    assert error and message in error.group(1)
    control = re.search(rf'<(?:input|select|textarea)[^>]* id="{field}"[^>]*>', form)
    assert control
    assert 'aria-invalid="true"' in control.group(0)
    assert f"{field}-error" in (re.search(r'aria-describedby="([^"]*)"', control.group(0)) or [""])[0]
    assert f'href="#{field}"' in form  # the summary at the top links to the field
    if field != "name":
        assert f'value="{data["name"]}"' in form
    assert hidden(form, "submission_id") == data["submission_id"]
    assert await stored_submissions(db, data["submission_id"]) == 0


async def test_an_examination_not_offered_at_the_chosen_branch_is_refused(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    elsewhere = await build_clinic(db)
    page = await open_form(client)
    data = valid(clinic, page, examination=str(elsewhere.examinations["GP"].id))
    response = await client.post("/book", data=data)
    assert response.status == 422
    assert "This examination is not offered at the chosen branch." in await response.text()
    assert await leads_named(db, data["name"]) == []


# --- the clinic's configuration, languages


async def test_the_clinic_decides_which_fields_are_asked_and_required(
    client: Client, db: AsyncSession, clinic: Clinic
) -> None:
    fields = {
        "name": {"required": True},
        "phone": {"required": False},
        "email": {"required": True},
        "branch": {"required": True},
        "examination": {"required": False},
    }
    await clinic_queries.put_setting(db, "booking_form", {"fields": fields})
    await db.commit()
    try:
        page = await open_form(client)
        assert 'id="email"' in page and 'id="note"' not in page and 'id="preferred_date"' not in page
        data = valid(clinic, page, email="", phone="", examination="", note="ignored: not on this form")
        missing_email = await client.post("/book", data=data)
        assert missing_email.status == 422
        assert re.search(r'id="email-error">.*This field is required', await missing_email.text())
        data["email"] = "wati@example.com"
        assert (await client.post("/book", data=data)).status == 200
        (lead,) = await leads_named(db, data["name"])
        assert lead.contact_phone is None and lead.examination_id is None and lead.requested_start is None
        assert "ignored" not in lead.requested_text
    finally:
        await clinic_queries.put_setting(db, "booking_form", DEFAULT_SETTINGS["booking_form"])
        await db.commit()


async def test_the_form_speaks_indonesian_when_the_browser_prefers_it(client: Client) -> None:
    page = await open_form(client, **{"Accept-Language": "id-ID,id;q=0.9,en;q=0.5"})
    assert '<html lang="id">' in page and "Buat janji temu" in page
    english = await open_form(client, "?lang=en", **{"Accept-Language": "id-ID"})
    assert '<html lang="en">' in english and "Book an appointment" in english
    default = await open_form(client, **{"Accept-Language": "fr-FR"})
    assert '<html lang="en">' in default  # DEFAULT_LANGUAGE of the test settings


async def test_errors_come_back_in_the_language_of_the_form(client: Client, clinic: Clinic) -> None:
    page = await open_form(client, "?lang=id")
    response = await client.post("/book", data=valid(clinic, page, lang="id", phone="123"))
    assert response.status == 422
    assert "Masukkan nomor telepon yang valid" in await response.text()


async def test_the_form_offers_active_branches_and_their_examinations(client: Client, clinic: Clinic) -> None:
    page = await open_form(client)
    assert f'<option value="{clinic.branch.id}"' in page
    dental = clinic.examinations["DENTAL"]
    option = re.search(rf'<option value="{dental.id}" data-branches="([^"]*)"', page)
    assert option and str(clinic.branch.id) in option.group(1).split()
    assert hidden(page, "submission_id") != hidden(await open_form(client), "submission_id")
    assert uuid.UUID(hidden(page, "submission_id"))
