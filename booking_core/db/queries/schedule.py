"""Queries behind doctors' schedule applications (shifts a doctor asks for; accepted ones add attendance)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Branch, BranchHours, Doctor, ScheduleApplication

#: First key of the transaction-scoped advisory lock that serialises one doctor's applications (second key: the id).
APPLICATION_LOCK_SPACE = 730_114

Row = tuple[ScheduleApplication, str, str]


async def get_doctor(db: AsyncSession, doctor_id: int) -> Doctor | None:
    return await db.get(Doctor, doctor_id)


async def get_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def branch_hours(db: AsyncSession, branch_id: int, weekday: int) -> list[tuple[time, time]]:
    """The branch's opening windows on a weekday (none: closed that day)."""
    rows = await db.execute(
        select(BranchHours.opens, BranchHours.closes)
        .where(BranchHours.branch_id == branch_id, BranchHours.weekday == weekday)
        .order_by(BranchHours.opens)
    )
    return [(opens, closes) for opens, closes in rows]


async def lock_doctor(db: AsyncSession, doctor_id: int) -> None:
    """Wait for, then hold until commit, the right to file applications for this doctor.

    Two requests for overlapping shifts arrive together; without this both would see "no overlap" and both insert.
    """
    await db.execute(select(func.pg_advisory_xact_lock(APPLICATION_LOCK_SPACE, doctor_id)))


async def overlapping(
    db: AsyncSession,
    *,
    doctor_id: int,
    branch_id: int,
    day: date,
    starts: time,
    ends: time,
    statuses: tuple[str, ...],
) -> ScheduleApplication | None:
    """An application of the doctor at the branch on the day, in one of ``statuses``, that overlaps the times."""
    result = await db.execute(
        select(ScheduleApplication)
        .where(
            ScheduleApplication.doctor_id == doctor_id,
            ScheduleApplication.branch_id == branch_id,
            ScheduleApplication.day == day,
            ScheduleApplication.status.in_(statuses),
            ScheduleApplication.starts < ends,
            ScheduleApplication.ends > starts,
        )
        .order_by(ScheduleApplication.id)
        .limit(1)
    )
    return result.scalar_one_or_none()


async def insert_application(db: AsyncSession, **values: Any) -> int:
    row = ScheduleApplication(**values)
    db.add(row)
    await db.flush()
    return row.id


def _with_names() -> Any:  # a Select of (application, doctor name, branch name)
    return (
        select(ScheduleApplication, Doctor.name, Branch.name)
        .join(Doctor, Doctor.id == ScheduleApplication.doctor_id)
        .join(Branch, Branch.id == ScheduleApplication.branch_id)
    )


async def get_application(db: AsyncSession, application_id: int) -> Row | None:
    """An application with its doctor's and branch's names."""
    result = await db.execute(
        _with_names().where(ScheduleApplication.id == application_id).execution_options(populate_existing=True)
    )
    row = result.one_or_none()
    if row is None:
        return None
    app, doctor_name, branch_name = row
    return app, doctor_name, branch_name


async def decide(
    db: AsyncSession,
    application_id: int,
    *,
    status: str,
    decided_by: int | None,
    reason: str | None,
    now: datetime,
) -> bool:
    """Move a pending application to ``status``; of two deciders exactly one succeeds (False: already decided)."""
    result = await db.execute(
        update(ScheduleApplication)
        .where(ScheduleApplication.id == application_id, ScheduleApplication.status == "pending")
        .values(status=status, decided_by=decided_by, decided_at=now, decision_reason=reason)
        .returning(ScheduleApplication.id)
    )
    return result.scalar_one_or_none() is not None


async def list_applications(
    db: AsyncSession,
    *,
    status: str | None = None,
    branch_id: int | None = None,
    doctor_id: int | None = None,
    day_from: date | None = None,
    limit: int = 200,
) -> list[Row]:
    """Applications by day, start time and filing order, with doctor and branch names."""
    stmt = _with_names().order_by(ScheduleApplication.day, ScheduleApplication.starts, ScheduleApplication.id)
    if status is not None:
        stmt = stmt.where(ScheduleApplication.status == status)
    if branch_id is not None:
        stmt = stmt.where(ScheduleApplication.branch_id == branch_id)
    if doctor_id is not None:
        stmt = stmt.where(ScheduleApplication.doctor_id == doctor_id)
    if day_from is not None:
        stmt = stmt.where(ScheduleApplication.day >= day_from)
    rows = await db.execute(stmt.limit(limit))
    return [(app, doctor, branch) for app, doctor, branch in rows]
