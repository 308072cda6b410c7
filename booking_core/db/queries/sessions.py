"""Queries over booked sessions: row locks for status changes, their lines, freeing their time, deleting them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import (
    Branch,
    Doctor,
    Examination,
    ExaminationBranch,
    Occupancy,
    Patient,
    Room,
    Session,
    SessionLine,
)


async def get_session(db: AsyncSession, session_id: int) -> Session | None:
    return await db.get(Session, session_id)


async def lock_session(db: AsyncSession, session_id: int) -> Session | None:
    """``SELECT ... FOR UPDATE`` the session: concurrent status changes queue behind this one and see its result.

    ``populate_existing`` makes the locked read overwrite whatever this unit of work had cached, so the caller
    decides on the row as it is now, not as it was before another transaction changed it.
    """
    result = await db.execute(
        select(Session).where(Session.id == session_id).with_for_update().execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def lock_waiting_sessions_ended_by(
    db: AsyncSession, now: datetime, *, branch_id: int | None = None, limit: int = 500
) -> list[Session]:
    """Waiting sessions that ended by ``now``, locked; rows another transaction holds are skipped, not waited on.

    Two sweeps running at once therefore split the work instead of completing a session twice.
    """
    stmt = select(Session).where(Session.status == "waiting", Session.ends_at <= now)
    if branch_id is not None:
        stmt = stmt.where(Session.branch_id == branch_id)
    stmt = (
        stmt.order_by(Session.ends_at, Session.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list((await db.execute(stmt)).scalars())


async def update_session(db: AsyncSession, session_id: int, values: dict[str, Any]) -> None:
    await db.execute(update(Session).where(Session.id == session_id).values(**values))


async def release_occupancy(db: AsyncSession, occupancy_id: int | None) -> None:
    """Mark the session's time claim inactive: the exclusion constraints stop seeing it, so the slot is free."""
    if occupancy_id is None:
        return
    await db.execute(update(Occupancy).where(Occupancy.id == occupancy_id).values(active=False))


async def occupancy_active(db: AsyncSession, occupancy_id: int) -> bool | None:
    result = await db.execute(select(Occupancy.active).where(Occupancy.id == occupancy_id))
    return result.scalar_one_or_none()


async def participants(db: AsyncSession, session: Session) -> tuple[Branch, Patient, Doctor, Room]:
    """The branch, patient, doctor and room of a session (all required by foreign keys)."""
    branch = await db.get(Branch, session.branch_id)
    patient = await db.get(Patient, session.patient_id)
    doctor = await db.get(Doctor, session.doctor_id)
    room = await db.get(Room, session.room_id)
    assert branch and patient and doctor and room  # foreign keys guarantee them
    return branch, patient, doctor, room


async def get_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def get_patient(db: AsyncSession, patient_id: int) -> Patient | None:
    return await db.get(Patient, patient_id)


async def lines(db: AsyncSession, session_id: int) -> list[SessionLine]:
    result = await db.execute(
        select(SessionLine).where(SessionLine.session_id == session_id).order_by(SessionLine.position, SessionLine.id)
    )
    return list(result.scalars())


async def add_line(db: AsyncSession, session_id: int, values: dict[str, Any]) -> SessionLine:
    """Append a line after the session's last one (callers hold the session lock, so positions do not race)."""
    last = await db.execute(
        select(func.coalesce(func.max(SessionLine.position), -1)).where(SessionLine.session_id == session_id)
    )
    line = SessionLine(session_id=session_id, position=int(last.scalar_one()) + 1, **values)
    db.add(line)
    await db.flush()
    return line


async def delete_line(db: AsyncSession, session_id: int, line_id: int) -> SessionLine | None:
    """Delete one line of this session; None when the id is not one of its lines."""
    result = await db.execute(
        delete(SessionLine)
        .where(SessionLine.id == line_id, SessionLine.session_id == session_id)
        .returning(SessionLine)
    )
    return result.scalar_one_or_none()


async def set_line_quantity(db: AsyncSession, session_id: int, line_id: int, quantity: int) -> SessionLine | None:
    """Change one line's quantity; None when the id is not one of this session's lines."""
    result = await db.execute(
        update(SessionLine)
        .where(SessionLine.id == line_id, SessionLine.session_id == session_id)
        .values(quantity=quantity)
        .returning(SessionLine)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def examinations(db: AsyncSession, ids: Sequence[int]) -> dict[int, Examination]:
    if not ids:
        return {}
    result = await db.execute(select(Examination).where(Examination.id.in_(set(ids))))
    return {exam.id: exam for exam in result.scalars()}


async def examinations_offered(db: AsyncSession, branch_id: int, ids: Sequence[int]) -> dict[int, Examination]:
    """Active examinations among ``ids`` that the branch offers (an id from elsewhere is simply missing)."""
    if not ids:
        return {}
    result = await db.execute(
        select(Examination)
        .join(ExaminationBranch, ExaminationBranch.examination_id == Examination.id)
        .where(
            Examination.id.in_(set(ids)),
            Examination.active.is_(True),
            ExaminationBranch.branch_id == branch_id,
        )
    )
    return {exam.id: exam for exam in result.scalars()}


async def delete_session(db: AsyncSession, session: Session) -> None:
    """Delete the session (lines, queue entry and reminders cascade), then its time claim."""
    occupancy_id = session.occupancy_id
    await db.execute(delete(Session).where(Session.id == session.id))
    if occupancy_id is not None:
        await db.execute(delete(Occupancy).where(Occupancy.id == occupancy_id))
