"""Booking checks everything it is told: a room or doctor staff name, and every examination of a visit.

Issue 13, part 7: the API booked a named room during its own blackout, and a visit of several examinations was
checked against the first one only ("General consultation + Vaccination" at a time Vaccination alone is refused;
"Vaccination + Dental check-up" with a doctor who does no dental check-ups, in a consultation room).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import (
    BlackoutBlock,
    Examination,
    ExaminationBranch,
    ExaminationDoctor,
    ExaminationWindow,
    Lead,
    Session,
    SessionLine,
)
from devtools.builders import Clinic, next_weekday, unique

JAKARTA = ZoneInfo("Asia/Jakarta")
Client = TestClient[object, object]
SignIn = Callable[..., Awaitable[dict[str, str]]]


async def _offer(
    db: AsyncSession,
    clinic: Clinic,
    name: str,
    *,
    minutes: int,
    room_kind: str | None,
    doctor: str,
    mornings: bool = False,
) -> Examination:
    """An examination of the clinic, done by one doctor; ``mornings``: only 08:00-12:00, Monday to Saturday."""
    exam = Examination(code=unique(name[:6].upper()), name=name, price=Decimal("400000"), currency="IDR",
                       duration_min=minutes, taxable=False, room_kind=room_kind, min_notice_min=0, horizon_days=60,
                       cancel_cutoff_min=120, keywords=[])  # fmt: skip
    db.add(exam)
    await db.flush()
    db.add(ExaminationBranch(examination_id=exam.id, branch_id=clinic.branch.id))
    db.add(ExaminationDoctor(examination_id=exam.id, doctor_id=clinic.doctors[doctor].id))
    if mornings:
        db.add_all(
            ExaminationWindow(examination_id=exam.id, weekday=d, starts=time(8), ends=time(12)) for d in range(6)
        )
    await db.commit()
    return exam


async def _book(client: Client, headers: dict[str, str], clinic: Clinic, start: datetime, *exams: int, **extra: object):  # type: ignore[no-untyped-def]
    body = {"branch_id": clinic.branch.id, "patient_id": clinic.patients["siti"].id, "examination_ids": list(exams),
            "start": start.isoformat(), **extra}  # fmt: skip
    response = await client.post("/api/v1/sessions", json=body, headers=headers)
    return response.status, await response.json()


async def _sessions(db: AsyncSession, clinic: Clinic) -> list[Session]:
    """The branch's visits as they are now (a fresh session: ``db`` keeps what it loaded before)."""
    async with async_sessionmaker(db.bind, expire_on_commit=False)() as fresh:
        found = await fresh.execute(select(Session).where(Session.branch_id == clinic.branch.id).order_by(Session.id))
        return list(found.scalars())


async def test_a_named_room_under_its_own_blackout_is_refused_as_the_engine_would_refuse_it(
    client: Client, clinic: Clinic, db: AsyncSession, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    monday_10 = next_weekday(0, hour=10)
    consult_1 = clinic.rooms["consult-1"].id
    db.add(BlackoutBlock(branch_id=clinic.branch.id, scope="room", room_id=consult_1, reason="Air conditioning repair",
                         starts_at=monday_10, ends_at=monday_10 + timedelta(hours=2)))  # fmt: skip
    await db.commit()
    gp = clinic.examinations["GP"].id

    status, body = await _book(client, headers, clinic, monday_10, gp, room_id=consult_1)
    assert status == 422, body
    assert body["error"]["code"] == "slot_unavailable"
    assert body["error"]["message"] == "That time cannot be booked: room blackout: Air conditioning repair."
    assert await _sessions(db, clinic) == []

    status, body = await _book(client, headers, clinic, monday_10, gp)  # the engine picks the other room
    assert status == 201, body
    assert body["room_id"] == clinic.rooms["consult-2"].id


async def test_a_named_room_already_taken_gets_the_next_free_times(
    client: Client, clinic: Clinic, db: AsyncSession, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    monday_10 = next_weekday(0, hour=10)
    gp, facial = clinic.examinations["GP"].id, clinic.examinations["FACIAL"].id
    consult_2 = clinic.rooms["consult-2"].id
    status, first = await _book(client, headers, clinic, monday_10, facial, room_id=consult_2)
    assert status == 201 and first["room_id"] == consult_2
    status, body = await _book(client, headers, clinic, monday_10 + timedelta(minutes=30), gp, room_id=consult_2)
    assert status == 409 and body["error"]["code"] == "slot_taken"  # dr. Andi is busy too: a conflict, with times


async def test_a_named_doctor_is_held_to_attendance_blackouts_and_what_they_do(
    client: Client, clinic: Clinic, db: AsyncSession, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    gp, andi, sari = clinic.examinations["GP"].id, clinic.doctors["andi"].id, clinic.doctors["sari"].id
    saturday_11 = next_weekday(5, hour=11)
    status, body = await _book(client, headers, clinic, saturday_11, gp, doctor_id=andi)
    assert status == 422 and "doctor not attending" in body["error"]["message"]

    tuesday_9 = next_weekday(1, hour=9)
    db.add(BlackoutBlock(branch_id=clinic.branch.id, scope="doctor", doctor_id=andi, reason="Seminar",
                         starts_at=tuesday_9, ends_at=tuesday_9 + timedelta(hours=3)))  # fmt: skip
    await db.commit()
    status, body = await _book(client, headers, clinic, tuesday_9 + timedelta(hours=1), gp, doctor_id=andi)
    assert status == 422 and body["error"]["message"] == "That time cannot be booked: blackout: Seminar."

    status, body = await _book(client, headers, clinic, tuesday_9 + timedelta(hours=4), gp, doctor_id=sari)
    assert status == 404 and body["error"]["message"] == f"Doctor {sari} does not perform General consultation."
    assert await _sessions(db, clinic) == []


async def test_a_consultation_with_a_vaccination_keeps_to_the_vaccination_hours(
    client: Client, clinic: Clinic, db: AsyncSession, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    vaccination = await _offer(db, clinic, "Vaccination", minutes=15, room_kind="consultation", doctor="andi",
                               mornings=True)  # fmt: skip
    gp = clinic.examinations["GP"].id
    monday_14 = next_weekday(0, hour=14)

    status, alone = await _book(client, headers, clinic, monday_14, vaccination.id)
    assert status == 422 and "outside the examination's hours" in alone["error"]["message"]
    status, together = await _book(client, headers, clinic, monday_14, gp, vaccination.id)
    assert status == 422, together
    assert together["error"]["message"] == "That time cannot be booked: outside the examination's hours."
    # 11:45 + 45 minutes runs past the vaccination's noon: the whole visit must fit.
    status, late = await _book(client, headers, clinic, next_weekday(0, hour=11, minute=45), gp, vaccination.id)
    assert status == 422 and "outside the examination's hours" in late["error"]["message"]

    status, booked = await _book(client, headers, clinic, next_weekday(0, hour=10), gp, vaccination.id)
    assert status == 201, booked
    (visit,) = await _sessions(db, clinic)
    assert visit.ends_at - visit.starts_at == timedelta(minutes=45)
    async with async_sessionmaker(db.bind)() as fresh:
        lines = (await fresh.execute(select(SessionLine.name).where(SessionLine.session_id == visit.id))).scalars()
        assert sorted(lines) == ["General consultation", "Vaccination"]

    slots = await client.get(
        "/api/v1/availability",
        params={"branch_id": clinic.branch.id, "examination_id": vaccination.id,
                "from": monday_14.replace(hour=0).isoformat(), "to": monday_14.replace(hour=23).isoformat()},
        headers=headers,
    )  # fmt: skip
    assert all(datetime.fromisoformat(s["start"]).astimezone(JAKARTA).hour < 12 for s in (await slots.json())["slots"])


async def test_a_vaccination_with_a_dental_check_up_is_two_visits_not_one(
    client: Client, clinic: Clinic, db: AsyncSession, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    vaccination = await _offer(db, clinic, "Vaccination", minutes=15, room_kind="consultation", doctor="andi")
    dental = clinic.examinations["DENTAL"].id
    status, body = await _book(client, headers, clinic, next_weekday(0, hour=10), vaccination.id, dental)
    assert status == 422, body
    assert body["error"]["code"] == "examinations_incompatible"
    assert body["error"]["message"] == (
        "One visit cannot take two kinds of room (Vaccination a consultation room, Dental check-up a dental room);"
        " book them as separate visits."
    )
    assert await _sessions(db, clinic) == []


async def test_a_visit_needs_one_doctor_who_does_every_examination(
    client: Client, clinic: Clinic, db: AsyncSession, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    certificate = await _offer(db, clinic, "Health certificate", minutes=15, room_kind=None, doctor="sari")
    gp = clinic.examinations["GP"].id
    status, body = await _book(client, headers, clinic, next_weekday(1, hour=11), gp, certificate.id)
    assert status == 422, body
    assert body["error"]["code"] == "no_doctor_for_visit"
    assert "General consultation, Health certificate" in body["error"]["message"]
    status, body = await _book(
        client, headers, clinic, next_weekday(1, hour=11), certificate.id, doctor_id=clinic.doctors["sari"].id
    )
    assert status == 201, body  # alone, drg. Sari does it in any free room


async def test_converting_a_lead_holds_the_visit_to_every_examination_and_the_named_room(
    client: Client, clinic: Clinic, db: AsyncSession, sign_in: SignIn
) -> None:
    """The front desk converting a website lead is checked by the same rule as the API's booking."""
    vaccination = await _offer(db, clinic, "Vaccination", minutes=15, room_kind="consultation", doctor="andi",
                               mornings=True)  # fmt: skip
    dental_suite = clinic.rooms["dental"].id
    gp = clinic.examinations["GP"].id
    lead = Lead(channel="webform", status="new", contact_name="Rudi Hartono", contact_phone="0813-1111-2222")
    db.add(lead)
    await db.commit()
    url = f"/api/v1/leads/{lead.id}/convert"
    headers = await sign_in("staff")
    afternoon = {"branch_id": clinic.branch.id, "examination_ids": [gp, vaccination.id],
                 "start": next_weekday(2, hour=15).isoformat()}  # fmt: skip
    refused = await client.post(url, json=afternoon, headers=headers)
    assert refused.status == 422 and "outside the examination's hours" in (await refused.json())["error"]["message"]
    wrong_room = {**afternoon, "start": next_weekday(2, hour=9).isoformat(), "room_id": dental_suite}
    refused = await client.post(url, json=wrong_room, headers=headers)
    assert refused.status == 422
    assert (await refused.json())["error"]["message"] == "General consultation needs a consultation room."
    morning = {**afternoon, "start": next_weekday(2, hour=9).isoformat()}
    converted = await client.post(url, json=morning, headers=headers)
    assert converted.status == 200, await converted.text()
    assert (await converted.json())["session"]["room_id"] == clinic.rooms["consult-1"].id
