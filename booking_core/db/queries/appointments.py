"""Queries behind the appointments list: visits patients booked that staff have not accepted yet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.queries.calendar import examinations_of
from booking_core.db.tables import Branch, Doctor, Patient, Room, Session


@dataclass(frozen=True)
class AppointmentRow:
    session: Session
    patient_name: str
    patient_phone: str | None
    doctor_name: str
    room_name: str
    branch_name: str
    branch_tz: str
    examinations: list[str]


async def not_accepted(
    db: AsyncSession, *, branch_id: int | None, doctor_id: int | None, after: datetime, limit: int
) -> list[AppointmentRow]:
    """Waiting, not yet accepted visits that end after ``after``, newest booking first."""
    stmt = (
        select(Session, Patient.name, Patient.phone_e164, Doctor.name, Room.name, Branch.name, Branch.tz)
        .join(Patient, Patient.id == Session.patient_id)
        .join(Doctor, Doctor.id == Session.doctor_id)
        .join(Room, Room.id == Session.room_id)
        .join(Branch, Branch.id == Session.branch_id)
        .where(Session.status == "waiting", Session.accepted.is_(False), Session.ends_at > after)
        .order_by(Session.created_at.desc(), Session.id.desc())
        .limit(limit)
    )
    if branch_id is not None:
        stmt = stmt.where(Session.branch_id == branch_id)
    if doctor_id is not None:
        stmt = stmt.where(Session.doctor_id == doctor_id)
    rows = list((await db.execute(stmt)).all())
    names = await examinations_of(db, [row[0].id for row in rows])
    return [AppointmentRow(*row, examinations=names[row[0].id]) for row in rows]


async def mark_accepted(db: AsyncSession, session_id: int) -> bool:
    """Accept a waiting visit that was not yet; False when it was not (already accepted, or no longer waiting)."""
    result = await db.execute(
        update(Session)
        .where(Session.id == session_id, Session.status == "waiting", Session.accepted.is_(False))
        .values(accepted=True)
        .returning(Session.id)
    )
    return result.scalar_one_or_none() is not None
