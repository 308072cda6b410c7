"""The calendar page: a branch's day by doctor or room, booking a free slot from it, and blackouts."""

from __future__ import annotations

import html as markup
import re
import secrets
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, BlackoutBlock, Examination, ExaminationWindow, Patient, Session
from devtools.builders import Clinic, add_patient, build_clinic, insert_session, next_weekday
from tests.integration.staff_pages import sign_in_page

Client = TestClient[object, object]
JAKARTA = ZoneInfo("Asia/Jakarta")


def _day_of(instant: datetime) -> str:
    return instant.astimezone(JAKARTA).date().isoformat()


def _calendar(clinic: Clinic, instant: datetime, view: str = "doctors", **extra: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in extra.items())
    return f"/inbox/calendar?branch={clinic.branch.id}&day={_day_of(instant)}&view={view}" + (
        f"&{query}" if query else ""
    )


def _free_slot_links(html: str) -> list[str]:
    found = re.findall(r'class="slot free[^"]*"[^>]*href="([^"]+)"', html)
    return [href.replace("&amp;", "&") for href in found]


def _panel(html: str) -> str:
    """The booking form's panel of a calendar page (the grid's hover texts name examinations too)."""
    start = html.index('id="book"')
    return html[start : html.index("</section>", start)]


def _cell_title(html: str, column: str, local_time: str) -> str:
    """The hover text of a cell that cannot be booked, in the column ``doctor-<id>`` or ``room-<id>``."""
    start = html.index(f'data-column="{column}"')
    end = html.find('class="cal-col"', start)
    found = re.search(rf'class="slot off"[^>]*data-time="{local_time}" title="([^"]*)"', html[start:end])
    assert found is not None, f"no blocked cell at {local_time} in {column}"
    return markup.unescape(found.group(1))


def _slot_link(html: str, doctor_id: int, local_time: str) -> str | None:
    for href in _free_slot_links(html):
        query = parse_qs(urlsplit(href).query)
        if query.get("doctor") == [str(doctor_id)] and f"T{local_time}:00+07:00" in query["slot"][0]:
            return href
    return None


async def _fresh_get(db: AsyncSession, table: type[Any], row_id: int) -> Any:
    async with async_sessionmaker(db.bind)() as fresh:
        return await fresh.get(table, row_id)


async def _audit(db: AsyncSession, action: str, entity_id: int | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == action)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    return list((await db.execute(query)).scalars())


async def _sessions_of(db: AsyncSession, clinic: Clinic) -> list[Session]:
    """The branch's sessions as they are now (read in a fresh session: ``db`` keeps what it loaded before)."""
    maker = async_sessionmaker(db.bind, expire_on_commit=False)
    async with maker() as fresh:
        found = await fresh.execute(select(Session).where(Session.branch_id == clinic.branch.id).order_by(Session.id))
        return list(found.scalars())


async def test_the_day_shows_each_doctor_with_visits_free_times_and_a_hatched_blackout(
    client: Client, db: AsyncSession
) -> None:
    clinic = await build_clinic(db)
    monday_ten = next_weekday(0, hour=10)
    visit = await insert_session(db, clinic, starts_at=monday_ten)
    db.add(
        BlackoutBlock(branch_id=clinic.branch.id, scope="branch", reason="Staff meeting",
                      starts_at=monday_ten + timedelta(hours=2), ends_at=monday_ten + timedelta(hours=3))
    )  # fmt: skip
    await db.commit()
    await sign_in_page(client, db, "owner")

    page = await client.get(_calendar(clinic, monday_ten))
    html = await page.text()
    assert page.status == 200
    assert "dr. Andi Wijaya" in html and "drg. Sari Lestari" in html
    assert f'href="/inbox/sessions/{visit.id}"' in html and "Siti Rahmawati" in html
    assert 'class="block blackout"' in html and "Staff meeting" in html
    assert 'data-live="sessions,blackout_blocks"' in html
    andi = clinic.doctors["andi"].id
    assert _slot_link(html, andi, "09:00") is not None  # he attends from 09:00
    assert _slot_link(html, andi, "10:00") is None  # Siti's visit
    assert _slot_link(html, andi, "12:15") is None  # the staff meeting
    assert _slot_link(html, andi, "08:00") is None  # the branch opens at 08:00, he comes at 09:00
    assert _slot_link(html, clinic.doctors["sari"].id, "10:00") is not None

    rooms = await (await client.get(_calendar(clinic, monday_ten, "rooms"))).text()
    assert "Dental suite" in rooms and "Consultation 2" in rooms
    assert f'href="/inbox/sessions/{visit.id}"' in rooms


async def test_booking_a_free_slot_for_a_new_patient_from_the_calendar(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    monday = next_weekday(0, hour=9)
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    html = await (await client.get(_calendar(clinic, monday))).text()
    link = _slot_link(html, clinic.doctors["andi"].id, "11:00")
    assert link is not None

    form = _panel(await (await client.get(link)).text())
    assert 'id="book-form"' in form and "Book dr. Andi Wijaya" in form
    assert "General consultation" in form and "Acne facial treatment" in form
    assert "Dental check-up" not in form  # dr. Andi does not do it
    start = parse_qs(urlsplit(link).query)["slot"][0]
    phone = f"0813{secrets.randbelow(10**8):08d}"
    response = await client.post(
        "/inbox/calendar/book",
        data={
            "csrf_token": token, "branch": str(clinic.branch.id), "day": _day_of(monday), "view": "doctors",
            "start": start, "doctor_id": str(clinic.doctors["andi"].id), "room_id": "",
            "name": "Wulan Sari", "phone": phone, "examination_id": str(clinic.examinations["GP"].id),
        },
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303, await response.text()
    sessions = await _sessions_of(db, clinic)
    assert len(sessions) == 1
    booked = sessions[0]
    assert booked.doctor_id == clinic.doctors["andi"].id
    assert booked.starts_at.astimezone(JAKARTA).strftime("%H:%M") == "11:00"
    patient = await db.get(Patient, booked.patient_id)
    assert patient is not None and patient.name == "Wulan Sari" and patient.phone_e164 == "+62" + phone[1:]
    assert await _audit(db, "patient.created", patient.id)
    assert await _audit(db, "session.booked", booked.id)

    after = await client.get(response.headers["Location"])
    text = await after.text()
    assert "Booked Wulan Sari on" in text and booked.booking_code in text
    assert f'href="/inbox/sessions/{booked.id}"' in text


async def test_finding_an_existing_patient_and_booking_them(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    siti = clinic.patients["siti"]
    tuesday = next_weekday(1, hour=9)
    token = await sign_in_page(client, db, "admin")
    html = await (await client.get(_calendar(clinic, tuesday))).text()
    link = _slot_link(html, clinic.doctors["sari"].id, "14:00")
    assert link is not None
    found = _panel(await (await client.get(link.replace("#book", f"&q=0{siti.phone_e164[3:9]}"))).text())
    assert f'name="patient_id" value="{siti.id}"' in found
    assert "Dental check-up" in found and "General consultation" not in found  # drg. Sari's examinations
    start = parse_qs(urlsplit(link).query)["slot"][0]
    response = await client.post(
        "/inbox/calendar/book",
        data={"csrf_token": token, "branch": str(clinic.branch.id), "day": _day_of(tuesday), "view": "doctors",
              "start": start, "doctor_id": str(clinic.doctors["sari"].id), "patient_id": str(siti.id),
              "name": "", "phone": "", "examination_id": str(clinic.examinations["DENTAL"].id)},
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303
    (booked,) = await _sessions_of(db, clinic)
    assert booked.patient_id == siti.id and booked.room_id == clinic.rooms["dental"].id


async def test_a_taken_slot_is_refused_with_the_next_free_times_to_pick(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    monday_ten = next_weekday(0, hour=10)
    await insert_session(db, clinic, starts_at=monday_ten)  # someone was quicker
    other = await add_patient(db, "Rudi Hartono")
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    form = {
        "csrf_token": token, "branch": str(clinic.branch.id), "day": _day_of(monday_ten), "view": "doctors",
        "start": monday_ten.astimezone(JAKARTA).isoformat(), "doctor_id": str(clinic.doctors["andi"].id),
        "patient_id": str(other.id), "examination_id": str(clinic.examinations["GP"].id),
    }  # fmt: skip
    refused = await client.post("/inbox/calendar/book", data=form, allow_redirects=False)
    assert refused.status == 303  # back to the calendar's booking form for that time (post/redirect/get)
    assert refused.headers["Location"].startswith(_calendar(clinic, monday_ten, slot=""))
    page = await client.get(refused.headers["Location"])
    html = await page.text()
    assert page.status == 200 and page.url.path == "/inbox/calendar"
    assert 'role="alert"' in html and "That time has just been taken" in html
    alternatives = re.findall(r'name="alternative" value="([^"]+)"', html)
    assert alternatives, "the next free times are offered"
    assert f'name="patient_id" value="{other.id}" checked' in html  # the chosen patient is kept
    first = alternatives[0].replace("&#43;", "+")
    taken = await client.post("/inbox/calendar/book", data={**form, "alternative": first}, allow_redirects=False)
    assert taken.status == 303
    sessions = await _sessions_of(db, clinic)
    assert len(sessions) == 2
    assert sessions[-1].patient_id == other.id
    assert sessions[-1].starts_at == datetime.fromisoformat(first.split("|")[0])


async def test_a_booking_with_a_bad_phone_keeps_what_was_typed(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    monday = next_weekday(0, hour=13)
    token = await sign_in_page(client, db, "owner")
    refused = await client.post(
        "/inbox/calendar/book",
        data={"csrf_token": token, "branch": str(clinic.branch.id), "day": _day_of(monday), "view": "doctors",
              "start": monday.astimezone(JAKARTA).isoformat(), "doctor_id": str(clinic.doctors["andi"].id),
              "name": "Tono <b>Bold</b>", "phone": "12", "examination_id": str(clinic.examinations["GP"].id)},
    )  # fmt: skip
    html = await refused.text()
    assert refused.status == 200 and refused.url.path == "/inbox/calendar"  # redirected back to the form
    assert "Enter a valid phone number" in html
    assert 'value="Tono &lt;b&gt;Bold&lt;/b&gt;"' in html
    assert await _sessions_of(db, clinic) == []


async def test_adding_and_removing_a_blackout_is_audited(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    wednesday = next_weekday(2, hour=9)
    await insert_session(db, clinic, starts_at=wednesday + timedelta(hours=5))  # 14:00, dr. Andi
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    day = _day_of(wednesday)
    added = await client.post(
        "/inbox/calendar/blackouts",
        data={"csrf_token": token, "branch": str(clinic.branch.id), "day": day, "view": "doctors",
              "scope": "doctor", "doctor_id": str(clinic.doctors["andi"].id), "room_id": "",
              "starts": f"{day}T13:00", "ends": f"{day}T17:00", "reason": "Seminar <script>x</script>"},
    )  # fmt: skip
    html = await added.text()
    assert added.status == 200
    assert "Blackout added" in html and "1 booked visit(s) fall in it" in html
    assert "Seminar &lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    block = (await db.execute(select(BlackoutBlock).where(BlackoutBlock.branch_id == clinic.branch.id))).scalar_one()
    assert block.scope == "doctor" and block.doctor_id == clinic.doctors["andi"].id
    assert block.starts_at.astimezone(JAKARTA).strftime("%H:%M") == "13:00"
    assert (await _audit(db, "blackout.created", block.id))[0].data["covered_sessions"] == 1
    assert _slot_link(html, clinic.doctors["andi"].id, "13:30") is None
    assert _slot_link(html, clinic.doctors["sari"].id, "13:30") is not None  # only dr. Andi is away

    removed = await client.post(
        f"/inbox/calendar/blackouts/{block.id}/remove", data={"csrf_token": token},
        headers={"Referer": str(client.make_url(_calendar(clinic, wednesday)))},
    )  # fmt: skip
    assert "Blackout removed" in await removed.text()
    assert await _fresh_get(db, BlackoutBlock, block.id) is None
    assert await _audit(db, "blackout.removed", block.id)


async def test_a_blackout_that_makes_no_sense_is_refused(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    day = _day_of(next_weekday(3, hour=9))
    token = await sign_in_page(client, db, "owner")
    base = {"csrf_token": token, "branch": str(clinic.branch.id), "day": day, "view": "doctors", "doctor_id": "",
            "room_id": "", "reason": "Cleaning"}  # fmt: skip
    backwards = await client.post(
        "/inbox/calendar/blackouts", data={**base, "scope": "branch", "starts": f"{day}T15:00", "ends": f"{day}T14:00"}
    )
    assert "A blackout ends after it starts." in await backwards.text()
    no_room = await client.post(
        "/inbox/calendar/blackouts", data={**base, "scope": "room", "starts": f"{day}T14:00", "ends": f"{day}T15:00"}
    )
    assert "Choose a room of this branch." in await no_room.text()
    count = await db.execute(select(BlackoutBlock).where(BlackoutBlock.branch_id == clinic.branch.id))
    assert count.scalars().all() == []


async def test_a_doctor_sees_the_calendar_but_books_nothing(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    monday = next_weekday(0, hour=9)
    token = await sign_in_page(client, db, "doctor")
    html = await (await client.get(_calendar(clinic, monday))).text()
    assert "dr. Andi Wijaya" in html
    assert _free_slot_links(html) == [] and "Add a blackout" not in html
    refused = await client.post(
        "/inbox/calendar/book",
        data={"csrf_token": token, "branch": str(clinic.branch.id), "start": monday.isoformat(),
              "doctor_id": str(clinic.doctors["andi"].id), "name": "X", "phone": "081234567890",
              "examination_id": str(clinic.examinations["GP"].id)},
    )  # fmt: skip
    assert refused.status == 403
    assert await _sessions_of(db, clinic) == []


async def test_another_branchs_calendar_and_blackouts_are_not_found(client: Client, db: AsyncSession) -> None:
    mine, theirs = await build_clinic(db), await build_clinic(db)
    block = BlackoutBlock(branch_id=theirs.branch.id, scope="branch", reason="Their meeting",
                          starts_at=next_weekday(0, hour=12), ends_at=next_weekday(0, hour=13))  # fmt: skip
    db.add(block)
    await db.commit()
    token = await sign_in_page(client, db, "staff", branch_id=mine.branch.id)
    assert (await client.get(_calendar(theirs, next_weekday(0, hour=9)))).status == 404
    own = await client.get("/inbox/calendar")
    assert own.status == 200 and mine.branch.name in await own.text()
    refused = await client.post(f"/inbox/calendar/blackouts/{block.id}/remove", data={"csrf_token": token})
    assert "There is no such blackout." in await refused.text()
    assert await _fresh_get(db, BlackoutBlock, block.id) is not None


async def test_posts_without_the_pages_token_change_nothing(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    monday = next_weekday(0, hour=11)
    await sign_in_page(client, db, "owner")
    refused = await client.post(
        "/inbox/calendar/book",
        data={"csrf_token": "forged", "branch": str(clinic.branch.id), "start": monday.isoformat(),
              "doctor_id": str(clinic.doctors["andi"].id), "name": "Eve", "phone": "081298765432",
              "examination_id": str(clinic.examinations["GP"].id)},
    )  # fmt: skip
    assert refused.status == 403
    day = _day_of(monday)
    blackout = await client.post(
        "/inbox/calendar/blackouts",
        data={"branch": str(clinic.branch.id), "scope": "branch", "starts": f"{day}T12:00", "ends": f"{day}T13:00",
              "reason": "Forged"},
    )  # fmt: skip
    assert blackout.status == 403
    assert await _sessions_of(db, clinic) == []
    assert (await db.execute(select(BlackoutBlock).where(BlackoutBlock.reason == "Forged"))).first() is None


async def test_patient_names_on_the_calendar_are_shown_as_text(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    monday_ten = next_weekday(0, hour=10)
    await db.execute(
        update(Patient).where(Patient.id == clinic.patients["siti"].id).values(name="<script>alert(1)</script>")
    )
    await db.commit()
    await insert_session(db, clinic, starts_at=monday_ten)
    await sign_in_page(client, db, "owner")
    html = await (await client.get(_calendar(clinic, monday_ten))).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)</script>" not in html


async def test_a_stranger_is_sent_to_sign_in(client: Client) -> None:
    response = await client.get("/inbox/calendar", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login")
    refused = await client.post("/inbox/calendar/book", data={"branch": "1"}, allow_redirects=False)
    assert refused.status == 401


async def test_booking_from_the_room_view_lets_the_clinic_pick_the_doctor(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    thursday = next_weekday(3, hour=9)
    token = await sign_in_page(client, db, "owner")
    html = await (await client.get(_calendar(clinic, thursday, "rooms"))).text()
    dental = clinic.rooms["dental"].id
    links = [h for h in _free_slot_links(html) if parse_qs(urlsplit(h).query).get("room") == [str(dental)]]
    ten = next(h for h in links if "T10:00:00+07:00" in parse_qs(urlsplit(h).query)["slot"][0])
    form = _panel(await (await client.get(ten)).text())
    assert "Book Dental suite" in form and "Dental check-up" in form and "General consultation" not in form
    response = await client.post(
        "/inbox/calendar/book",
        data={"csrf_token": token, "branch": str(clinic.branch.id), "day": _day_of(thursday), "view": "rooms",
              "start": parse_qs(urlsplit(ten).query)["slot"][0], "doctor_id": "", "room_id": str(dental),
              "patient_id": str(clinic.patients["siti"].id), "examination_id": str(clinic.examinations["DENTAL"].id)},
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303
    (booked,) = await _sessions_of(db, clinic)
    assert (booked.room_id, booked.doctor_id) == (dental, clinic.doctors["sari"].id)


async def test_booking_without_a_chosen_time_says_so(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    token = await sign_in_page(client, db, "owner")
    refused = await client.post(
        "/inbox/calendar/book",
        data={"csrf_token": token, "branch": str(clinic.branch.id), "start": "", "doctor_id": "",
              "patient_id": str(clinic.patients["siti"].id), "examination_id": str(clinic.examinations["GP"].id)},
    )  # fmt: skip
    assert refused.status == 200 and refused.url.path == "/inbox/calendar"  # back to the calendar, with the reason
    assert "Choose a free time on the calendar first." in await refused.text()
    assert await _sessions_of(db, clinic) == []


async def test_odd_days_and_times_in_the_address_never_break_the_page(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    await sign_in_page(client, db, "owner")
    odd = (
        "day=9999-12-31",
        "day=0001-01-01",
        "day=banana&view=<script>",
        "slot=0001-01-01T00:00:00%2B07:00&doctor=1",
        "slot=not-a-time&doctor=x",
        "branch=abc&day=2026-02-30",
    )
    for query in odd:
        response = await client.get(f"/inbox/calendar?branch={clinic.branch.id}&{query}")
        assert response.status == 200, query
        assert "<script>" not in (await response.text()).split("</head>", 1)[1], query


async def test_the_calendar_offers_only_times_booking_accepts_and_says_why_not_on_the_others(
    client: Client, db: AsyncSession
) -> None:
    clinic = await build_clinic(db)
    # dr. Andi gives his examinations in the mornings only; the dental check-up needs two weeks' notice.
    for code in ("GP", "FACIAL"):
        db.add_all(
            ExaminationWindow(examination_id=clinic.examinations[code].id, weekday=d, starts=time(8), ends=time(12))
            for d in range(6)
        )
    dental = clinic.examinations["DENTAL"].id
    await db.execute(update(Examination).where(Examination.id == dental).values(min_notice_min=14 * 24 * 60))
    await db.commit()
    andi, sari = clinic.doctors["andi"].id, clinic.doctors["sari"].id
    monday = next_weekday(0, hour=9)
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    html = await (await client.get(_calendar(clinic, monday))).text()
    assert _slot_link(html, andi, "11:30") is not None  # a consultation from 11:30 ends at noon
    assert _slot_link(html, andi, "11:45") is None and _slot_link(html, andi, "14:00") is None
    assert _cell_title(html, f"doctor-{andi}", "14:00") == "14:00 · Not bookable: outside the examination's hours"
    assert _cell_title(html, f"doctor-{andi}", "08:30") == "08:30 · Not bookable: doctor not attending"
    assert _free_slot_links(html) and all(f"doctor={sari}" not in link for link in _free_slot_links(html))
    assert _cell_title(html, f"doctor-{sari}", "14:00") == "14:00 · Not bookable: less than 14 days' notice"
    rooms = await (await client.get(_calendar(clinic, monday, "rooms"))).text()
    dental_suite = f"room-{clinic.rooms['dental'].id}"
    assert "less than 14 days' notice" in _cell_title(rooms, dental_suite, "10:00")

    # What the calendar does not offer, booking refuses for the same reason (and the desk stays on the calendar).
    refused = await client.post(
        "/inbox/calendar/book",
        data={"csrf_token": token, "branch": str(clinic.branch.id), "day": _day_of(monday), "view": "doctors",
              "start": next_weekday(0, hour=14).astimezone(JAKARTA).isoformat(), "doctor_id": str(andi),
              "patient_id": str(clinic.patients["siti"].id), "examination_id": str(clinic.examinations["GP"].id)},
        allow_redirects=False,
    )  # fmt: skip
    assert refused.status == 303 and refused.headers["Location"].startswith("/inbox/calendar?")
    again = await client.get(refused.headers["Location"])
    assert "outside the examination&#39;s hours" in _panel(await again.text())
    assert await _sessions_of(db, clinic) == []
