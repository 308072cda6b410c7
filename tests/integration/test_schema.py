"""The schema: migrations go up and down cleanly, match the models, and the database refuses double booking."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Branch, Doctor, Occupancy, Room, metadata
from devtools import harness
from gateway.migrate import downgrade, upgrade

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 09:00 in Jakarta


async def test_migrations_go_up_down_and_up_again_on_a_fresh_database(backing: harness.Backing) -> None:
    name = harness.new_name("frontdesk_migrations")
    await harness.create_database(backing.admin_url, name)
    url = backing.database_url(name).replace("postgresql://", "postgresql+asyncpg://")
    try:
        await asyncio.to_thread(upgrade, url)
        conn = await asyncpg.connect(backing.database_url(name))
        try:
            tables = {
                r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            }
            assert {"branches", "sessions", "occupancies", "outbox", "audit_log", "login_codes"} <= tables
            assert await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'btree_gist'") == 1
            await asyncio.to_thread(downgrade, url)
            left = {
                r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            }
            assert left == {"alembic_version"}
            assert await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'btree_gist'") == 0
            await asyncio.to_thread(upgrade, url)
            assert await conn.fetchval("SELECT version_num FROM alembic_version") is not None
        finally:
            await conn.close()
    finally:
        await harness.drop_database(backing.admin_url, name)


async def test_the_migrations_match_the_models(engine: object) -> None:
    def diff(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})  # type: ignore[arg-type]
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:  # type: ignore[attr-defined]
        differences = await conn.run_sync(diff)
    assert differences == []


async def _clinic(db: AsyncSession) -> tuple[Branch, Doctor, Doctor, Room, Room]:
    branch = Branch(
        code=harness.new_name("B")[-12:], name="Kemang", tz="Asia/Jakarta", currency="IDR", token_prefix="A"
    )
    db.add(branch)
    await db.flush()
    d1, d2 = Doctor(name="dr. Andi"), Doctor(name="drg. Sari")
    r1, r2 = Room(branch_id=branch.id, name="Room 1"), Room(branch_id=branch.id, name="Room 2")
    db.add_all([d1, d2, r1, r2])
    await db.flush()
    return branch, d1, d2, r1, r2


def _claim(
    branch: Branch, doctor: Doctor, room: Room, start: datetime, minutes: int, kind: str = "session"
) -> Occupancy:
    from sqlalchemy.dialects.postgresql import Range

    return Occupancy(
        branch_id=branch.id,
        doctor_id=doctor.id,
        room_id=room.id,
        during=Range(start, start + timedelta(minutes=minutes), bounds="[)"),
        kind=kind,
    )


async def _refused(db: AsyncSession, claim: Occupancy) -> str:
    nested = await db.begin_nested()
    db.add(claim)
    with pytest.raises(IntegrityError) as refused:
        await db.flush()
    await nested.rollback()
    return str(getattr(refused.value.orig, "sqlstate", None) or refused.value.orig.pgcode)  # type: ignore[union-attr]


async def test_the_database_refuses_a_second_session_for_the_same_doctor_at_an_overlapping_time(
    db: AsyncSession,
) -> None:
    branch, andi, _sari, room1, room2 = await _clinic(db)
    db.add(_claim(branch, andi, room1, T0, 30))
    await db.flush()
    assert await _refused(db, _claim(branch, andi, room2, T0 + timedelta(minutes=15), 30)) == "23P01"


async def test_the_database_refuses_two_doctors_in_one_room_at_once(db: AsyncSession) -> None:
    branch, andi, sari, room1, _ = await _clinic(db)
    db.add(_claim(branch, andi, room1, T0, 30))
    await db.flush()
    assert await _refused(db, _claim(branch, sari, room1, T0 + timedelta(minutes=29), 30)) == "23P01"


async def test_a_hold_and_a_session_refuse_each_other(db: AsyncSession) -> None:
    branch, andi, _, room1, room2 = await _clinic(db)
    db.add(_claim(branch, andi, room1, T0, 30, kind="hold"))
    await db.flush()
    assert await _refused(db, _claim(branch, andi, room2, T0, 30)) == "23P01"


async def test_back_to_back_sessions_and_released_claims_do_not_conflict(db: AsyncSession) -> None:
    branch, andi, _, room1, _ = await _clinic(db)
    first = _claim(branch, andi, room1, T0, 30)
    db.add(first)
    await db.flush()
    db.add(_claim(branch, andi, room1, T0 + timedelta(minutes=30), 30))  # touching, half-open ranges
    await db.flush()
    first.active = False  # cancelled
    await db.flush()
    db.add(_claim(branch, andi, room1, T0, 30))
    await db.flush()
    count = await db.execute(text("SELECT count(*) FROM occupancies WHERE doctor_id = :d AND active"), {"d": andi.id})
    assert count.scalar_one() == 2
    await db.rollback()


async def test_money_is_numeric_and_times_are_timestamptz(engine: object) -> None:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        rows = (
            await conn.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND (column_name IN ('price', 'patient_pays', 'amount', 'gross') "
                    "OR column_name LIKE '%\\_at')"
                )
            )
        ).all()
    types = {(t, c): d for t, c, d in rows}
    assert types[("examinations", "price")] == "numeric"
    assert types[("invoices", "patient_pays")] == "numeric"
    assert types[("payments", "amount")] == "numeric"
    at_columns = {k: v for k, v in types.items() if k[1].endswith("_at")}
    assert at_columns and set(at_columns.values()) == {"timestamp with time zone"}
