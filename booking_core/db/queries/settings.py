"""Queries behind the settings pages: branch hours, doctor attendance (weekly and dated), settings rows to edit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, time
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import AttendanceOverride, Branch, BranchHours, ClinicSetting, Doctor, DoctorAttendance

#: A weekly row: (weekday, starts, ends).
WeeklyRow = tuple[int, time, time]


async def lock_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    """The branch, locked: two edits of its hours or attendance apply one after the other."""
    stmt = select(Branch).where(Branch.id == branch_id).with_for_update().execution_options(populate_existing=True)
    return (await db.execute(stmt)).scalar_one_or_none()


async def get_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def branch_hours(db: AsyncSession, branch_id: int) -> list[WeeklyRow]:
    rows = await db.execute(
        select(BranchHours.weekday, BranchHours.opens, BranchHours.closes)
        .where(BranchHours.branch_id == branch_id)
        .order_by(BranchHours.weekday, BranchHours.opens)
    )
    return [(r.weekday, r.opens, r.closes) for r in rows]


async def replace_branch_hours(db: AsyncSession, branch_id: int, rows: Iterable[WeeklyRow]) -> None:
    await db.execute(delete(BranchHours).where(BranchHours.branch_id == branch_id))
    db.add_all(BranchHours(branch_id=branch_id, weekday=d, opens=s, closes=e) for d, s, e in rows)
    await db.flush()


async def active_doctors(db: AsyncSession) -> list[Doctor]:
    stmt = select(Doctor).where(Doctor.active.is_(True)).order_by(Doctor.name, Doctor.id)
    return list((await db.execute(stmt)).scalars())


async def get_doctor(db: AsyncSession, doctor_id: int) -> Doctor | None:
    return await db.get(Doctor, doctor_id)


async def attendance(db: AsyncSession, branch_id: int, doctor_id: int | None = None) -> list[tuple[int, WeeklyRow]]:
    """(doctor_id, (weekday, starts, ends)) of the branch's weekly attendance, optionally of one doctor."""
    stmt = (
        select(DoctorAttendance.doctor_id, DoctorAttendance.weekday, DoctorAttendance.starts, DoctorAttendance.ends)
        .where(DoctorAttendance.branch_id == branch_id)
        .order_by(DoctorAttendance.doctor_id, DoctorAttendance.weekday, DoctorAttendance.starts)
    )
    if doctor_id is not None:
        stmt = stmt.where(DoctorAttendance.doctor_id == doctor_id)
    return [(r.doctor_id, (r.weekday, r.starts, r.ends)) for r in await db.execute(stmt)]


async def replace_attendance(db: AsyncSession, doctor_id: int, branch_id: int, rows: Iterable[WeeklyRow]) -> None:
    await db.execute(
        delete(DoctorAttendance).where(DoctorAttendance.doctor_id == doctor_id, DoctorAttendance.branch_id == branch_id)
    )
    db.add_all(
        DoctorAttendance(doctor_id=doctor_id, branch_id=branch_id, weekday=d, starts=s, ends=e) for d, s, e in rows
    )
    await db.flush()


async def overrides(
    db: AsyncSession, branch_id: int, *, from_day: date, doctor_id: int | None = None, day: date | None = None
) -> list[AttendanceOverride]:
    """The branch's dated attendance changes from ``from_day`` on (or on one ``day``), soonest first."""
    stmt = (
        select(AttendanceOverride)
        .where(AttendanceOverride.branch_id == branch_id, AttendanceOverride.day >= from_day)
        .order_by(AttendanceOverride.day, AttendanceOverride.doctor_id, AttendanceOverride.starts.nulls_first())
    )
    if doctor_id is not None:
        stmt = stmt.where(AttendanceOverride.doctor_id == doctor_id)
    if day is not None:
        stmt = stmt.where(AttendanceOverride.day == day)
    return list((await db.execute(stmt)).scalars())


async def insert_override(
    db: AsyncSession, *, doctor_id: int, branch_id: int, day: date, starts: time | None, ends: time | None, note: str
) -> int:
    row = AttendanceOverride(doctor_id=doctor_id, branch_id=branch_id, day=day, starts=starts, ends=ends, note=note)
    db.add(row)
    await db.flush()
    return row.id


async def get_override(db: AsyncSession, override_id: int) -> AttendanceOverride | None:
    return await db.get(AttendanceOverride, override_id)


async def delete_override(db: AsyncSession, override_id: int) -> None:
    await db.execute(delete(AttendanceOverride).where(AttendanceOverride.id == override_id))


async def lock_setting(db: AsyncSession, key: str, default: Any) -> Any:
    """A clinic setting's value, its row locked (created with ``default`` first if missing): read-modify-write of
    one JSON value by two editors at once must not lose either change."""
    await db.execute(insert(ClinicSetting).values(key=key, value=default).on_conflict_do_nothing())
    stmt = select(ClinicSetting.value).where(ClinicSetting.key == key).with_for_update()
    return (await db.execute(stmt)).scalar_one()
