"""Property: no sequence of book / cancel / hold / release / convert / expire ever leaves two visits overlapping.

Runs against the real database (the point is that PostgreSQL, not Python, keeps the promise) with a virtual clock
that only moves forward, so holds really expire between steps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.domain.actors import Actor
from booking_core.services import booking, lifecycle
from booking_core.services.errors import ServiceError
from devtools.builders import build_clinic, next_weekday
from infra.settings import Settings

RECEPTION = Actor(kind="staff", name="Reception", role="staff")

operation = st.one_of(
    st.tuples(st.just("book"), st.sampled_from(["GP", "DENTAL", "FACIAL"]), st.integers(0, 11)),
    st.tuples(st.just("hold"), st.sampled_from(["GP", "DENTAL"]), st.integers(0, 11)),
    st.tuples(st.just("cancel"), st.integers(0, 9)),
    st.tuples(st.just("release"), st.integers(0, 9)),
    st.tuples(st.just("convert"), st.integers(0, 9)),
    st.tuples(st.just("wait"), st.integers(1, 15)),
)

OVERLAPS = text("""
    SELECT count(*) FROM occupancies a JOIN occupancies b
      ON a.id < b.id AND a.active AND b.active AND a.during && b.during
     AND (a.doctor_id = b.doctor_id OR a.room_id = b.room_id)
     WHERE a.branch_id = :branch
""")
SESSION_OVERLAPS = text("""
    SELECT count(*) FROM sessions a JOIN sessions b
      ON a.id < b.id AND a.doctor_id = b.doctor_id
     AND a.status IN ('waiting', 'open') AND b.status IN ('waiting', 'open')
     AND tstzrange(a.starts_at, a.ends_at) && tstzrange(b.starts_at, b.ends_at)
     WHERE a.branch_id = :branch
""")
INCONSISTENT = text("""
    SELECT
      (SELECT count(*) FROM sessions s LEFT JOIN occupancies o ON o.id = s.occupancy_id
        WHERE s.branch_id = :branch AND s.status IN ('waiting', 'open') AND (o.id IS NULL OR NOT o.active))
    + (SELECT count(*) FROM sessions s JOIN occupancies o ON o.id = s.occupancy_id
        WHERE s.branch_id = :branch AND s.status = 'cancelled' AND o.active)
    + (SELECT count(*) FROM slot_holds h LEFT JOIN occupancies o ON o.id = h.occupancy_id
        WHERE h.branch_id = :branch AND h.status = 'active' AND (o.id IS NULL OR NOT o.active))
""")


async def _play(maker: async_sessionmaker[AsyncSession], operations: list[tuple[object, ...]]) -> None:
    async with maker() as db:
        clinic = await build_clinic(db)
    monday = next_weekday(0, hour=9)
    now = datetime.now(UTC)
    sessions: list[int] = []
    holds: list[int] = []
    for op in operations:
        kind = op[0]
        try:
            async with maker() as db, db.begin():
                if kind == "book":
                    session = await booking.book(
                        db,
                        actor=RECEPTION,
                        branch_id=clinic.branch.id,
                        patient_id=clinic.patients["siti"].id,
                        examination_ids=[clinic.examinations[str(op[1])].id],
                        start=monday + timedelta(minutes=15 * int(op[2])),
                        now=now,
                    )
                    sessions.append(session.id)
                elif kind == "hold":
                    held = await booking.hold(
                        db,
                        actor=RECEPTION,
                        branch_id=clinic.branch.id,
                        examination_id=clinic.examinations[str(op[1])].id,
                        start=monday + timedelta(minutes=15 * int(op[2])),
                        minutes=10,
                        now=now,
                    )
                    holds.append(held.id)
                elif kind == "cancel" and sessions:
                    target = sessions[int(op[1]) % len(sessions)]
                    await lifecycle.cancel(db, target, actor=RECEPTION, reason_code="patient_request", now=now)
                elif kind == "release" and holds:
                    await booking.release_hold(db, holds[int(op[1]) % len(holds)], actor=RECEPTION)
                elif kind == "convert" and holds:
                    session = await booking.convert_hold(
                        db,
                        holds[int(op[1]) % len(holds)],
                        actor=RECEPTION,
                        patient_id=clinic.patients["siti"].id,
                        now=now,
                    )
                    sessions.append(session.id)
                elif kind == "wait":
                    now += timedelta(minutes=int(op[1]))
        except ServiceError:
            pass  # refusals (slot taken, already cancelled, ...) are part of the game
        async with maker() as db:
            params = {"branch": clinic.branch.id}
            assert (await db.execute(OVERLAPS, params)).scalar_one() == 0, op
            assert (await db.execute(SESSION_OVERLAPS, params)).scalar_one() == 0, op
            assert (await db.execute(INCONSISTENT, params)).scalar_one() == 0, op


@examples(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=14))
def test_no_sequence_of_bookings_holds_and_cancellations_ever_overlaps(
    settings: Settings, operations: list[tuple[object, ...]]
) -> None:
    async def run() -> None:
        assert settings.async_database_url is not None
        engine = make_engine(settings.async_database_url, pool_size=2)
        try:
            await _play(make_sessionmaker(engine), operations)
        finally:
            await engine.dispose()

    asyncio.run(run())
