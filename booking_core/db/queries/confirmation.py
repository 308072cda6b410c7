"""Queries behind the confirmation link, the check-in QR and the rating: one visit with what the page shows,
the guarded one-way updates (confirmed once, rated once) and the latest follow-up message of a chat."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import (
    Branch,
    Doctor,
    Examination,
    Lead,
    Patient,
    QueueEntry,
    Session,
    SessionLine,
)


@dataclass(frozen=True)
class VisitRecord:
    """A session and everything its confirmation page and messages show."""

    session: Session
    branch: Branch
    doctor: Doctor
    patient: Patient
    examinations: list[Examination]  # in the order of the session's lines
    checked_in: bool


async def visit(db: AsyncSession, session_id: int, *, lock: bool = False) -> VisitRecord | None:
    """The session with its branch, doctor, patient and examinations; ``lock``: ``FOR UPDATE`` the session row,
    so a change decided on it (cancel, reschedule) sees no concurrent status change in between."""
    stmt = select(Session).where(Session.id == session_id)
    if lock:
        stmt = stmt.with_for_update()
    # populate_existing: a row changed in SQL earlier in this unit of work is read as it is now.
    session = (await db.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
    if session is None:
        return None
    branch = await db.get(Branch, session.branch_id)
    doctor = await db.get(Doctor, session.doctor_id)
    patient = await db.get(Patient, session.patient_id)
    assert branch is not None and doctor is not None and patient is not None  # foreign keys
    exams = (
        await db.execute(
            select(Examination)
            .join(SessionLine, SessionLine.examination_id == Examination.id)
            .where(SessionLine.session_id == session_id, SessionLine.kind == "examination")
            .order_by(SessionLine.position, SessionLine.id)
        )
    ).scalars()
    queued = (await db.execute(select(exists().where(QueueEntry.session_id == session_id)))).scalar_one()
    return VisitRecord(session, branch, doctor, patient, list(dict.fromkeys(exams)), bool(queued))


async def mark_confirmed(db: AsyncSession, session_id: int, *, now: datetime) -> bool:
    """Accept and confirm a waiting, not yet confirmed session; False when it was not (already, or not waiting)."""
    result = await db.execute(
        update(Session)
        .where(Session.id == session_id, Session.status == "waiting", Session.confirmed_at.is_(None))
        .values(accepted=True, confirmed_at=now)
        .returning(Session.id)
    )
    return result.scalar_one_or_none() is not None


async def store_rating(db: AsyncSession, session_id: int, *, patient_id: int, rating: int) -> bool:
    """Store the patient's rating of their completed visit, once; False when it was not stored."""
    result = await db.execute(
        update(Session)
        .where(
            Session.id == session_id,
            Session.patient_id == patient_id,
            Session.status == "completed",
            Session.rating.is_(None),
        )
        .values(rating=rating)
        .returning(Session.id)
    )
    return result.scalar_one_or_none() is not None


async def session(db: AsyncSession, session_id: int) -> Session | None:
    result = await db.execute(select(Session).where(Session.id == session_id).execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def lead_channel(db: AsyncSession, lead_id: int | None) -> str | None:
    if lead_id is None:
        return None
    return (await db.execute(select(Lead.channel).where(Lead.id == lead_id))).scalar_one_or_none()
