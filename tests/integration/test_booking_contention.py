"""Booking under contention: racing claims over doctors and rooms answer booked or slot_taken, never an error.

Real PostgreSQL throughout: the exclusion constraints, their waits, a real deadlock and its retry.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.db.tables import Doctor, DoctorAttendance, ExaminationDoctor, Patient, Room
from booking_core.domain.actors import Actor
from booking_core.services import booking, contention
from booking_core.services.errors import Conflict
from devtools.builders import Clinic, next_weekday
from infra.settings import Settings

RECEPTION = Actor(kind="staff", name="Reception", role="staff")
SignIn = Callable[..., Awaitable[dict[str, str]]]
GP_MINUTES = 30


@dataclass(frozen=True)
class Attempt:
    kind: str  # "session" (doctor and room named) or "hold" (doctor named, the engine picks the room)
    start: datetime
    doctor_id: int
    room_id: int | None


@pytest.fixture
async def many(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on an engine of their own: up to 30 racers hold a connection at once (the rest queue for one), a
    share of PostgreSQL's 100 connections that leaves room for everything else running on this machine."""
    assert settings.async_database_url is not None
    engine = make_engine(settings.async_database_url, pool_size=15)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def three_gps_three_rooms(db: AsyncSession, clinic: Clinic) -> tuple[list[int], list[int]]:
    """Dr. Andi plus two more GP doctors (Mon-Fri 09:00-17:00) and a third consultation room."""
    room = Room(branch_id=clinic.branch.id, name="Consultation 3", kind="consultation")
    budi, citra = Doctor(name="dr. Budi Santoso"), Doctor(name="dr. Citra Dewi")
    db.add_all([room, budi, citra])
    await db.flush()
    for doctor in (budi, citra):
        db.add(ExaminationDoctor(examination_id=clinic.examinations["GP"].id, doctor_id=doctor.id))
        db.add_all(
            DoctorAttendance(doctor_id=doctor.id, branch_id=clinic.branch.id, weekday=d, starts=time(9), ends=time(17))
            for d in range(5)
        )
    await db.commit()
    doctors = [clinic.doctors["andi"].id, budi.id, citra.id]
    rooms = [clinic.rooms["consult-1"].id, clinic.rooms["consult-2"].id, room.id]
    return doctors, rooms


async def _attempt(maker: async_sessionmaker[AsyncSession], clinic: Clinic, attempt: Attempt) -> str:
    """One racer, straight through the service (no retry around it): what it answered."""
    try:
        async with maker() as db, db.begin():
            if attempt.kind == "hold":
                await booking.hold(
                    db,
                    actor=RECEPTION,
                    branch_id=clinic.branch.id,
                    examination_id=clinic.examinations["GP"].id,
                    start=attempt.start,
                    doctor_id=attempt.doctor_id,
                    minutes=10,
                )
            else:
                await booking.book(
                    db,
                    actor=RECEPTION,
                    branch_id=clinic.branch.id,
                    patient_id=clinic.patients["siti"].id,
                    examination_ids=[clinic.examinations["GP"].id],
                    start=attempt.start,
                    doctor_id=attempt.doctor_id,
                    room_id=attempt.room_id,
                )
    except Conflict as refused:
        return refused.code
    except Exception as exc:  # the answer under test: anything else is a failure, reported by name
        return f"error: {type(exc).__name__}: {exc}"
    return "booked"


async def _claims(db: AsyncSession, branch_id: int) -> list[tuple[int, int, datetime, datetime]]:
    rows = await db.execute(
        text(
            "SELECT doctor_id, room_id, lower(during), upper(during) FROM occupancies "
            "WHERE branch_id = :b AND active ORDER BY lower(during)"
        ),
        {"b": branch_id},
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _overlap(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


async def test_racing_bookings_and_holds_over_doctors_and_rooms_answer_only_booked_or_slot_taken(
    clinic: Clinic, db: AsyncSession, many: async_sessionmaker[AsyncSession]
) -> None:
    doctors, rooms = await three_gps_three_rooms(db, clinic)
    ten = next_weekday(2, hour=10)
    # Same doctor in different rooms, same room with different doctors, starts 15 minutes apart (visits last 30).
    attempts = [
        Attempt("session", ten + timedelta(minutes=15 * k), d, r) for k in range(5) for d in doctors for r in rooms
    ]
    attempts += [Attempt("hold", ten + timedelta(minutes=15 * k), d, None) for k in range(5) for d in doctors]
    random.Random(10).shuffle(attempts)

    outcomes = await asyncio.gather(*(_attempt(many, clinic, a) for a in attempts))

    assert {o for o in outcomes if o not in ("booked", "slot_taken")} == set()
    claims = await _claims(db, clinic.branch.id)
    assert len(claims) == outcomes.count("booked")
    for i, (doctor, room, start, end) in enumerate(claims):
        for other_doctor, other_room, other_start, other_end in claims[i + 1 :]:
            if doctor == other_doctor or room == other_room:
                assert not _overlap(start, end, other_start, other_end), "two active claims overlap"
    # Exactly the non-overlapping set won: every refused booking collides with a claim that won.
    for attempt, outcome in zip(attempts, outcomes, strict=True):
        if outcome == "slot_taken" and attempt.kind == "session":
            end = attempt.start + timedelta(minutes=GP_MINUTES)
            assert any(
                (doctor == attempt.doctor_id or room == attempt.room_id) and _overlap(attempt.start, end, start, stop)
                for doctor, room, start, stop in claims
            ), f"{attempt} was refused although nothing that won is in its way"
    sessions = await db.execute(text("SELECT count(*) FROM sessions WHERE branch_id = :b"), {"b": clinic.branch.id})
    holds = await db.execute(
        text("SELECT count(*) FROM slot_holds WHERE branch_id = :b AND status = 'active'"), {"b": clinic.branch.id}
    )
    assert sessions.scalar_one() + holds.scalar_one() == outcomes.count("booked")


async def _booked_after_a_deadlock(
    clinic: Clinic, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], *, attempts: int
) -> tuple[Awaitable[object], int]:
    """A booking transaction and another one that take two locks in opposite orders, through the real code.

    The other transaction locks the patient's row first; the booking claims its time and then, inserting the session,
    needs that row (the foreign key's share lock) and waits; the other transaction then writes an overlapping claim
    with a plain insert, which waits for the booking's uncommitted claim. PostgreSQL finds the cycle after the
    booking's ``deadlock_timeout`` (the other side has a longer one, so the booking is the one aborted) and rolls the
    booking back; the other transaction then rolls itself back. Returns the booking's task and the retry count before.
    """
    start = next_weekday(3, hour=10)
    andi, room = clinic.doctors["andi"].id, clinic.rooms["consult-1"].id
    # Plain ids: rolling this session back below expires the clinic's objects.
    branch_id, patient_id, exam_id = clinic.branch.id, clinic.patients["siti"].id, clinic.examinations["GP"].id
    retried_before = booking.CONTENTION.retried
    await db.execute(text("SET LOCAL deadlock_timeout = '20s'"))
    await db.execute(text("SELECT id FROM patients WHERE id = :p FOR UPDATE"), {"p": patient_id})
    other_pid = (await db.execute(text("SELECT pg_backend_pid()"))).scalar_one()

    async def transaction() -> object:
        async with sessionmaker() as session, session.begin():
            return await booking.book(
                session,
                actor=RECEPTION,
                branch_id=branch_id,
                patient_id=patient_id,
                examination_ids=[exam_id],
                start=start,
                doctor_id=andi,
                room_id=room,
            )

    task = asyncio.ensure_future(booking.retrying(transaction, attempts=attempts))
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> :me"
    )
    async with asyncio.timeout(60):  # bounded: the booking reaches the patient's row and waits there
        while not (await db.execute(waiting, {"me": other_pid})).scalar_one():
            await db.execute(text("SELECT pg_stat_clear_snapshot()"))  # else one transaction sees one snapshot
            await asyncio.sleep(0.05)
    # Now the opposite order: a claim over the booking's uncommitted one (waits for it: a cycle).
    await db.execute(
        text(
            "INSERT INTO occupancies (branch_id, doctor_id, room_id, during, kind, active) "
            "VALUES (:branch, :doctor, :room, tstzrange(:start, :end, '[)'), 'session', true)"
        ),
        {
            "branch": branch_id,
            "doctor": andi,
            "room": room,
            "start": start,
            "end": start + timedelta(minutes=GP_MINUTES),
        },
    )
    await db.rollback()
    return task, retried_before


async def test_a_booking_aborted_by_a_deadlock_runs_again_and_is_booked(
    clinic: Clinic, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    branch_id = clinic.branch.id
    task, retried_before = await _booked_after_a_deadlock(clinic, db, sessionmaker, attempts=3)
    async with asyncio.timeout(60):
        session = await task
    assert getattr(session, "booking_code", None)
    assert booking.CONTENTION.retried > retried_before
    count = await db.execute(text("SELECT count(*) FROM sessions WHERE branch_id = :b"), {"b": branch_id})
    assert count.scalar_one() == 1


async def test_a_booking_that_keeps_deadlocking_answers_try_again_not_an_error(
    clinic: Clinic, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    gave_up_before = booking.CONTENTION.gave_up
    task, _ = await _booked_after_a_deadlock(clinic, db, sessionmaker, attempts=1)
    with pytest.raises(Conflict) as refused:
        async with asyncio.timeout(60):
            await task
    assert refused.value.code == "try_again" and refused.value.status == 409
    assert booking.CONTENTION.gave_up == gave_up_before + 1


async def test_racing_api_bookings_answer_201_or_409_never_500(
    client: TestClient[web.Request, web.Application], clinic: Clinic, db: AsyncSession, sign_in: SignIn
) -> None:
    doctors, rooms = await three_gps_three_rooms(db, clinic)
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    ten = next_weekday(1, hour=13)
    bodies = [
        {
            "branch_id": clinic.branch.id,
            "patient_id": clinic.patients["siti"].id,
            "examination_ids": [clinic.examinations["GP"].id],
            "start": (ten + timedelta(minutes=15 * k)).astimezone(UTC).isoformat(),
            "doctor_id": d,
            "room_id": r,
        }
        for k in range(4)
        for d in doctors
        for r in rooms
    ]
    random.Random(3).shuffle(bodies)

    async def post(body: dict[str, object]) -> tuple[int, dict[str, object]]:
        response = await client.post("/api/v1/sessions", json=body, headers=headers)
        return response.status, await response.json()

    answers = await asyncio.gather(*(post(b) for b in bodies))

    assert {status for status, _ in answers} <= {201, 409}, [a for a in answers if a[0] not in (201, 409)]
    refusals = [body["error"] for status, body in answers if status == 409]
    assert refusals and all(e["code"] == "slot_taken" for e in refusals)  # type: ignore[index]
    assert all("alternatives" in e["details"] for e in refusals)  # type: ignore[index]
    booked = [body for status, body in answers if status == 201]
    assert booked
    claims = await _claims(db, clinic.branch.id)
    assert len(claims) == len(booked)
    for i, (doctor, room, start, end) in enumerate(claims):
        for other_doctor, other_room, other_start, other_end in claims[i + 1 :]:
            if doctor == other_doctor or room == other_room:
                assert not _overlap(start, end, other_start, other_end), "two active claims overlap"


async def _book_as_siti(
    maker: async_sessionmaker[AsyncSession], clinic: Clinic, start: datetime, *, patient: str = "siti"
) -> str:
    """One booking by the front desk, through the retry wrapper as the API runs it: what it answered."""

    async def transaction() -> object:
        async with maker() as db, db.begin():
            return await booking.book(
                db,
                actor=RECEPTION,
                branch_id=clinic.branch.id,
                patient_id=clinic.patients[patient].id,
                examination_ids=[clinic.examinations["GP"].id],
                start=start,
            )

    try:
        await booking.retrying(transaction)
    except Conflict as refused:
        assert refused.code != "slot_taken" or refused.details["alternatives"], "slot_taken without alternatives"
        return refused.code
    except Exception as exc:  # the answer under test: anything else is a failure, reported by name
        return f"error: {type(exc).__name__}: {exc}"
    return "booked"


async def test_fifty_identical_bookings_at_once_give_one_visit_and_slot_taken_with_alternatives_to_the_rest(
    clinic: Clinic, db: AsyncSession, many: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    claims_run: list[datetime] = []
    claim = booking.queries.claim

    async def counted_claim(*args: object, **kwargs: object) -> int | None:
        claims_run.append(datetime.now(UTC))
        return await claim(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(booking.queries, "claim", counted_claim)
    start = next_weekday(1, hour=10)  # dr. Andi is the only GP: one visit fits

    outcomes = await asyncio.gather(*(_book_as_siti(many, clinic, start) for _ in range(50)))

    assert outcomes.count("booked") == 1 and outcomes.count("slot_taken") == 49, sorted(set(outcomes))
    assert len(claims_run) == 1, "the identical requests waited for the first one instead of claiming themselves"
    assert [row[2] for row in await _claims(db, clinic.branch.id)] == [start]


async def test_when_the_booking_others_wait_for_fails_they_book_on_their_own(
    clinic: Clinic, db: AsyncSession, many: async_sessionmaker[AsyncSession]
) -> None:
    """The first of several identical requests dies with a database error (its connection is killed while it waits
    for a lock); the ones waiting for it do not inherit the error: they run their own transactions, and one books."""
    start = next_weekday(3, hour=11)
    # Plain ids: rolling this session back below expires the clinic's objects.
    branch_id, patient_id = clinic.branch.id, clinic.patients["siti"].id
    # The first booking gets as far as writing its session, then waits for the patient's row, locked here.
    await db.execute(text("SELECT id FROM patients WHERE id = :p FOR UPDATE"), {"p": patient_id})
    me = (await db.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    first = asyncio.ensure_future(_book_as_siti(many, clinic, start))
    lock_waiter = text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> :me"
    )
    async with asyncio.timeout(60):
        while (first_pid := (await db.execute(lock_waiter, {"me": me})).scalar()) is None:
            await db.execute(text("SELECT pg_stat_clear_snapshot()"))
            await asyncio.sleep(0.05)
    on_their_own = contention.COUNTS.on_their_own
    others = [asyncio.ensure_future(_book_as_siti(many, clinic, start)) for _ in range(10)]
    async with asyncio.timeout(60):  # they wait for the first one, not for the database
        while contention.COUNTS.waiting < len(others):
            await asyncio.sleep(0.01)

    await db.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
    await db.rollback()  # the patient's row is free again
    async with asyncio.timeout(60):
        failed = await first
        outcomes = await asyncio.gather(*others)

    assert failed.startswith("error:"), failed  # the first one's own failure is its own
    assert contention.COUNTS.on_their_own >= on_their_own + len(others)
    assert outcomes.count("booked") == 1 and outcomes.count("slot_taken") == len(others) - 1, outcomes
    assert [row[2] for row in await _claims(db, branch_id)] == [start]


async def test_different_patients_asking_for_any_doctor_at_one_time_fill_every_free_doctor_once(
    clinic: Clinic, db: AsyncSession, many: async_sessionmaker[AsyncSession]
) -> None:
    """Not identical (each its own patient): no request waits for another's answer, overlapping ones take turns, and
    the database decides; three GPs and three consultation rooms free at 14:00 give exactly three visits."""
    doctors, _ = await three_gps_three_rooms(db, clinic)
    start = next_weekday(2, hour=14)
    patients = []
    for i in range(20):
        patient = Patient(name=f"Patient {i}", phone_e164=f"+62814{secrets.randbelow(10**8):08d}", language="id")
        db.add(patient)
        patients.append(patient)
    await db.commit()
    clinic.patients.update({f"p{i}": p for i, p in enumerate(patients)})

    outcomes = await asyncio.gather(*(_book_as_siti(many, clinic, start, patient=f"p{i}") for i in range(20)))

    assert outcomes.count("booked") == 3 and outcomes.count("slot_taken") == 17, sorted(set(outcomes))
    claims = await _claims(db, clinic.branch.id)
    assert sorted(doctor for doctor, _, _, _ in claims) == sorted(doctors)
    assert len({room for _, room, _, _ in claims}) == 3
