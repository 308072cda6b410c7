"""B7: 50 concurrent booking attempts on one slot, each in its own transaction and connection: one winner; p99.

The baseline, in the same run and the same clinic: 50 concurrent bookings of 50 different free slots (no one
loses). The ratio says what contention itself costs. CPU is the process's own (``time.process_time``): on a shared
2-core machine it shows whether a slow run was our work or someone else's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.common import Report, ms, percentile
from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import Session
from booking_core.domain.actors import Actor
from booking_core.services import booking
from booking_core.services.errors import Conflict
from devtools.builders import Clinic, build_clinic, next_weekday

ATTEMPTS = 50
GOAL_P99 = 0.100
RECEPTION = Actor(kind="staff", name="bench", role="staff")


@dataclass(frozen=True)
class Attempt:
    start: datetime
    doctor_id: int | None = None
    room_id: int | None = None


@dataclass
class Race:
    """What a burst of concurrent bookings answered, and how long each took."""

    outcomes: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    def count(self, outcome: str) -> int:
        return self.outcomes.count(outcome)

    @property
    def errors(self) -> int:
        return sum(1 for o in self.outcomes if o not in ("booked", "slot_taken"))


async def book_concurrently(
    maker: async_sessionmaker[AsyncSession], clinic: Clinic, attempts: Sequence[Attempt]
) -> Race:
    """All attempts at once, each through ``booking.retrying`` in its own transaction, as the API books."""
    race = Race()

    async def one(attempt: Attempt) -> str:
        async def transaction() -> None:
            async with maker() as db, db.begin():
                await booking.book(
                    db,
                    actor=RECEPTION,
                    branch_id=clinic.branch.id,
                    patient_id=clinic.patients["siti"].id,
                    examination_ids=[clinic.examinations["GP"].id],
                    start=attempt.start,
                    doctor_id=attempt.doctor_id,
                    room_id=attempt.room_id,
                    now=datetime.now(UTC) - timedelta(seconds=1),
                )

        began = time.perf_counter()
        try:
            await booking.retrying(transaction)
            outcome = "booked"
        except Conflict as refused:
            outcome = refused.code
        except Exception as exc:  # counted, never hidden: the check wants none
            outcome = f"error:{type(exc).__name__}"
        race.latencies.append(time.perf_counter() - began)
        return outcome

    cpu, wall = time.process_time(), time.perf_counter()
    race.outcomes = list(await asyncio.gather(*(one(a) for a in attempts)))
    race.wall, race.cpu = time.perf_counter() - wall, time.process_time() - cpu
    return race


def describe(race: Race) -> str:
    return (
        f"p50 {ms(race.p50)}, p99 {ms(race.p99)}, all {len(race.outcomes)} in {ms(race.wall)}, "
        f"CPU {ms(race.cpu / len(race.outcomes))} per booking"
    )


async def sessions_in(maker: async_sessionmaker[AsyncSession], branch_id: int) -> int:
    count = select(func.count()).select_from(Session).where(Session.branch_id == branch_id)
    async with maker() as db:
        return int((await db.execute(count)).scalar_one())


async def warm_up(maker: async_sessionmaker[AsyncSession], clinic: Clinic) -> None:
    """Bookings and refusals on every pooled connection first, as a gateway's pool is after its first minutes.

    Not measured: a connection's first use of each statement costs an extra round trip to prepare it, and 50
    concurrent attempts take 50 connections, most of them new.
    """
    await book_concurrently(maker, clinic, free_slots(weeks=4))
    await book_concurrently(maker, clinic, [Attempt(next_weekday(4, hour=9, weeks=5))] * ATTEMPTS)


def free_slots(*, weeks: int) -> list[Attempt]:
    """Dr. Andi's half hours in a week: Monday to Friday, 09:00 to 16:30 (16 a day), the first 50."""
    monday = next_weekday(0, hour=9, weeks=weeks)
    return [Attempt(monday + timedelta(days=d, minutes=30 * i)) for d in range(5) for i in range(16)][:ATTEMPTS]


async def run(engine: AsyncEngine) -> Report:
    report = Report("B7  50 concurrent bookings of one slot, vs 50 concurrent bookings of 50 free slots")
    maker = make_sessionmaker(engine)
    async with maker() as db:
        clinic = await build_clinic(db)
    await warm_up(maker, clinic)
    before = await sessions_in(maker, clinic.branch.id)

    contended = await book_concurrently(maker, clinic, [Attempt(next_weekday(1, hour=10))] * ATTEMPTS)
    won = await sessions_in(maker, clinic.branch.id) - before
    baseline = await book_concurrently(maker, clinic, free_slots(weeks=2))

    winners = contended.count("booked")
    ratio = contended.p99 / baseline.p99
    report.ok = (
        winners == 1
        and won == 1
        and contended.count("slot_taken") == ATTEMPTS - 1
        and baseline.count("booked") == ATTEMPTS
        and contended.p99 <= GOAL_P99
    )
    report.add("one slot", f"{winners} booked, {contended.count('slot_taken')} slot_taken, sessions in DB: {won}")
    report.add("  latency", describe(contended) + f" (goal p99 ≤ {ms(GOAL_P99)})")
    report.add("baseline: 50 free slots", f"{baseline.count('booked')} booked, {baseline.errors} errors")
    report.add("  latency", describe(baseline))
    report.add("ratio", f"p99 one slot / p99 free slots = {ratio:.2f}×")
    return report
