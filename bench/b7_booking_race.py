"""B7: 50 concurrent booking attempts on one slot, each in its own transaction and connection: one winner; p99."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import Report, ms, percentile
from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import Session
from booking_core.domain.actors import Actor
from booking_core.services import booking
from booking_core.services.errors import Conflict
from tests.builders import build_clinic, next_weekday

ATTEMPTS = 50
RECEPTION = Actor(kind="staff", name="bench", role="staff")


async def run(engine: AsyncEngine) -> Report:
    report = Report("B7  50 concurrent bookings of one slot")
    maker = make_sessionmaker(engine)
    async with maker() as db:
        clinic = await build_clinic(db)
    start = next_weekday(1, hour=10)
    latencies: list[float] = []

    async def attempt() -> str:
        began = time.perf_counter()
        try:
            async with maker() as db, db.begin():
                await booking.book(
                    db,
                    actor=RECEPTION,
                    branch_id=clinic.branch.id,
                    patient_id=clinic.patients["siti"].id,
                    examination_ids=[clinic.examinations["GP"].id],
                    start=start,
                    now=datetime.now(UTC) - timedelta(seconds=1),
                )
            outcome = "booked"
        except Conflict as refused:
            outcome = refused.code
        latencies.append(time.perf_counter() - began)
        return outcome

    wall = time.perf_counter()
    outcomes = await asyncio.gather(*(attempt() for _ in range(ATTEMPTS)))
    wall = time.perf_counter() - wall
    async with maker() as db:
        sessions = (
            await db.execute(select(func.count()).select_from(Session).where(Session.branch_id == clinic.branch.id))
        ).scalar_one()
    winners = outcomes.count("booked")
    report.ok = winners == 1 and sessions == 1 and set(outcomes) <= {"booked", "slot_taken"}
    report.add("winners", f"{winners} booked, {outcomes.count('slot_taken')} slot_taken, sessions in DB: {sessions}")
    report.add("latency", f"p50 {ms(percentile(latencies, 50))}, p99 {ms(percentile(latencies, 99))}")
    report.add("all 50 answered in", ms(wall))
    return report
