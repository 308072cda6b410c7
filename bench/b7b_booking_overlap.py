"""B7b: 50 concurrent bookings of overlapping slots across doctors and rooms: no error, no overlap; p99.

Three GP doctors and three consultation rooms; each attempt names a doctor, a room and a start between 10:00 and
11:15 in 15-minute steps (a visit lasts 30 minutes), so attempts overlap on the same doctor in different rooms, on
the same room with different doctors, and at shifted times - the mix that used to deadlock the two exclusion
constraints. Every answer must be ``booked`` or ``slot_taken``; afterwards no two active claims may overlap on a
doctor or a room, and every winner has its session. The baseline, in the same run: 50 concurrent bookings that do
not overlap at all (each doctor in a room of their own, a week later).
"""

from __future__ import annotations

import random
from datetime import time as clock
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.b7_booking_race import ATTEMPTS, Attempt, book_concurrently, describe, sessions_in, warm_up
from bench.common import Report, ms
from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import Doctor, DoctorAttendance, ExaminationDoctor, Room
from devtools.builders import Clinic, build_clinic, next_weekday

GOAL_P99 = 0.250
SEED = 7

#: Pairs of active claims at one branch that overlap on a doctor or on a room (the constraints say: none).
OVERLAPS = text(
    """
    SELECT count(*) FROM occupancies a JOIN occupancies b ON a.id < b.id
    WHERE a.branch_id = :branch AND b.branch_id = :branch AND a.active AND b.active
      AND (a.doctor_id = b.doctor_id OR a.room_id = b.room_id) AND a.during && b.during
    """
)


async def add_gp_doctors_and_room(db: AsyncSession, clinic: Clinic) -> None:
    """Two more GP doctors (Mon-Fri 09:00-17:00) and a third consultation room."""
    nine, five = clock(9), clock(17)
    room = Room(branch_id=clinic.branch.id, name="Consultation 3", kind="consultation")
    budi, citra = Doctor(name="dr. Budi Santoso"), Doctor(name="dr. Citra Dewi")
    db.add_all([room, budi, citra])
    await db.flush()
    for doctor in (budi, citra):
        db.add(ExaminationDoctor(examination_id=clinic.examinations["GP"].id, doctor_id=doctor.id))
        db.add_all(
            DoctorAttendance(doctor_id=doctor.id, branch_id=clinic.branch.id, weekday=d, starts=nine, ends=five)
            for d in range(5)
        )
    await db.commit()
    clinic.rooms["consult-3"] = room
    clinic.doctors.update(budi=budi, citra=citra)


async def overlaps(maker: async_sessionmaker[AsyncSession], branch_id: int) -> int:
    async with maker() as db:
        return int((await db.execute(OVERLAPS, {"branch": branch_id})).scalar_one())


async def run(engine: AsyncEngine) -> Report:
    report = Report("B7b 50 concurrent overlapping bookings across doctors and rooms, vs 50 that do not overlap")
    maker = make_sessionmaker(engine)
    async with maker() as db:
        clinic = await build_clinic(db)
        await add_gp_doctors_and_room(db, clinic)
    doctors = [clinic.doctors[name].id for name in ("andi", "budi", "citra")]
    rooms = [clinic.rooms[name].id for name in ("consult-1", "consult-2", "consult-3")]
    await warm_up(maker, clinic)
    before = await sessions_in(maker, clinic.branch.id)

    ten = next_weekday(2, hour=10)
    every = [Attempt(ten + timedelta(minutes=15 * k), d, r) for k in range(6) for d in doctors for r in rooms]
    random.Random(SEED).shuffle(every)
    contended = await book_concurrently(maker, clinic, every[:ATTEMPTS])
    won = await sessions_in(maker, clinic.branch.id) - before
    overlapping = await overlaps(maker, clinic.branch.id)

    nine = next_weekday(2, hour=9, weeks=2)
    apart = [Attempt(nine + timedelta(days=day, minutes=30 * k), d, r) for day in (0, 1) for k in range(16)
             for d, r in zip(doctors, rooms, strict=True)][:ATTEMPTS]  # fmt: skip
    baseline = await book_concurrently(maker, clinic, apart)

    ratio = contended.p99 / baseline.p99
    booked = contended.count("booked")
    report.ok = (
        contended.errors == 0
        and overlapping == 0
        and won == booked
        and booked > 0
        and baseline.count("booked") == ATTEMPTS
        and contended.p99 <= GOAL_P99
    )
    errors = sorted({o for o in contended.outcomes if o not in ("booked", "slot_taken")})
    report.add(
        "overlapping",
        f"{booked} booked, {contended.count('slot_taken')} slot_taken, {contended.errors} errors"
        + (f" ({', '.join(errors)})" if errors else "")
        + f"; sessions in DB: {won}; overlapping claims in DB: {overlapping}",
    )
    report.add("  latency", describe(contended) + f" (goal p99 ≤ {ms(GOAL_P99)})")
    report.add("baseline: no overlap", f"{baseline.count('booked')} booked, {baseline.errors} errors")
    report.add("  latency", describe(baseline))
    report.add("ratio", f"p99 overlapping / p99 apart = {ratio:.2f}×")
    return report
