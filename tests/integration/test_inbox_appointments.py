"""The appointments page: bookings nobody accepted yet (accept / reject), and the "Doctor" switch with doctors'
schedule applications (accept / reject)."""

from __future__ import annotations

import re
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, OutboxMessage, Patient, ScheduleApplication, Session, Staff
from booking_core.domain.actors import Actor
from booking_core.services import schedule
from devtools.builders import Clinic, build_clinic, insert_session, next_weekday, unique
from tests.integration.staff_pages import csrf_of, new_code, sign_in_page

Client = TestClient[object, object]
JAKARTA = ZoneInfo("Asia/Jakarta")
RECEPTION = Actor(kind="staff", name="Reception", role="staff")


async def _fresh(db: AsyncSession, table: type[Any], row_id: int) -> Any:
    async with async_sessionmaker(db.bind, expire_on_commit=False)() as fresh:
        return await fresh.get(table, row_id)


async def _rows(db: AsyncSession, statement: Any) -> list[Any]:
    async with async_sessionmaker(db.bind, expire_on_commit=False)() as fresh:
        return list((await fresh.execute(statement)).scalars())


async def _application(db: AsyncSession, clinic: Clinic, doctor: str = "andi", note: str = "") -> int:
    """dr. X asks to attend next Saturday afternoon (filed by reception on their behalf)."""
    saturday = next_weekday(5, hour=13).astimezone(JAKARTA).date()
    found = await schedule.apply(
        db, actor=RECEPTION, branch_id=clinic.branch.id, day=saturday, starts=time(13), ends=time(17),
        note=note, doctor_id=clinic.doctors[doctor].id,
    )  # fmt: skip
    await db.commit()
    return found.id


async def _sign_in_as_doctor(client: Client, db: AsyncSession, doctor_id: int) -> str:
    name = unique("dr")
    code = await new_code(db, "doctor", name=name)
    token = csrf_of(await (await client.get("/login")).text())
    assert (await client.post("/login", data={"code": code, "csrf_token": token}, allow_redirects=False)).status == 303
    await db.execute(update(Staff).where(Staff.name == name).values(doctor_id=doctor_id))
    await db.commit()
    return token


def _list(clinic: Clinic, doctors: bool = False) -> str:
    return f"/inbox/appointments?branch={clinic.branch.id}" + ("&view=doctors" if doctors else "")


async def test_new_appointments_are_listed_newest_first_and_only_until_accepted(
    client: Client, db: AsyncSession
) -> None:
    clinic = await build_clinic(db)
    older = await insert_session(db, clinic, starts_at=next_weekday(0, hour=10))
    newer = await insert_session(db, clinic, starts_at=next_weekday(0, hour=11))
    accepted = await insert_session(db, clinic, starts_at=next_weekday(0, hour=12))
    cancelled = await insert_session(db, clinic, starts_at=next_weekday(0, hour=13), status="cancelled")
    await db.execute(update(Session).where(Session.id == accepted.id).values(accepted=True))
    await db.commit()
    await sign_in_page(client, db, "owner")
    page = await client.get(_list(clinic))
    html = await page.text()
    assert page.status == 200
    assert 'data-live="sessions,schedule_applications"' in html and 'class="switch-doctor"' in html
    assert html.index(newer.booking_code) < html.index(older.booking_code)
    assert accepted.booking_code not in html and cancelled.booking_code not in html
    assert f'action="/inbox/appointments/{newer.id}/accept"' in html
    assert f'action="/inbox/appointments/{newer.id}/reject"' in html


async def test_accepting_sends_the_check_in_qr_once(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    visit = await insert_session(db, clinic, starts_at=next_weekday(1, hour=10))
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    done = await client.post(f"/inbox/appointments/{visit.id}/accept", data={"csrf_token": token})
    html = await done.text()
    assert f"Accepted {visit.booking_code}; the patient is sent their check-in QR." in html
    assert visit.booking_code not in html.split('id="appointments"', 1)[1]  # gone from the list
    assert (await _fresh(db, Session, visit.id)).accepted is True
    again = await client.post(f"/inbox/appointments/{visit.id}/accept", data={"csrf_token": token})
    assert f"{visit.booking_code} was already accepted." in await again.text()
    qr = await _rows(db, select(OutboxMessage).where(OutboxMessage.dedupe_key == f"checkin-qr:{visit.id}"))
    assert len(qr) == 1 and qr[0].recipient == clinic.patients["siti"].phone_e164
    audit = await _rows(
        db, select(AuditEntry).where(AuditEntry.action == "session.accepted", AuditEntry.entity_id == visit.id)
    )
    assert len(audit) == 1 and audit[0].actor_kind == "staff"


async def test_rejecting_cancels_the_visit_with_a_reason(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    visit = await insert_session(db, clinic, starts_at=next_weekday(2, hour=10))
    token = await sign_in_page(client, db, "admin")
    vague = await client.post(
        f"/inbox/appointments/{visit.id}/reject", data={"csrf_token": token, "reason": "other", "note": " "}
    )
    assert "needs a note" in await vague.text()
    assert (await _fresh(db, Session, visit.id)).status == "waiting"
    done = await client.post(
        f"/inbox/appointments/{visit.id}/reject", data={"csrf_token": token, "reason": "doctor_unavailable"}
    )
    assert f"Rejected {visit.booking_code}; its time is free again." in await done.text()
    row = await _fresh(db, Session, visit.id)
    assert (row.status, row.cancel_reason) == ("cancelled", "doctor_unavailable")


async def test_the_doctor_switch_shows_applications_to_accept_or_reject(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    andi = await _application(db, clinic, "andi", note="Cover for the holiday")
    sari = await _application(db, clinic, "sari")
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    html = await (await client.get(_list(clinic, doctors=True))).text()
    assert "Doctor schedule applications" in html and "Cover for the holiday" in html
    assert re.search(r'class="switch-doctor"[^>]*checked', html)  # the magenta switch is on
    accepted = await client.post(f"/inbox/appointments/applications/{andi}/accept", data={"csrf_token": token})
    assert "Accepted: dr. Andi Wijaya attends" in await accepted.text()
    assert (await _fresh(db, ScheduleApplication, andi)).status == "accepted"
    no_reason = await client.post(
        f"/inbox/appointments/applications/{sari}/reject", data={"csrf_token": token, "reason": ""}
    )
    assert "Give a reason" in await no_reason.text()
    rejected = await client.post(
        f"/inbox/appointments/applications/{sari}/reject", data={"csrf_token": token, "reason": "Fully staffed"}
    )
    assert "Rejected the application of drg. Sari Lestari." in await rejected.text()
    row = await _fresh(db, ScheduleApplication, sari)
    assert (row.status, row.decision_reason) == ("rejected", "Fully staffed")


async def test_a_doctor_sees_their_own_applications_but_cannot_decide(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    own = await _application(db, clinic, "andi")
    other = await _application(db, clinic, "sari", note="Sari's own note")
    visit = await insert_session(db, clinic, starts_at=next_weekday(3, hour=10))
    token = await _sign_in_as_doctor(client, db, clinic.doctors["andi"].id)
    html = await (await client.get("/inbox/appointments?view=doctors")).text()
    assert "dr. Andi Wijaya" in html and "Sari's own note" not in html
    assert "/accept" not in html and "pending" in html
    refused = await client.post(f"/inbox/appointments/applications/{own}/accept", data={"csrf_token": token})
    assert "Only clinic staff decide schedule applications." in await refused.text()
    assert (await _fresh(db, ScheduleApplication, own)).status == "pending"
    assert (await _fresh(db, ScheduleApplication, other)).status == "pending"
    patients = await (await client.get("/inbox/appointments")).text()
    assert visit.booking_code in patients and f"/inbox/appointments/{visit.id}/accept" not in patients
    assert (await client.post(f"/inbox/appointments/{visit.id}/accept", data={"csrf_token": token})).status == 403


async def test_another_branchs_appointments_and_applications_are_out_of_reach(client: Client, db: AsyncSession) -> None:
    mine, theirs = await build_clinic(db), await build_clinic(db)
    visit = await insert_session(db, theirs, starts_at=next_weekday(4, hour=10))
    application = await _application(db, theirs)
    token = await sign_in_page(client, db, "staff", branch_id=mine.branch.id)
    assert visit.booking_code not in await (await client.get("/inbox/appointments")).text()
    assert (await client.get(_list(theirs))).status == 404
    tried = await client.post(f"/inbox/appointments/{visit.id}/accept", data={"csrf_token": token})
    assert f"There is no session {visit.id}." in await tried.text()
    assert (await _fresh(db, Session, visit.id)).accepted is False
    decided = await client.post(f"/inbox/appointments/applications/{application}/accept", data={"csrf_token": token})
    assert "There is no such schedule application." in await decided.text()
    assert (await _fresh(db, ScheduleApplication, application)).status == "pending"


async def test_a_post_without_the_pages_token_decides_nothing(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    visit = await insert_session(db, clinic, starts_at=next_weekday(0, hour=16))
    application = await _application(db, clinic)
    await sign_in_page(client, db, "owner")
    assert (await client.post(f"/inbox/appointments/{visit.id}/accept", data={})).status == 403
    assert (await client.post(f"/inbox/appointments/applications/{application}/accept")).status == 403
    assert (await _fresh(db, Session, visit.id)).accepted is False
    assert (await _fresh(db, ScheduleApplication, application)).status == "pending"


async def test_names_and_notes_are_shown_as_text_and_empty_lists_say_what_comes(
    client: Client, db: AsyncSession
) -> None:
    clinic = await build_clinic(db)
    await sign_in_page(client, db, "owner")
    assert "No new appointments" in await (await client.get(_list(clinic))).text()
    assert "No pending applications" in await (await client.get(_list(clinic, doctors=True))).text()
    await db.execute(
        update(Patient).where(Patient.id == clinic.patients["siti"].id).values(name="<script>alert('x')</script>")
    )
    await db.commit()
    await insert_session(db, clinic, starts_at=next_weekday(1, hour=15))
    await _application(db, clinic, note="<img src=x onerror=alert(1)>")
    patients = await (await client.get(_list(clinic))).text()
    assert "&lt;script&gt;" in patients and "<script>alert('x')</script>" not in patients
    doctors = await (await client.get(_list(clinic, doctors=True))).text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in doctors and "<img src=x" not in doctors
