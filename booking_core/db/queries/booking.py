"""Writes that claim time: occupancies (refused by the exclusion constraints), holds and sessions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Examination, Occupancy, Patient, Room, Session, SlotHold

EXCLUSION_VIOLATION = "23P01"


def _sqlstate(exc: IntegrityError) -> str | None:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


async def release_expired_holds(
    db: AsyncSession, *, doctor_id: int, room_id: int, start: datetime, end: datetime, now: datetime
) -> int:
    """Free expired holds that stand in the way of a new claim (the constraint cannot look at the clock)."""
    period = Range(start, end, bounds="[)")
    freed = await db.execute(
        update(Occupancy)
        .where(
            Occupancy.kind == "hold",
            Occupancy.active.is_(True),
            Occupancy.expires_at <= now,
            Occupancy.during.op("&&")(period),
            or_(Occupancy.doctor_id == doctor_id, Occupancy.room_id == room_id),
        )
        .values(active=False)
        .returning(Occupancy.id)
    )
    ids = list(freed.scalars())
    if ids:
        await db.execute(
            update(SlotHold).where(SlotHold.occupancy_id.in_(ids), SlotHold.status == "active").values(status="expired")
        )
    return len(ids)


async def claim(
    db: AsyncSession,
    *,
    branch_id: int,
    doctor_id: int,
    room_id: int,
    start: datetime,
    end: datetime,
    kind: str,
    expires_at: datetime | None = None,
    active: bool = True,
) -> Occupancy | None:
    """Insert a claim inside a savepoint; None when the database refuses it as an overlap (SQLSTATE 23P01)."""
    row = Occupancy(
        branch_id=branch_id,
        doctor_id=doctor_id,
        room_id=room_id,
        during=Range(start, end, bounds="[)"),
        kind=kind,
        active=active,
        expires_at=expires_at,
    )
    try:
        async with db.begin_nested():
            db.add(row)
            await db.flush()
    except IntegrityError as exc:
        if _sqlstate(exc) == EXCLUSION_VIOLATION:
            return None
        raise
    return row


async def add_session(db: AsyncSession, session: Session) -> bool:
    """Insert a session; False when its booking code collided with another (the caller draws a new one)."""
    try:
        async with db.begin_nested():
            db.add(session)
            await db.flush()
    except IntegrityError as exc:
        if "booking_code" in str(exc.orig):
            return False
        raise
    return True


async def examinations(db: AsyncSession, ids: Sequence[int]) -> list[Examination]:
    rows = (await db.execute(select(Examination).where(Examination.id.in_(ids)))).scalars().all()
    by_id = {row.id: row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


async def patient(db: AsyncSession, patient_id: int) -> Patient | None:
    return await db.get(Patient, patient_id)


async def room(db: AsyncSession, room_id: int) -> Room | None:
    return await db.get(Room, room_id)


async def lock_hold(db: AsyncSession, hold_id: int) -> SlotHold | None:
    return (await db.execute(select(SlotHold).where(SlotHold.id == hold_id).with_for_update())).scalar_one_or_none()


async def occupancy(db: AsyncSession, occupancy_id: int) -> Occupancy | None:
    return await db.get(Occupancy, occupancy_id)


async def session_by_lead(db: AsyncSession, lead_id: int) -> Session | None:
    return (await db.execute(select(Session).where(Session.lead_id == lead_id))).scalar_one_or_none()


async def expire_holds(db: AsyncSession, *, now: datetime) -> int:
    """Mark every hold past its expiry as expired and free its time."""
    expired = await db.execute(
        update(SlotHold)
        .where(SlotHold.status == "active", SlotHold.expires_at <= now)
        .values(status="expired")
        .returning(SlotHold.occupancy_id)
    )
    ids = [i for i in expired.scalars() if i is not None]
    if ids:
        await db.execute(update(Occupancy).where(Occupancy.id.in_(ids)).values(active=False))
    return len(ids)
