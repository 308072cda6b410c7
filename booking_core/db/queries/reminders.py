"""Reminder rows: the truth that Redis schedules are rebuilt from, and the atomic claim that sends each one once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Branch, Doctor, Patient, Reminder, Session, SessionLine


@dataclass(frozen=True)
class VisitRow:
    """A session with what a reminder says about it."""

    session: Session
    branch: Branch
    doctor_name: str
    patient: Patient
    examination_name: str


async def session(db: AsyncSession, session_id: int) -> Session | None:
    """The session as the database has it now (a raw UPDATE of its times earlier in the transaction included)."""
    result = await db.execute(select(Session).where(Session.id == session_id).execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def lock_for_session(db: AsyncSession, session_id: int) -> list[Reminder]:
    """The session's reminder rows, locked (``FOR UPDATE``) and re-read, oldest first."""
    result = await db.execute(
        select(Reminder)
        .where(Reminder.session_id == session_id)
        .order_by(Reminder.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def insert_scheduled(db: AsyncSession, *, session_id: int, kind: str, due_at: datetime) -> int | None:
    """A new scheduled row; None when the session already has one of this kind (a concurrent insert won)."""
    stmt = (
        insert(Reminder)
        .values(session_id=session_id, kind=kind, due_at=due_at, status="scheduled", note="")
        .on_conflict_do_nothing(index_elements=[Reminder.session_id, Reminder.kind])
        .returning(Reminder.id)
    )
    return (await db.execute(stmt)).scalar_one_or_none()


async def update_reminder(db: AsyncSession, reminder_id: int, values: dict[str, Any]) -> None:
    await db.execute(update(Reminder).where(Reminder.id == reminder_id).values(**values))


async def claim(db: AsyncSession, reminder_id: int, *, due_by: datetime) -> Reminder | None:
    """Mark a scheduled, due row 'sent' and return it; None when it is not scheduled (any more) or not yet due.

    One ``UPDATE ... WHERE status = 'scheduled' ... RETURNING``: of two jobs for the same row only one gets it.
    """
    result = await db.execute(
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == "scheduled", Reminder.due_at <= due_by)
        .values(status="sent")
        .returning(Reminder)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def scheduled(
    db: AsyncSession, *, session_ids: Sequence[int] | None = None, due_after: datetime | None = None
) -> list[tuple[int, datetime]]:
    """(id, due_at) of scheduled rows, soonest first; only of ``session_ids`` / due after ``due_after`` if given."""
    stmt = select(Reminder.id, Reminder.due_at).where(Reminder.status == "scheduled")
    if session_ids is not None:
        stmt = stmt.where(Reminder.session_id.in_(list(session_ids)))
    if due_after is not None:
        stmt = stmt.where(Reminder.due_at > due_after)
    result = await db.execute(stmt.order_by(Reminder.due_at, Reminder.id))
    return [(row_id, due_at) for row_id, due_at in result.all()]


async def due_ids(db: AsyncSession, *, due_by: datetime, limit: int) -> list[int]:
    """Scheduled rows whose time has come, oldest first."""
    result = await db.execute(
        select(Reminder.id)
        .where(Reminder.status == "scheduled", Reminder.due_at <= due_by)
        .order_by(Reminder.due_at, Reminder.id)
        .limit(limit)
    )
    return list(result.scalars())


async def visit(db: AsyncSession, session_id: int) -> VisitRow | None:
    """The session, its branch, doctor, patient and first examination's name."""
    result = await db.execute(
        select(Session, Branch, Doctor.name, Patient)
        .join(Branch, Branch.id == Session.branch_id)
        .join(Doctor, Doctor.id == Session.doctor_id)
        .join(Patient, Patient.id == Session.patient_id)
        .where(Session.id == session_id)
    )
    row = result.first()
    if row is None:
        return None
    found, branch, doctor_name, patient = row
    exam = await db.execute(
        select(SessionLine.name)
        .where(SessionLine.session_id == session_id, SessionLine.kind == "examination")
        .order_by(SessionLine.position, SessionLine.id)
        .limit(1)
    )
    return VisitRow(found, branch, doctor_name, patient, exam.scalar_one_or_none() or "")


async def skip_if_scheduled(db: AsyncSession, reminder_id: int, note: str) -> bool:
    """Mark a row that is still scheduled 'skipped' with ``note``; False when it was not scheduled any more."""
    result = await db.execute(
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == "scheduled")
        .values(status="skipped", note=note)
        .returning(Reminder.id)
    )
    return result.scalar_one_or_none() is not None
