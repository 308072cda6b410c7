"""Queries behind the staff calendar: one branch's day (hours, attendance, rooms, visits, claims, blackouts), and
blackout blocks themselves (add, find, remove)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import (
    AttendanceOverride,
    BlackoutBlock,
    Branch,
    BranchHours,
    Doctor,
    DoctorAttendance,
    Examination,
    ExaminationBranch,
    Occupancy,
    Patient,
    Room,
    ScheduleApplication,
    Session,
    SessionLine,
)


@dataclass(frozen=True)
class SessionRow:
    """A visit on the calendar: the session with its patient's name and its examinations' names."""

    session: Session
    patient_name: str
    examinations: list[str]


@dataclass(frozen=True)
class ClaimRow:
    """An active time claim (with its buffers): a session's or a chat hold's."""

    id: int
    branch_id: int
    doctor_id: int
    room_id: int
    start: datetime
    end: datetime
    kind: str


async def get_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def branch_hours(db: AsyncSession, branch_id: int, weekday: int) -> list[tuple[time, time]]:
    rows = await db.execute(
        select(BranchHours.opens, BranchHours.closes).where(
            BranchHours.branch_id == branch_id, BranchHours.weekday == weekday
        )
    )
    return [(opens, closes) for opens, closes in rows]


async def attendance(db: AsyncSession, branch_id: int, day: date) -> tuple[list[Any], list[Any], list[Any]]:
    """(weekly rows, that day's overrides, that day's accepted applications) at the branch, each with doctor_id."""
    weekly = await db.execute(
        select(DoctorAttendance.doctor_id, DoctorAttendance.weekday, DoctorAttendance.starts, DoctorAttendance.ends)
        .where(DoctorAttendance.branch_id == branch_id, DoctorAttendance.weekday == day.weekday())
    )  # fmt: skip
    overrides = await db.execute(
        select(AttendanceOverride.doctor_id, AttendanceOverride.starts, AttendanceOverride.ends).where(
            AttendanceOverride.branch_id == branch_id, AttendanceOverride.day == day
        )
    )
    applications = await db.execute(
        select(ScheduleApplication.doctor_id, ScheduleApplication.starts, ScheduleApplication.ends).where(
            ScheduleApplication.branch_id == branch_id,
            ScheduleApplication.day == day,
            ScheduleApplication.status == "accepted",
        )
    )
    return list(weekly.all()), list(overrides.all()), list(applications.all())


async def doctors(db: AsyncSession, ids: list[int] | None = None) -> list[Doctor]:
    """Doctors by name: the given ones (active or not: their visits still show), else every active doctor."""
    stmt = select(Doctor).order_by(Doctor.name, Doctor.id)
    stmt = stmt.where(Doctor.id.in_(ids)) if ids is not None else stmt.where(Doctor.active.is_(True))
    return list((await db.execute(stmt)).scalars())


async def rooms(db: AsyncSession, branch_id: int) -> list[Room]:
    stmt = select(Room).where(Room.branch_id == branch_id, Room.active.is_(True)).order_by(Room.name, Room.id)
    return list((await db.execute(stmt)).scalars())


async def offered_examinations(db: AsyncSession, branch_id: int) -> list[Examination]:
    """The active examinations offered at the branch, by name."""
    stmt = (
        select(Examination)
        .join(ExaminationBranch, ExaminationBranch.examination_id == Examination.id)
        .where(ExaminationBranch.branch_id == branch_id, Examination.active.is_(True))
        .order_by(Examination.name, Examination.id)
    )
    return list((await db.execute(stmt)).scalars())


async def get_room(db: AsyncSession, room_id: int) -> Room | None:
    return await db.get(Room, room_id)


async def get_doctor(db: AsyncSession, doctor_id: int) -> Doctor | None:
    return await db.get(Doctor, doctor_id)


async def sessions_between(db: AsyncSession, branch_id: int, start: datetime, end: datetime) -> list[SessionRow]:
    """The branch's visits meeting ``[start, end)`` that were not cancelled, by start."""
    found = await db.execute(
        select(Session, Patient.name)
        .join(Patient, Patient.id == Session.patient_id)
        .where(
            Session.branch_id == branch_id,
            Session.status != "cancelled",
            Session.starts_at < end,
            Session.ends_at > start,
        )
        .order_by(Session.starts_at, Session.id)
    )
    rows = list(found.all())
    names = await examinations_of(db, [session.id for session, _ in rows])
    return [SessionRow(session, patient_name, names[session.id]) for session, patient_name in rows]


async def examinations_of(db: AsyncSession, session_ids: list[int]) -> dict[int, list[str]]:
    """Each session's examination names in the lines' order (an empty list for a session without any)."""
    names: dict[int, list[str]] = {session_id: [] for session_id in session_ids}
    if names:
        lines = await db.execute(
            select(SessionLine.session_id, SessionLine.name)
            .where(SessionLine.session_id.in_(names), SessionLine.kind == "examination")
            .order_by(SessionLine.session_id, SessionLine.position, SessionLine.id)
        )
        for session_id, name in lines:
            names[session_id].append(name)
    return names


async def claims(
    db: AsyncSession, *, doctor_ids: list[int], room_ids: list[int], start: datetime, end: datetime, now: datetime
) -> list[ClaimRow]:
    """Active claims of these doctors or rooms meeting the period (expired holds no longer count)."""
    if not doctor_ids and not room_ids:
        return []
    found = await db.execute(
        select(Occupancy.id, Occupancy.branch_id, Occupancy.doctor_id, Occupancy.room_id, Occupancy.during,
               Occupancy.kind)
        .where(
            Occupancy.active.is_(True),
            or_(Occupancy.expires_at.is_(None), Occupancy.expires_at > now),
            Occupancy.during.op("&&")(Range(start, end, bounds="[)")),
            or_(Occupancy.doctor_id.in_(doctor_ids), Occupancy.room_id.in_(room_ids)),
        )
    )  # fmt: skip
    rows = []
    for claim_id, branch_id, doctor_id, room_id, during, kind in found:
        assert isinstance(during, Range) and during.lower is not None and during.upper is not None
        rows.append(ClaimRow(claim_id, branch_id, doctor_id, room_id, during.lower, during.upper, kind))
    return rows


async def session_claim_ids(db: AsyncSession, occupancy_ids: list[int]) -> set[int]:
    """Which of these claims belong to sessions (the rest are chat holds)."""
    if not occupancy_ids:
        return set()
    found = await db.execute(select(Session.occupancy_id).where(Session.occupancy_id.in_(occupancy_ids)))
    return {row for row in found.scalars() if row is not None}


async def blackouts_between(
    db: AsyncSession, branch_id: int, doctor_ids: list[int], start: datetime, end: datetime
) -> list[BlackoutBlock]:
    """Blackouts meeting the period: the branch's own (any scope) and those of these doctors anywhere."""
    found = await db.execute(
        select(BlackoutBlock)
        .where(
            BlackoutBlock.starts_at < end,
            BlackoutBlock.ends_at > start,
            or_(
                BlackoutBlock.branch_id == branch_id,
                and_(BlackoutBlock.scope == "doctor", BlackoutBlock.doctor_id.in_(doctor_ids)),
            ),
        )
        .order_by(BlackoutBlock.starts_at, BlackoutBlock.id)
    )
    return list(found.scalars())


# --- blackout blocks


async def add_blackout(db: AsyncSession, **values: Any) -> BlackoutBlock:
    block = BlackoutBlock(**values)
    db.add(block)
    await db.flush()
    return block


async def get_blackout(db: AsyncSession, blackout_id: int) -> BlackoutBlock | None:
    return await db.get(BlackoutBlock, blackout_id)


async def delete_blackout(db: AsyncSession, blackout_id: int) -> BlackoutBlock | None:
    found = await db.execute(delete(BlackoutBlock).where(BlackoutBlock.id == blackout_id).returning(BlackoutBlock))
    return found.scalar_one_or_none()


async def active_sessions_meeting(
    db: AsyncSession,
    *,
    branch_id: int,
    start: datetime,
    end: datetime,
    doctor_id: int | None = None,
    room_id: int | None = None,
) -> int:
    """How many waiting or open visits a blackout of this scope would cover (a doctor's at any branch)."""
    stmt = select(func.count(Session.id)).where(
        Session.status.in_(("waiting", "open")), Session.starts_at < end, Session.ends_at > start
    )
    if doctor_id is not None:
        stmt = stmt.where(Session.doctor_id == doctor_id)
    else:
        stmt = stmt.where(Session.branch_id == branch_id)
        if room_id is not None:
            stmt = stmt.where(Session.room_id == room_id)
    return int((await db.execute(stmt)).scalar_one())
