"""The demo clinic that `frontdesk run` seeds: believable and only once."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import (
    BlackoutBlock,
    Branch,
    Doctor,
    DoctorAttendance,
    Examination,
    Patient,
    Room,
)
from booking_core.services.demo import seed_demo
from devtools import harness


async def _count(db: AsyncSession, table: type) -> int:
    return int((await db.execute(select(func.count()).select_from(table))).scalar_one())


async def test_the_demo_clinic_has_two_jakarta_branches_four_doctors_and_eight_priced_examinations(
    backing: harness.Backing,
) -> None:
    import asyncio

    from booking_core.db.engine import make_engine, make_sessionmaker
    from gateway.migrate import upgrade

    name = harness.new_name("frontdesk_demo")
    await harness.create_database(backing.admin_url, name)
    url = backing.database_url(name).replace("postgresql://", "postgresql+asyncpg://")
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url, pool_size=1)
    maker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    try:
        async with maker() as db, db.begin():
            assert await seed_demo(db, today=date(2026, 11, 23)) is True
        async with maker() as db:
            branches = (await db.execute(select(Branch))).scalars().all()
            assert len(branches) == 2 and {b.tz for b in branches} == {"Asia/Jakarta"}
            assert {b.currency for b in branches} == {"IDR"}
            assert await _count(db, Doctor) == 4
            assert await _count(db, Room) >= 4
            assert await _count(db, DoctorAttendance) >= 8
            exams = (await db.execute(select(Examination))).scalars().all()
            assert len(exams) == 8
            assert all(e.price > 0 and e.price == e.price.to_integral_value() for e in exams)  # IDR: no decimals
            assert await _count(db, BlackoutBlock) == 1
            assert await _count(db, Patient) >= 3
        async with maker() as db, db.begin():
            assert await seed_demo(db) is False  # a second run leaves the clinic alone
        async with maker() as db:
            assert await _count(db, Branch) == 2
    finally:
        await engine.dispose()
        await harness.drop_database(backing.admin_url, name)
