"""Live availability through the API, and booking that the database refuses to double-book."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, BlackoutBlock, Occupancy, Session, SlotHold
from booking_core.domain.actors import Actor
from booking_core.services import booking
from booking_core.services.errors import Conflict
from devtools.builders import Clinic, add_patient, next_weekday

JAKARTA = ZoneInfo("Asia/Jakarta")
SignIn = Callable[..., Awaitable[dict[str, str]]]
RECEPTION = Actor(kind="staff", id=None, name="Reception", role="staff")


def _local(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(JAKARTA).strftime("%a %H:%M")


def _day(monday_9: datetime) -> dict[str, str]:
    start = monday_9.astimezone(JAKARTA).replace(hour=0)
    return {"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()}


async def _slots(
    client: TestClient[object, object], headers: dict[str, str], clinic: Clinic, exam: str = "GP", **params: object
) -> list[dict[str, object]]:
    query = {"branch_id": clinic.branch.id, "examination_id": clinic.examinations[exam].id, **params}
    response = await client.get("/api/v1/availability", params=query, headers=headers)
    assert response.status == 200, await response.text()
    return (await response.json())["slots"]  # type: ignore[no-any-return]


async def _book(
    client: TestClient[object, object],
    headers: dict[str, str],
    clinic: Clinic,
    start: datetime,
    exam: str = "GP",
    **extra: object,
) -> object:
    body = {
        "branch_id": clinic.branch.id,
        "patient_id": clinic.patients["siti"].id,
        "examination_ids": [clinic.examinations[exam].id],
        "start": start.isoformat(),
        **extra,
    }
    return await client.post("/api/v1/sessions", json=body, headers=headers)


async def test_a_gp_consultation_can_be_booked_every_quarter_hour_while_dr_andi_attends(
    client: TestClient[object, object], clinic: Clinic, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    monday = next_weekday(0, hour=9)
    slots = await _slots(client, headers, clinic, **_day(monday))
    starts = [_local(str(s["start"])) for s in slots]
    assert starts[0] == "Mon 09:00" and starts[-1] == "Mon 16:30"
    assert len(starts) == 31  # 09:00 .. 16:30 every 15 minutes, each 30 minutes long
    assert {s["doctor_name"] for s in slots} == {"dr. Andi Wijaya"}
    assert {s["room_id"] for s in slots} == {clinic.rooms["consult-1"].id}


async def test_a_booked_session_disappears_from_availability_and_explains_itself(
    client: TestClient[object, object], clinic: Clinic, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    monday_10 = next_weekday(0, hour=10)
    response = await _book(client, headers, clinic, monday_10)
    assert response.status == 201, await response.text()  # type: ignore[attr-defined]
    session = await response.json()  # type: ignore[attr-defined]
    assert len(session["booking_code"]) == 8 and session["status"] == "waiting"
    starts = [_local(str(s["start"])) for s in await _slots(client, headers, clinic, **_day(monday_10))]
    assert "Mon 10:00" not in starts and "Mon 09:45" not in starts and "Mon 10:15" not in starts
    assert "Mon 09:30" in starts and "Mon 10:30" in starts
    explain = await client.get(
        "/api/v1/availability/explain",
        params={
            "branch_id": clinic.branch.id,
            "examination_id": clinic.examinations["GP"].id,
            "at": monday_10.isoformat(),
        },
        headers=headers,
    )
    body = await explain.json()
    assert body["available"] is False
    assert [r["code"] for r in body["reasons"]] == ["booked"]


async def test_the_explanation_names_the_layer_that_closes_a_time(
    client: TestClient[object, object], clinic: Clinic, sign_in: SignIn, db: AsyncSession
) -> None:
    headers = await sign_in("staff")
    wednesday_12 = next_weekday(2, hour=12)
    db.add(
        BlackoutBlock(
            branch_id=clinic.branch.id,
            scope="branch",
            starts_at=wednesday_12,
            ends_at=wednesday_12 + timedelta(hours=1),
            reason="staff meeting",
        )
    )
    await db.commit()

    async def reasons(at: datetime) -> list[str]:
        response = await client.get(
            "/api/v1/availability/explain",
            params={
                "branch_id": clinic.branch.id,
                "examination_id": clinic.examinations["GP"].id,
                "at": at.isoformat(),
            },
            headers=headers,
        )
        assert response.status == 200
        return [r["message"] for r in (await response.json())["reasons"]]

    assert await reasons(next_weekday(2, hour=21)) == ["outside branch hours", "doctor not attending"]
    assert await reasons(next_weekday(5, hour=11)) == ["doctor not attending"]  # Saturday: branch open, Andi not
    assert await reasons(wednesday_12) == ["blackout: staff meeting"]
    available = await reasons(next_weekday(2, hour=9))
    assert len(available) == 1 and available[0].startswith("available")


async def test_booking_a_taken_slot_is_refused_with_the_next_free_alternatives(
    client: TestClient[object, object], clinic: Clinic, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    monday_10 = next_weekday(0, hour=10)
    assert (await _book(client, headers, clinic, monday_10)).status == 201  # type: ignore[attr-defined]
    again = await _book(client, headers, clinic, monday_10)
    assert again.status == 409  # type: ignore[attr-defined]
    error = (await again.json())["error"]  # type: ignore[attr-defined]
    assert error["code"] == "slot_taken"
    alternatives = [_local(a["start"]) for a in error["details"]["alternatives"]]
    assert alternatives == ["Mon 10:30", "Mon 10:45", "Mon 11:00", "Mon 11:15", "Mon 11:30"]


async def test_fifty_receptionists_booking_one_slot_at_once_make_exactly_one_session(
    clinic: Clinic, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    start = next_weekday(1, hour=11)

    async def attempt() -> str:
        async with sessionmaker() as db:
            try:
                async with db.begin():
                    await booking.book(
                        db,
                        actor=RECEPTION,
                        branch_id=clinic.branch.id,
                        patient_id=clinic.patients["siti"].id,
                        examination_ids=[clinic.examinations["GP"].id],
                        start=start,
                    )
            except Conflict as refused:
                return refused.code
            return "booked"

    outcomes = await asyncio.gather(*(attempt() for _ in range(50)))
    assert outcomes.count("booked") == 1
    assert set(outcomes) == {"booked", "slot_taken"}
    async with sessionmaker() as db:
        sessions = (await db.execute(select(Session).where(Session.branch_id == clinic.branch.id))).scalars().all()
        assert len(sessions) == 1


async def test_a_hold_keeps_the_slot_until_it_expires(
    clinic: Clinic, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    start = next_weekday(3, hour=9)
    now = datetime.now(UTC)
    budi = None
    async with sessionmaker() as db, db.begin():
        held = await booking.hold(
            db,
            actor=RECEPTION,
            branch_id=clinic.branch.id,
            examination_id=clinic.examinations["GP"].id,
            start=start,
            minutes=10,
            now=now,
        )
        budi = await add_patient(db, commit=False)
    async with sessionmaker() as db:
        try:
            async with db.begin():
                await booking.book(
                    db,
                    actor=RECEPTION,
                    branch_id=clinic.branch.id,
                    patient_id=budi.id,
                    examination_ids=[clinic.examinations["GP"].id],
                    start=start,
                    now=now,
                )
            raise AssertionError("booked over a live hold")
        except Conflict as refused:
            assert refused.code == "slot_taken"
    later = now + timedelta(minutes=11)  # the hold has lapsed: the slot is free again
    async with sessionmaker() as db, db.begin():
        session = await booking.book(
            db,
            actor=RECEPTION,
            branch_id=clinic.branch.id,
            patient_id=budi.id,
            examination_ids=[clinic.examinations["GP"].id],
            start=start,
            now=later,
        )
        assert session.starts_at == start
    async with sessionmaker() as db:
        hold_row = await db.get(SlotHold, held.id)
        assert hold_row is not None and hold_row.status == "expired"


async def test_converting_a_hold_moves_its_claim_to_the_session_without_a_gap(
    clinic: Clinic, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    start = next_weekday(4, hour=14)
    async with sessionmaker() as db, db.begin():
        held = await booking.hold(
            db, actor=RECEPTION, branch_id=clinic.branch.id, examination_id=clinic.examinations["GP"].id, start=start
        )
        claim_id = held.occupancy_id
    async with sessionmaker() as db, db.begin():
        session = await booking.convert_hold(db, held.id, actor=RECEPTION, patient_id=clinic.patients["siti"].id)
    async with sessionmaker() as db:
        assert session.occupancy_id == claim_id
        claim = await db.get(Occupancy, claim_id)
        assert claim is not None and claim.kind == "session" and claim.active and claim.expires_at is None
        hold_row = await db.get(SlotHold, held.id)
        assert hold_row is not None and hold_row.status == "converted"
        actions = (
            (await db.execute(select(AuditEntry.action).where(AuditEntry.entity_id.in_([held.id, session.id]))))
            .scalars()
            .all()
        )
        assert {"hold.created", "session.booked"} <= set(actions)


async def test_bad_periods_and_unknown_ids_are_refused_clearly(
    client: TestClient[object, object], clinic: Clinic, sign_in: SignIn
) -> None:
    headers = await sign_in("staff")
    base = {"branch_id": clinic.branch.id, "examination_id": clinic.examinations["GP"].id}
    monday = next_weekday(0, hour=9)
    backwards = await client.get(
        "/api/v1/availability",
        headers=headers,
        params={**base, "from": monday.isoformat(), "to": (monday - timedelta(hours=1)).isoformat()},
    )
    assert backwards.status == 422 and (await backwards.json())["error"]["code"] == "invalid_range"
    naive = await client.get(
        "/api/v1/availability",
        headers=headers,
        params={**base, "from": "2026-12-01T09:00:00", "to": "2026-12-02T09:00:00"},
    )
    assert naive.status == 422 and (await naive.json())["error"]["code"] == "invalid_query"
    unknown = await client.get(
        "/api/v1/availability", headers=headers, params={**base, "examination_id": 99999999, **_day(monday)}
    )
    assert unknown.status == 404
    too_far = await _book(client, headers, clinic, next_weekday(0, hour=10, weeks=12))
    assert too_far.status == 422  # type: ignore[attr-defined]
    assert "beyond the booking horizon" in (await too_far.json())["error"]["message"]  # type: ignore[attr-defined]


async def test_branch_staff_cannot_see_or_book_another_branch(
    client: TestClient[object, object], clinic: Clinic, sign_in: SignIn, db: AsyncSession
) -> None:
    from devtools.builders import build_clinic

    other = await build_clinic(db)
    headers = await sign_in("staff", branch_id=other.branch.id)
    monday = next_weekday(0, hour=9)
    assert (
        await client.get(
            "/api/v1/availability",
            headers=headers,
            params={"branch_id": clinic.branch.id, "examination_id": clinic.examinations["GP"].id, **_day(monday)},
        )
    ).status == 404
    refused = await _book(client, headers, clinic, next_weekday(0, hour=10))
    assert refused.status == 404  # type: ignore[attr-defined]
    count = await db.execute(text("SELECT count(*) FROM sessions WHERE branch_id = :b"), {"b": clinic.branch.id})
    assert count.scalar_one() == 0


async def test_a_doctor_cannot_book_from_the_api(
    client: TestClient[object, object], clinic: Clinic, sign_in: SignIn
) -> None:
    headers = await sign_in("doctor")
    assert (await _book(client, headers, clinic, next_weekday(0, hour=10))).status == 403  # type: ignore[attr-defined]
