"""Everything availability needs for one branch, examination and period, in a fixed number of queries.

The number of queries does not depend on the length of the period or the number of doctors (B4 checks it):
branch + hours, examination + its branches/doctors/windows, attendance (weekly, overrides, accepted applications),
rooms, busy claims and blackouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Executable, and_, or_, select
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
    ExaminationDoctor,
    ExaminationWindow,
    Occupancy,
    Room,
    ScheduleApplication,
)


@dataclass(frozen=True)
class AvailabilityRows:
    branch: Branch
    hours: list[BranchHours]
    examination: Examination
    offered_at: set[int]
    windows: list[ExaminationWindow]
    doctors: list[Doctor]
    weekly: list[Any]  # (doctor_id, weekday, starts, ends)
    overrides: list[Any]  # (doctor_id, day, starts, ends)
    applications: list[Any]  # accepted only: (doctor_id, day, starts, ends)
    rooms: list[Room]
    busy: list[Any]  # (doctor_id, room_id, during, kind)
    blackouts: list[BlackoutBlock]


async def _all(db: AsyncSession, statement: Executable) -> list[Any]:
    return list((await db.execute(statement)).scalars())


async def _rows(db: AsyncSession, statement: Executable) -> list[Any]:
    """Plain rows (named tuples): the bulk of the data, read without the ORM's per-object bookkeeping."""
    return list((await db.execute(statement)).all())


async def load_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def load_examination(db: AsyncSession, examination_id: int) -> Examination | None:
    return await db.get(Examination, examination_id)


async def load(
    db: AsyncSession,
    *,
    branch: Branch,
    examination: Examination,
    doctor_ids: list[int] | None,
    first_day: date,
    last_day: date,
    start: datetime,
    end: datetime,
    now: datetime,
) -> AvailabilityRows:
    """Rows for the period; ``doctor_ids`` None = every active doctor who performs the examination."""
    hours = await _all(db, select(BranchHours).where(BranchHours.branch_id == branch.id))
    offered = set(
        await _all(db, select(ExaminationBranch.branch_id).where(ExaminationBranch.examination_id == examination.id))
    )
    windows = await _all(db, select(ExaminationWindow).where(ExaminationWindow.examination_id == examination.id))
    doctor_query = (
        select(Doctor)
        .join(ExaminationDoctor, ExaminationDoctor.doctor_id == Doctor.id)
        .where(ExaminationDoctor.examination_id == examination.id, Doctor.active.is_(True))
        .order_by(Doctor.id)
    )
    if doctor_ids is not None:
        doctor_query = doctor_query.where(Doctor.id.in_(doctor_ids))
    doctors = await _all(db, doctor_query)
    ids = [d.id for d in doctors]
    weekly = await _rows(
        db,
        select(
            DoctorAttendance.doctor_id, DoctorAttendance.weekday, DoctorAttendance.starts, DoctorAttendance.ends
        ).where(DoctorAttendance.branch_id == branch.id, DoctorAttendance.doctor_id.in_(ids)),
    )
    overrides = await _rows(
        db,
        select(
            AttendanceOverride.doctor_id, AttendanceOverride.day, AttendanceOverride.starts, AttendanceOverride.ends
        ).where(
            AttendanceOverride.branch_id == branch.id,
            AttendanceOverride.doctor_id.in_(ids),
            AttendanceOverride.day.between(first_day, last_day),
        ),
    )
    applications = await _rows(
        db,
        select(
            ScheduleApplication.doctor_id, ScheduleApplication.day, ScheduleApplication.starts, ScheduleApplication.ends
        ).where(
            ScheduleApplication.branch_id == branch.id,
            ScheduleApplication.doctor_id.in_(ids),
            ScheduleApplication.status == "accepted",
            ScheduleApplication.day.between(first_day, last_day),
        ),
    )
    rooms = await _all(db, select(Room).where(Room.branch_id == branch.id, Room.active.is_(True)).order_by(Room.id))
    room_ids = [r.id for r in rooms]
    period = Range(start, end, bounds="[)")
    busy = await _rows(
        db,
        select(Occupancy.doctor_id, Occupancy.room_id, Occupancy.during, Occupancy.kind).where(
            Occupancy.active.is_(True),
            or_(Occupancy.expires_at.is_(None), Occupancy.expires_at > now),
            Occupancy.during.op("&&")(period),
            or_(Occupancy.doctor_id.in_(ids), Occupancy.room_id.in_(room_ids)),
        ),
    )
    blackouts = await _all(
        db,
        select(BlackoutBlock).where(
            BlackoutBlock.starts_at < end,
            BlackoutBlock.ends_at > start,
            or_(
                BlackoutBlock.branch_id == branch.id,
                and_(BlackoutBlock.scope == "doctor", BlackoutBlock.doctor_id.in_(ids)),
            ),
        ),
    )
    return AvailabilityRows(
        branch=branch, hours=hours, examination=examination, offered_at=offered, windows=windows,
        doctors=doctors, weekly=weekly, overrides=overrides, applications=applications, rooms=rooms,
        busy=busy, blackouts=blackouts,
    )  # fmt: skip


async def doctor_names(db: AsyncSession, ids: list[int]) -> dict[int, str]:
    rows = await db.execute(select(Doctor.id, Doctor.name).where(Doctor.id.in_(ids)))
    return {row.id: row.name for row in rows}


async def room_names(db: AsyncSession, ids: list[int]) -> dict[int, str]:
    rows = await db.execute(select(Room.id, Room.name).where(Room.id.in_(ids)))
    return {row.id: row.name for row in rows}


def range_bounds(value: object) -> tuple[datetime, datetime]:
    """(lower, upper) of a tstzrange loaded from the database."""
    assert isinstance(value, Range) and value.lower is not None and value.upper is not None
    return value.lower, value.upper


__all__ = ["AvailabilityRows", "doctor_names", "load", "load_branch", "load_examination", "range_bounds"]
