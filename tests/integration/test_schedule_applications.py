"""Doctors apply for shifts; reception accepts (the doctor becomes bookable then) or rejects with a reason."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, ScheduleApplication, Staff
from booking_core.domain.actors import Actor
from booking_core.services import schedule
from booking_core.services.errors import Conflict
from devtools.builders import Clinic, build_clinic, next_weekday, unique

SignIn = Callable[..., Awaitable[dict[str, str]]]
Client = TestClient[object, object]
JAKARTA = ZoneInfo("Asia/Jakarta")
RECEPTION = Actor(kind="staff", name="Reception", role="staff")


def _saturday(weeks: int = 1) -> date:
    return next_weekday(5, hour=9, weeks=weeks).astimezone(JAKARTA).date()


def _sunday() -> date:
    return next_weekday(6, hour=9).astimezone(JAKARTA).date()


async def _as_doctor(sign_in: SignIn, db: AsyncSession, doctor_id: int) -> dict[str, str]:
    """Sign a doctor in and link their staff record to the doctor (as an admin would)."""
    name = unique("dr")
    headers = await sign_in("doctor", name=name)
    await db.execute(update(Staff).where(Staff.name == name).values(doctor_id=doctor_id))
    await db.commit()
    return headers


def _shift(clinic: Clinic, day: date, starts: str = "09:00", ends: str = "12:00", **extra: object) -> dict[str, object]:
    return {"branch_id": clinic.branch.id, "day": day.isoformat(), "starts": starts, "ends": ends, **extra}


async def _audit_actions(db: AsyncSession, application_id: int) -> list[str]:
    rows = await db.execute(
        select(AuditEntry.action)
        .where(AuditEntry.entity == "schedule_application", AuditEntry.entity_id == application_id)
        .order_by(AuditEntry.id)
    )
    return list(rows.scalars())


async def _saturday_slots(client: Client, headers: dict[str, str], clinic: Clinic, day: date) -> list[datetime]:
    start = datetime.combine(day, time(0), JAKARTA).astimezone(UTC)
    params = {
        "branch_id": str(clinic.branch.id),
        "examination_id": str(clinic.examinations["GP"].id),
        "from": start.isoformat(),
        "to": (start + timedelta(days=1)).isoformat(),
    }
    response = await client.get("/api/v1/availability", params=params, headers=headers)
    assert response.status == 200, await response.text()
    return [datetime.fromisoformat(s["start"]) for s in (await response.json())["slots"]]


async def test_a_doctor_applies_for_a_saturday_shift_and_reception_sees_it_pending(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    andi = clinic.doctors["andi"]
    doctor = await _as_doctor(sign_in, db, andi.id)
    response = await client.post(
        "/api/v1/schedule-applications", json=_shift(clinic, _saturday(), note="Cover for Sari"), headers=doctor
    )
    assert response.status == 201, await response.text()
    filed = await response.json()
    assert filed["status"] == "pending" and filed["doctor_id"] == andi.id and filed["doctor_name"] == andi.name
    assert filed["starts"] == "09:00:00" and filed["note"] == "Cover for Sari"

    reception = await sign_in("staff", branch_id=clinic.branch.id)
    inbox = await client.get(
        f"/api/v1/schedule-applications?status=pending&branch_id={clinic.branch.id}", headers=reception
    )
    items = (await inbox.json())["items"]
    assert [(i["id"], i["doctor_name"]) for i in items] == [(filed["id"], andi.name)]
    assert await _audit_actions(db, filed["id"]) == ["schedule_application.applied"]


async def test_accepting_a_shift_makes_the_doctor_bookable_that_day(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    saturday = _saturday()
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    assert await _saturday_slots(client, reception, clinic, saturday) == []  # dr. Andi works Monday to Friday
    doctor = await _as_doctor(sign_in, db, clinic.doctors["andi"].id)
    filed = await (
        await client.post("/api/v1/schedule-applications", json=_shift(clinic, saturday), headers=doctor)
    ).json()

    accepted = await client.post(f"/api/v1/schedule-applications/{filed['id']}/accept", headers=reception)
    assert accepted.status == 200, await accepted.text()
    body = await accepted.json()
    assert body["status"] == "accepted" and body["decided_by"] is not None and body["decided_at"] is not None

    slots = await _saturday_slots(client, reception, clinic, saturday)
    local = [s.astimezone(JAKARTA).time() for s in slots]
    assert local[0] == time(9) and local[-1] == time(11, 30)
    assert await _audit_actions(db, filed["id"]) == ["schedule_application.applied", "schedule_application.accepted"]


async def test_reception_files_for_a_doctor_and_must_say_which_one(
    client: Client, sign_in: SignIn, clinic: Clinic
) -> None:
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    nameless = await client.post("/api/v1/schedule-applications", json=_shift(clinic, _saturday()), headers=reception)
    assert nameless.status == 422 and (await nameless.json())["error"]["code"] == "doctor_required"
    sari = clinic.doctors["sari"].id
    filed = await client.post(
        "/api/v1/schedule-applications", json=_shift(clinic, _saturday(), doctor_id=sari), headers=reception
    )
    assert filed.status == 201 and (await filed.json())["doctor_id"] == sari
    ghost = await client.post(
        "/api/v1/schedule-applications", json=_shift(clinic, _saturday(), doctor_id=2_000_000_000), headers=reception
    )
    assert ghost.status == 404


async def test_shifts_must_run_forwards_lie_ahead_and_touch_the_opening_hours(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    doctor = await _as_doctor(sign_in, db, clinic.doctors["sari"].id)
    yesterday = datetime.now(JAKARTA).date() - timedelta(days=1)
    monday = next_weekday(0, hour=9).astimezone(JAKARTA).date()
    cases = [
        (_shift(clinic, _saturday(), "12:00", "09:00"), 422, "invalid_times"),
        (_shift(clinic, _saturday(), "09:00", "09:00"), 422, "invalid_times"),
        (_shift(clinic, yesterday), 422, "day_in_past"),
        (_shift(clinic, _sunday()), 422, "outside_branch_hours"),  # the branch is closed on Sundays
        (_shift(clinic, monday, "05:00", "07:30"), 422, "outside_branch_hours"),  # it opens at 08:00
        ({**_shift(clinic, _saturday()), "branch_id": 2_000_000_000}, 404, "not_found"),
        ({**_shift(clinic, _saturday()), "starts": "9 o'clock"}, 422, "invalid_body"),
    ]
    for body, status, code in cases:
        response = await client.post("/api/v1/schedule-applications", json=body, headers=doctor)
        assert response.status == status, body
        assert (await response.json())["error"]["code"] == code, body
    early_start = await client.post(
        "/api/v1/schedule-applications", json=_shift(clinic, monday, "07:00", "09:00"), headers=doctor
    )
    assert early_start.status == 201  # partly outside the hours is the clinic's call, not a refusal
    count = await db.execute(select(ScheduleApplication).where(ScheduleApplication.branch_id == clinic.branch.id))
    assert len(count.scalars().all()) == 1


async def test_an_overlapping_second_application_is_refused_but_the_afternoon_is_fine(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    doctor = await _as_doctor(sign_in, db, clinic.doctors["andi"].id)
    saturday = _saturday()
    assert (
        await client.post("/api/v1/schedule-applications", json=_shift(clinic, saturday), headers=doctor)
    ).status == 201
    overlap = await client.post(
        "/api/v1/schedule-applications", json=_shift(clinic, saturday, "11:00", "14:00"), headers=doctor
    )
    assert overlap.status == 409 and (await overlap.json())["error"]["code"] == "duplicate_application"
    afternoon = await client.post(
        "/api/v1/schedule-applications", json=_shift(clinic, saturday, "12:00", "15:00"), headers=doctor
    )
    assert afternoon.status == 201
    next_week = await client.post(
        "/api/v1/schedule-applications", json=_shift(clinic, _saturday(weeks=2)), headers=doctor
    )
    assert next_week.status == 201


async def test_the_same_shift_filed_twice_at_once_becomes_one_application(
    sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic
) -> None:
    async def file() -> str:
        async with sessionmaker() as db, db.begin():
            try:
                await schedule.apply(
                    db,
                    actor=RECEPTION,
                    doctor_id=clinic.doctors["sari"].id,
                    branch_id=clinic.branch.id,
                    day=_saturday(),
                    starts=time(14),
                    ends=time(17),
                )
            except Conflict as exc:
                return exc.code
            return "filed"

    outcomes = await asyncio.gather(*(file() for _ in range(6)))
    assert sorted(outcomes) == ["duplicate_application"] * 5 + ["filed"]


async def test_a_rejection_needs_a_reason_and_a_decision_is_made_only_once(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    doctor = await _as_doctor(sign_in, db, clinic.doctors["andi"].id)
    filed = await (
        await client.post("/api/v1/schedule-applications", json=_shift(clinic, _saturday()), headers=doctor)
    ).json()
    admin = await sign_in("admin")
    url = f"/api/v1/schedule-applications/{filed['id']}"
    for reason in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}):
        refused = await client.post(f"{url}/reject", json=reason, headers=admin)
        assert refused.status == 422, reason
    rejected = await client.post(f"{url}/reject", json={"reason": "Room closed for renovation"}, headers=admin)
    assert rejected.status == 200
    body = await rejected.json()
    assert body["status"] == "rejected" and body["decision_reason"] == "Room closed for renovation"
    for again in (
        client.post(f"{url}/accept", headers=admin),
        client.post(f"{url}/reject", json={"reason": "No"}, headers=admin),
    ):
        response = await again
        assert response.status == 409
        assert (await response.json())["error"]["code"] == "already_decided"
    assert (await (await client.get(url, headers=doctor)).json())["status"] == "rejected"
    assert await _audit_actions(db, filed["id"]) == ["schedule_application.applied", "schedule_application.rejected"]


async def test_reception_deciding_at_the_same_time_gets_exactly_one_decision(
    sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic
) -> None:
    async with sessionmaker() as db, db.begin():
        filed = await schedule.apply(
            db,
            actor=RECEPTION,
            doctor_id=clinic.doctors["andi"].id,
            branch_id=clinic.branch.id,
            day=_saturday(),
            starts=time(9),
            ends=time(12),
        )

    async def decide(accepting: bool) -> str:
        async with sessionmaker() as db, db.begin():
            try:
                if accepting:
                    view = await schedule.accept(db, filed.id, actor=RECEPTION)
                else:
                    view = await schedule.reject(db, filed.id, reason="Fully staffed", actor=RECEPTION)
            except Conflict as exc:
                return exc.code
            return view.status

    outcomes = await asyncio.gather(*(decide(i % 2 == 0) for i in range(10)))
    assert outcomes.count("already_decided") == 9
    assert len({o for o in outcomes if o != "already_decided"}) == 1


async def test_doctors_see_only_their_own_and_branch_staff_only_their_branch(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    andi = await _as_doctor(sign_in, db, clinic.doctors["andi"].id)
    sari = await _as_doctor(sign_in, db, clinic.doctors["sari"].id)
    mine = await (
        await client.post("/api/v1/schedule-applications", json=_shift(clinic, _saturday()), headers=andi)
    ).json()
    url = f"/api/v1/schedule-applications/{mine['id']}"
    assert (await client.get(url, headers=andi)).status == 200
    assert (await client.get(url, headers=sari)).status == 404
    sari_list = await (await client.get("/api/v1/schedule-applications", headers=sari)).json()
    assert mine["id"] not in [i["id"] for i in sari_list["items"]]
    for_andi = _shift(clinic, _saturday(), doctor_id=clinic.doctors["andi"].id)
    assert (await client.post("/api/v1/schedule-applications", json=for_andi, headers=sari)).status == 403
    assert (await client.post(f"{url}/accept", headers=andi)).status == 403  # doctors do not decide

    elsewhere = await build_clinic(db)
    other_reception = await sign_in("staff", branch_id=elsewhere.branch.id)
    assert (await client.get(url, headers=other_reception)).status == 404
    assert (await client.post(f"{url}/accept", headers=other_reception)).status == 404
    listed = await client.get(f"/api/v1/schedule-applications?branch_id={clinic.branch.id}", headers=other_reception)
    assert listed.status == 404
    theirs = await (await client.get("/api/v1/schedule-applications", headers=other_reception)).json()
    assert theirs["items"] == []
    unlinked = await sign_in("doctor")
    refused = await client.post("/api/v1/schedule-applications", json=_shift(clinic, _saturday()), headers=unlinked)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "not_a_doctor"
