"""The public queue tracker (/queue): a patient's token, place and expected time by phone number and booking code."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from booking_core.db.queries.clinic import put_setting
from booking_core.services import lifecycle, queue_actions
from devtools import harness
from devtools.builders import Clinic, unique
from gateway.app import create_app
from infra.settings import Settings
from tests.integration.queue_pages import DESK, Client, at, checked_in, midday_clinic, setting_kept, visit

PRIVACY = "queue_privacy"


@pytest.fixture
async def tracker(settings: Settings) -> AsyncIterator[Client]:
    """A client whose rate-limit counters are its own (the limit is per address, and every test is 127.0.0.1)."""
    app = create_app(settings.model_copy(update={"FRONTDESK_REDIS_PREFIX": unique("queue")}))
    async with TestClient(TestServer(app)) as http:
        yield http


@pytest.fixture(autouse=True)
async def privacy_kept(db: AsyncSession) -> AsyncIterator[None]:
    async with setting_kept(db, PRIVACY):
        yield


def new_phone() -> tuple[str, str]:
    """A patient's number as stored (E.164) and as they would type it."""
    digits = f"{secrets.randbelow(10**8):08d}"
    return f"+62812{digits}", f"0812-{digits[:4]} {digits[4:]}"


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def look_up(client: Client, phone: str, code: str, *, lang: str = "en") -> tuple[int, str, str]:
    """Fill in the tracker's form: (status, page shown, the link it went to or "")."""
    token = form_token(await (await client.get(f"/queue?lang={lang}")).text())
    response = await client.post(
        "/queue", data={"csrf_token": token, "phone": phone, "code": code, "lang": lang}, allow_redirects=False
    )
    if response.status != 303:
        return response.status, await response.text(), ""
    link = response.headers["Location"]
    page = await client.get(link)
    return page.status, await page.text(), link


async def two_waiting(db: AsyncSession, clinic: Clinic, name: str = "Siti Rahmawati") -> tuple[str, str, str]:
    """Someone at 09:00 and our patient at 10:00, both checked in; returns (typed phone, code, stored phone)."""
    await checked_in(db, await visit(db, clinic, at(clinic, 9), name="Ani Suryani"), arrived=at(clinic, 8, 50))
    stored, typed = new_phone()
    session = await visit(db, clinic, at(clinic, 10), name=name, phone=stored)
    await checked_in(db, session, arrived=at(clinic, 9, 55))
    return typed, session.booking_code, stored


async def test_a_patient_sees_their_token_place_and_expected_time(tracker: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    phone, code, _stored = await two_waiting(db, clinic)

    status, html, link = await look_up(tracker, phone, code.lower())

    assert status == 200 and URL(link).path == "/queue" and "t" in URL(link).query
    assert '<span class="value" id="token">A-002</span>' in html
    assert "Number 2 in line" in html and "1 patient before you" in html
    assert re.search(r'id="eta">about \d\d:\d\d \(in about \d+ min\)<', html)
    assert '<dd id="doctor">dr. Andi Wijaya</dd>' in html
    assert '<dd id="patient">S*** R********</dd>' in html  # the clinic's default: names masked
    assert '<meta http-equiv="refresh" content="30">' in html
    assert "Ani Suryani" not in html and code not in html


async def test_an_unknown_number_and_a_wrong_code_get_the_same_answer(tracker: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    phone, code, _stored = await two_waiting(db, clinic)
    _other, stranger = new_phone()
    wrong_code = ("Z" if code[0] != "Z" else "Y") + code[1:]

    answers = [await look_up(tracker, stranger, code), await look_up(tracker, phone, wrong_code)]

    def without_inputs(html: str) -> str:  # what was typed is kept in the form; the CSRF token differs
        return re.sub(r' value="[^"]*"', "", html)

    assert [status for status, _html, _link in answers] == [200, 200]
    assert without_inputs(answers[0][1]) == without_inputs(answers[1][1])
    assert "We could not find a visit with this phone number and booking code." in answers[0][1]


async def test_the_clinic_chooses_what_the_tracker_shows(tracker: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    phone, code, _stored = await two_waiting(db, clinic)
    await put_setting(db, PRIVACY, {"show_name": "initial", "show_doctor": False, "show_eta": False})
    await db.commit()

    _status, initial, _link = await look_up(tracker, phone, code)
    await put_setting(db, PRIVACY, {"show_name": "hidden", "show_doctor": True, "show_eta": True})
    await db.commit()
    _status, hidden, _link = await look_up(tracker, phone, code)
    await put_setting(db, PRIVACY, {"show_name": "everything", "show_doctor": "yes", "show_eta": 1})  # damaged: less
    await db.commit()
    _status, damaged, _link = await look_up(tracker, phone, code)

    assert '<dd id="patient">S.</dd>' in initial and 'id="doctor"' not in initial and 'id="eta"' not in initial
    assert "Number 2 in line" in initial
    assert 'id="patient"' not in hidden and '<dd id="doctor">dr. Andi Wijaya</dd>' in hidden
    assert '<dd id="patient">S.</dd>' in damaged and 'id="doctor"' not in damaged and 'id="eta"' not in damaged


async def test_the_tracker_speaks_indonesian(tracker: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    phone, code, _stored = await two_waiting(db, clinic)

    form = await (await tracker.get("/queue", headers={"Accept-Language": "id-ID,id;q=0.9,en;q=0.5"})).text()
    _status, html, _link = await look_up(tracker, phone, code, lang="id")

    assert '<html lang="id">' in form and "Kode booking" in form and "Lihat posisi saya" in form
    assert "Posisi Anda dalam antrean" in html and "Urutan ke-2" in html and "1 pasien sebelum Anda" in html
    assert "sekitar pukul" in html and "English" in html


async def test_each_state_of_a_visit_is_explained(tracker: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    stored, typed = new_phone()
    later = await visit(db, clinic, at(clinic, 15), name="Budi Hartono", phone=stored)
    _status, not_yet, link = await look_up(tracker, typed, later.booking_code)
    await checked_in(db, later)
    called = await queue_actions.call_next(db, clinic.branch.id, clinic.doctors["andi"].id, actor=DESK)
    await db.commit()
    with_doctor = await (await tracker.get(link)).text()
    await lifecycle.complete(db, called.ticket.session_id, actor=DESK)
    await db.commit()
    finished = await (await tracker.get(link)).text()

    assert "is not in the queue yet. Check in at the front desk when you arrive" in not_yet
    assert "It is your turn: you are with the doctor." in with_doctor and 'id="token">A-001<' in with_doctor
    assert "This visit is finished." in finished and "http-equiv" not in finished


async def test_a_tampered_link_shows_the_form_again(tracker: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    phone, code, _stored = await two_waiting(db, clinic)
    _status, _html, link = await look_up(tracker, phone, code)
    token = URL(link).query["t"]

    tampered = await tracker.get("/queue", params={"t": token[:-2] + ("AA" if token[-2:] != "AA" else "BB")})
    garbage = await tracker.get("/queue", params={"t": "x" * 50})

    for response in (tampered, garbage):
        assert response.status == 404
        html = await response.text()
        assert "This link has expired." in html and 'name="phone"' in html and "A-002" not in html


async def test_a_name_with_markup_shows_as_text(tracker: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    phone, code, _stored = await two_waiting(db, clinic, name="<script>alert(1)</script>")
    await put_setting(db, PRIVACY, {"show_name": "first_name", "show_doctor": True, "show_eta": True})
    await db.commit()

    _status, html, _link = await look_up(tracker, phone, code)

    assert "<script>alert(1)</script>" not in html and '<dd id="patient">&lt;script&gt;alert(1)&lt;/script&gt;' in html


async def test_a_post_without_the_forms_token_is_refused(tracker: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    phone, code, _stored = await two_waiting(db, clinic)

    response = await tracker.post("/queue", data={"phone": phone, "code": code, "csrf_token": "forged"})

    assert response.status == 403
    assert "This form has expired" in await response.text()


async def test_guessing_is_stopped_after_ten_lookups_from_one_address(tracker: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    phone, code, _stored = await two_waiting(db, clinic)
    _other, stranger = new_phone()
    for _ in range(10):
        status, _html, _link = await look_up(tracker, stranger, code)
        assert status == 200

    blocked_status, blocked, _link = await look_up(tracker, phone, code)  # even the right answer now waits

    assert blocked_status == 429 and "Too many attempts." in blocked and "A-002" not in blocked
    response = await tracker.post("/queue", data={"phone": phone, "code": code})
    assert response.status == 429 and int(response.headers["Retry-After"]) > 0


async def test_a_patient_an_hour_early_is_expected_at_their_booked_time_not_any_moment(
    tracker: Client, db: AsyncSession
) -> None:
    clinic = await midday_clinic(db)  # it is 12:xx there
    stored, typed = new_phone()
    session = await visit(db, clinic, at(clinic, 13, 45), name="Siti Rahmawati", phone=stored)
    await checked_in(db, session)  # nobody else waits for dr. Andi

    status, html, _link = await look_up(tracker, typed, session.booking_code)

    assert status == 200 and "You are next!" in html
    found = re.search(r'id="eta">about 13:45 \(in about (\d+) min\)<', html)
    assert found is not None, html
    assert 45 <= int(found.group(1)) <= 105
    assert "any moment" not in html


async def test_with_redis_away_a_lookup_is_refused_with_a_clear_page_not_a_500(
    settings: Settings, db: AsyncSession
) -> None:
    """Without Redis a lookup could not be counted against the guessing limit: it waits, it does not break."""
    clinic = await midday_clinic(db)
    phone, code, _stored = await two_waiting(db, clinic)
    nowhere = settings.model_copy(update={"REDIS_URL": f"redis://127.0.0.1:{harness.free_port()}/0"})
    async with TestClient(TestServer(create_app(nowhere))) as http:
        status, page, _link = await look_up(http, phone, code)
        response = await http.post("/queue", data={"phone": phone, "code": code})
    assert status == 503 and "cannot look up places in the queue right now" in page and "A-002" not in page
    assert response.status == 503 and response.headers["Retry-After"] == "60"
