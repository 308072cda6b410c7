"""Queries over the waiting-room queue: the daily token counter, queue entries and the rows around them.

The concurrency guards live here: the counter is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (the
counter row stays locked until the check-in commits, so numbers never repeat or skip), and every change to a
day's order or a doctor's current patient first takes row locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.queries.calendar import examinations_of
from booking_core.db.tables import Branch, Doctor, Patient, QueueCounter, QueueEntry, Session

ACTIVE = ("waiting", "open")


@dataclass(frozen=True)
class QueueRow:
    """One queue entry with its session and the names the board shows."""

    entry: QueueEntry
    session: Session
    patient_name: str
    doctor_name: str


async def load_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def load_doctor(db: AsyncSession, doctor_id: int) -> Doctor | None:
    return await db.get(Doctor, doctor_id)


async def lock_doctor(db: AsyncSession, doctor_id: int) -> Doctor | None:
    """Serialise "call next" per doctor (NO KEY UPDATE: rows that merely reference the doctor are not blocked)."""
    result = await db.execute(
        select(Doctor)
        .where(Doctor.id == doctor_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def lock_session(db: AsyncSession, session_id: int) -> Session | None:
    """The session row, locked for this transaction and re-read (a concurrent change is seen, not overwritten)."""
    result = await db.execute(
        select(Session)
        .where(Session.id == session_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def session_id_by_booking_code(db: AsyncSession, booking_code: str) -> int | None:
    result = await db.execute(select(Session.id).where(Session.booking_code == booking_code))
    return result.scalar_one_or_none()


async def session_id_by_code_and_phone(db: AsyncSession, booking_code: str, phone_e164: str) -> int | None:
    """One lookup for both facts, so a wrong phone and a wrong code look the same to the caller."""
    result = await db.execute(
        select(Session.id)
        .join(Patient, Patient.id == Session.patient_id)
        .where(Session.booking_code == booking_code, Patient.phone_e164 == phone_e164)
    )
    return result.scalar_one_or_none()


async def entry_for_session(db: AsyncSession, session_id: int) -> QueueEntry | None:
    result = await db.execute(select(QueueEntry).where(QueueEntry.session_id == session_id))
    return result.scalar_one_or_none()


async def load_entry(db: AsyncSession, entry_id: int) -> QueueEntry | None:
    return await db.get(QueueEntry, entry_id)


async def next_number(db: AsyncSession, branch_id: int, day: date) -> int:
    """The branch's next token number for ``day``: atomic, and the counter row stays locked until commit."""
    stmt = (
        insert(QueueCounter)
        .values(branch_id=branch_id, day=day, last_number=1)
        .on_conflict_do_update(
            index_elements=[QueueCounter.branch_id, QueueCounter.day],
            set_={"last_number": QueueCounter.last_number + 1},
        )
        .returning(QueueCounter.last_number)
    )
    return int((await db.execute(stmt)).scalar_one())


async def max_active_rank(db: AsyncSession, branch_id: int, day: date) -> int | None:
    """The highest manual rank among the day's waiting/open entries (read after ``next_number``, so it is fresh)."""
    result = await db.execute(
        select(func.max(QueueEntry.rank))
        .join(Session, Session.id == QueueEntry.session_id)
        .where(QueueEntry.branch_id == branch_id, QueueEntry.day == day, Session.status.in_(ACTIVE))
    )
    value = result.scalar_one_or_none()
    return None if value is None else int(value)


async def add_entry(
    db: AsyncSession,
    *,
    session: Session,
    day: date,
    number: int,
    token: str,
    arrived_at: datetime,
    rank: int,
) -> QueueEntry:
    entry = QueueEntry(
        session_id=session.id,
        branch_id=session.branch_id,
        doctor_id=session.doctor_id,
        day=day,
        number=number,
        token=token,
        arrived_at=arrived_at,
        rank=rank,
    )
    db.add(entry)
    await db.flush()
    return entry


async def day_rows(
    db: AsyncSession, branch_id: int, day: date, *, lock: bool = False, active_only: bool = False
) -> list[QueueRow]:
    """The day's queue entries of a branch with their sessions; ``lock`` takes ``FOR UPDATE`` on the entries.

    The doctor is the session's (a session moved to another doctor after check-in queues for the new one).

    Locking every entry of the day serialises reorders and "call next" on that day's queue, while check-ins
    (which only insert) go on.
    """
    stmt = (
        select(QueueEntry, Session, Patient.name, Doctor.name)
        .join(Session, Session.id == QueueEntry.session_id)
        .join(Patient, Patient.id == Session.patient_id)
        .join(Doctor, Doctor.id == Session.doctor_id)
        .where(QueueEntry.branch_id == branch_id, QueueEntry.day == day)
        .order_by(QueueEntry.id)
        .execution_options(populate_existing=True)
    )
    if active_only:
        stmt = stmt.where(Session.status.in_(ACTIVE))
    if lock:
        stmt = stmt.with_for_update(of=QueueEntry)
    result = await db.execute(stmt)
    return [QueueRow(entry, session, patient or "", doctor) for entry, session, patient, doctor in result.all()]


async def open_session_ids(db: AsyncSession, doctor_id: int) -> list[int]:
    """The doctor's sessions that are open right now (in any branch: a doctor sees one patient at a time)."""
    result = await db.execute(
        select(Session.id).where(Session.doctor_id == doctor_id, Session.status == "open").order_by(Session.id)
    )
    return list(result.scalars())


async def examination_names(db: AsyncSession, session_ids: list[int]) -> dict[int, str]:
    """Each session's examinations as one text ("General consultation, Vaccination"), in the lines' order."""
    names = await examinations_of(db, session_ids)
    return {session_id: ", ".join(found) for session_id, found in names.items() if found}


@dataclass(frozen=True)
class TrackedVisit:
    """A visit as the public queue tracker needs it: the session, whose it is, with whom, where."""

    session: Session
    patient_name: str
    doctor_name: str
    branch: Branch


async def tracked_visit(db: AsyncSession, session_id: int) -> TrackedVisit | None:
    result = await db.execute(
        select(Session, Patient.name, Doctor.name, Branch)
        .join(Patient, Patient.id == Session.patient_id)
        .join(Doctor, Doctor.id == Session.doctor_id)
        .join(Branch, Branch.id == Session.branch_id)
        .where(Session.id == session_id)
    )
    row = result.one_or_none()
    if row is None:
        return None
    session, patient, doctor, branch = row
    return TrackedVisit(session, patient or "", doctor, branch)


async def active_queue_days(db: AsyncSession, since: date) -> list[tuple[int, date]]:
    """(branch, day) of every queue with someone waiting or with the doctor, from ``since`` on."""
    result = await db.execute(
        select(QueueEntry.branch_id, QueueEntry.day)
        .join(Session, Session.id == QueueEntry.session_id)
        .where(QueueEntry.day >= since, Session.status.in_(ACTIVE))
        .distinct()
        .order_by(QueueEntry.branch_id, QueueEntry.day)
    )
    return [(branch_id, day) for branch_id, day in result.all()]
