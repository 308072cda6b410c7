"""B4: availability for 20 doctors × 30 days on seeded data (bookings, blackouts), DB fetch included, against the
brute-force minute-by-minute reference on the same data in the same run. Goal: ≥ 20× and ≤ 50 ms; the number of
SQL queries does not grow with the horizon."""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.common import Report, median, ms, timed
from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import (
    AttendanceOverride,
    BlackoutBlock,
    Branch,
    BranchHours,
    Doctor,
    DoctorAttendance,
    Examination,
    ExaminationBranch,
    ExaminationDoctor,
    Occupancy,
    Room,
    ScheduleApplication,
)
from booking_core.domain.availability_reference import free_slots_reference
from booking_core.services import availability

DOCTORS, DAYS, ROOMS, BOOKINGS, BLACKOUTS = 20, 30, 10, 400, 12
TZ = "Asia/Jakarta"


async def seed(engine: AsyncEngine, now: datetime) -> tuple[int, int]:
    """A branch open 07-21 every day, :data:`DOCTORS` doctors attending two shifts Monday to Saturday (a day off
    and an accepted extra evening each), :data:`BLACKOUTS` blackouts and :data:`BOOKINGS` booked slots over the
    next :data:`DAYS` days, from a fixed random seed. Returns the branch and examination ids."""
    rng = random.Random(4)
    zone = ZoneInfo(TZ)
    today = now.astimezone(zone).date()
    maker = make_sessionmaker(engine)
    async with maker() as db, db.begin():
        branch, rooms, doctors, exam = await _clinic(db)
        _attendance(db, rng, branch, exam, doctors, today)
        await db.flush()
        _blackouts(db, rng, branch, doctors, rooms, today)
    async with maker() as db:
        await _bookings(db, rng, branch, doctors, rooms, today)
    return branch.id, exam.id


async def _clinic(db: AsyncSession) -> tuple[Branch, list[Room], list[Doctor], Examination]:
    branch = Branch(
        code="BENCH",
        name="Bench clinic",
        tz=TZ,
        currency="IDR",
        tax_rate=Decimal("0.11"),
        token_prefix="A",
        slot_step_min=15,
    )
    db.add(branch)
    await db.flush()
    db.add_all(BranchHours(branch_id=branch.id, weekday=d, opens=clock(7), closes=clock(21)) for d in range(7))
    rooms = [Room(branch_id=branch.id, name=f"Room {i + 1}", kind="consultation") for i in range(ROOMS)]
    doctors = [Doctor(name=f"dr. Bench {i + 1}") for i in range(DOCTORS)]
    db.add_all([*rooms, *doctors])
    exam = Examination(
        code="BENCH-GP",
        name="Consultation",
        price=Decimal(150000),
        currency="IDR",
        duration_min=30,
        room_kind="consultation",
        min_notice_min=60,
        horizon_days=60,
        buffer_after_min=5,
        keywords=[],
    )
    db.add(exam)
    await db.flush()
    db.add(ExaminationBranch(examination_id=exam.id, branch_id=branch.id))
    return branch, rooms, doctors, exam


def _attendance(
    db: AsyncSession, rng: random.Random, branch: Branch, exam: Examination, doctors: list[Doctor], today: date
) -> None:
    """Each doctor does the examination, attends 4 h + 4 h Monday to Saturday (starting at 8, 9 or 10), has one day
    off and one accepted extra evening."""
    for i, doctor in enumerate(doctors):
        db.add(ExaminationDoctor(examination_id=exam.id, doctor_id=doctor.id))
        first = 8 + i % 3
        for weekday in range(6):
            for starts, ends in ((first, first + 4), (first + 5, first + 9)):
                db.add(
                    DoctorAttendance(
                        doctor_id=doctor.id,
                        branch_id=branch.id,
                        weekday=weekday,
                        starts=clock(starts),
                        ends=clock(ends),
                    )
                )
        off = today + timedelta(days=rng.randrange(DAYS))
        db.add(AttendanceOverride(doctor_id=doctor.id, branch_id=branch.id, day=off, note="leave"))
        extra = today + timedelta(days=rng.randrange(DAYS))
        db.add(
            ScheduleApplication(
                doctor_id=doctor.id,
                branch_id=branch.id,
                day=extra,
                starts=clock(18),
                ends=clock(20),
                status="accepted",
            )
        )


def _blackouts(
    db: AsyncSession, rng: random.Random, branch: Branch, doctors: list[Doctor], rooms: list[Room], today: date
) -> None:
    """Noon blackouts of 1-3 h, in turn for the branch, a doctor and a room."""
    zone = ZoneInfo(TZ)
    for n in range(BLACKOUTS):
        day = today + timedelta(days=rng.randrange(DAYS))
        starts = datetime.combine(day, clock(12), zone).astimezone(UTC)
        scope = ("branch", "doctor", "room")[n % 3]
        db.add(
            BlackoutBlock(
                branch_id=branch.id,
                scope=scope,
                reason=f"blackout {n}",
                starts_at=starts,
                ends_at=starts + timedelta(hours=1 + n % 3),
                doctor_id=doctors[n].id if scope == "doctor" else None,
                room_id=rooms[n % ROOMS].id if scope == "room" else None,
            )
        )


async def _bookings(
    db: AsyncSession, rng: random.Random, branch: Branch, doctors: list[Doctor], rooms: list[Room], today: date
) -> None:
    """:data:`BOOKINGS` random 35-minute claims; one the exclusion constraint refuses is drawn again."""
    zone = ZoneInfo(TZ)
    booked = 0
    while booked < BOOKINGS:
        day = today + timedelta(days=rng.randrange(DAYS))
        start = datetime.combine(day, clock(8 + rng.randrange(10), rng.choice((0, 15, 30, 45))), zone)
        try:
            async with db.begin():
                db.add(
                    Occupancy(
                        branch_id=branch.id,
                        doctor_id=rng.choice(doctors).id,
                        room_id=rng.choice(rooms).id,
                        kind="session",
                        during=Range(start, start + timedelta(minutes=35), bounds="[)"),
                    )
                )
            booked += 1
        except IntegrityError:
            continue


async def run(engine: AsyncEngine) -> Report:
    report = Report("B4  availability: 20 doctors × 30 days, DB fetch included, vs brute-force reference")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    branch_id, exam_id = await seed(engine, now)
    maker = make_sessionmaker(engine)
    start, end = now, now + timedelta(days=DAYS)

    async def ours(days: int = DAYS) -> list[object]:
        async with maker() as db:
            _, slots = await availability.find_slots(
                db, branch_id=branch_id, examination_id=exam_id, start=start, end=start + timedelta(days=days), now=now
            )
            return slots  # type: ignore[return-value]

    samples = await timed(ours, repeat=15)
    fast = median(samples)

    started = time.perf_counter()
    async with maker() as db:
        ctx = await availability.context(db, branch_id=branch_id, examination_id=exam_id, start=start, end=end, now=now)
    reference = free_slots_reference(ctx.query)
    slow = time.perf_counter() - started
    identical = (await ours()) == reference

    counts: dict[str, int] = {"n": 0}

    def count(*_: object) -> None:
        counts["n"] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    per_horizon = {}
    for days in (1, 7, 30):
        counts["n"] = 0
        await ours(days)
        per_horizon[days] = counts["n"]
    event.remove(engine.sync_engine, "before_cursor_execute", count)

    ratio = slow / fast
    flat = len(set(per_horizon.values())) == 1
    report.ok = identical and flat and ratio >= 20 and fast <= 0.050
    report.add("slots found", f"{len(reference)} (identical to the reference: {'yes' if identical else 'NO'})")
    report.add("frontdesk median", f"{ms(fast)} over {len(samples)} runs (goal ≤ 50 ms)")
    report.add("reference", ms(slow))
    report.add("ratio", f"{ratio:.0f}× faster (goal ≥ 20×)")
    report.add(
        "SQL queries", ", ".join(f"{d} d: {n}" for d, n in per_horizon.items()) + (" (flat)" if flat else " (GROWS)")
    )
    return report
