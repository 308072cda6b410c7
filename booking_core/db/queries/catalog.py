"""Queries behind the examination catalog and the small branch / doctor lists the inbox reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import date, time
from typing import Any

from sqlalchemy import delete, exists, select, union, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import (
    AttendanceOverride,
    Branch,
    Doctor,
    DoctorAttendance,
    Examination,
    ExaminationBranch,
    ExaminationDoctor,
    ExaminationWindow,
    ScheduleApplication,
)

UNIQUE_VIOLATION = "23505"


class DuplicateCode(Exception):
    """Another examination already uses this code (the unique constraint said so)."""


# --- branches and doctors


async def list_branches(db: AsyncSession, *, branch_id: int | None = None) -> list[Branch]:
    """Active branches by name; only ``branch_id`` when given."""
    stmt = select(Branch).where(Branch.active.is_(True)).order_by(Branch.name, Branch.id)
    if branch_id is not None:
        stmt = stmt.where(Branch.id == branch_id)
    return list((await db.execute(stmt)).scalars())


async def get_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def existing_branch_ids(db: AsyncSession, ids: Collection[int]) -> set[int]:
    if not ids:
        return set()
    return set((await db.execute(select(Branch.id).where(Branch.id.in_(ids)))).scalars())


async def existing_doctor_ids(db: AsyncSession, ids: Collection[int]) -> set[int]:
    if not ids:
        return set()
    return set((await db.execute(select(Doctor.id).where(Doctor.id.in_(ids)))).scalars())


async def list_doctors(db: AsyncSession, *, today: date, branch_id: int | None = None) -> list[Doctor]:
    """Active doctors by name; with ``branch_id``, only those attending that branch (see :func:`doctor_branches`)."""
    stmt = select(Doctor).where(Doctor.active.is_(True)).order_by(Doctor.name, Doctor.id)
    if branch_id is not None:
        attending = _attendance(today).subquery()
        stmt = stmt.where(exists().where(attending.c.doctor_id == Doctor.id, attending.c.branch_id == branch_id))
    return list((await db.execute(stmt)).scalars())


def _attendance(today: date) -> Any:
    """(doctor_id, branch_id) pairs: the weekly pattern, plus dated overrides and accepted applications to come."""
    return union(
        select(DoctorAttendance.doctor_id, DoctorAttendance.branch_id),
        select(AttendanceOverride.doctor_id, AttendanceOverride.branch_id).where(
            AttendanceOverride.day >= today, AttendanceOverride.starts.is_not(None)
        ),
        select(ScheduleApplication.doctor_id, ScheduleApplication.branch_id).where(
            ScheduleApplication.day >= today, ScheduleApplication.status == "accepted"
        ),
    )


async def doctor_branches(db: AsyncSession, doctor_ids: Collection[int], *, today: date) -> dict[int, list[int]]:
    """The branches each doctor attends: weekly pattern, upcoming overrides with hours, upcoming accepted shifts."""
    if not doctor_ids:
        return {}
    pairs = _attendance(today).subquery()
    rows = await db.execute(
        select(pairs.c.doctor_id, pairs.c.branch_id)
        .where(pairs.c.doctor_id.in_(doctor_ids))
        .order_by(pairs.c.doctor_id, pairs.c.branch_id)
    )
    found: dict[int, list[int]] = defaultdict(list)
    for doctor_id, branch_id in rows:
        found[doctor_id].append(branch_id)
    return dict(found)


# --- examinations


async def list_examinations(
    db: AsyncSession, *, branch_id: int | None = None, active: bool | None = None
) -> list[Examination]:
    stmt = select(Examination).order_by(Examination.name, Examination.id)
    if active is not None:
        stmt = stmt.where(Examination.active.is_(active))
    if branch_id is not None:
        stmt = stmt.where(
            exists().where(ExaminationBranch.examination_id == Examination.id, ExaminationBranch.branch_id == branch_id)
        )
    return list((await db.execute(stmt)).scalars())


async def get_examination(db: AsyncSession, examination_id: int, *, for_update: bool = False) -> Examination | None:
    """One examination; ``for_update`` locks the row so two edits of it apply one after the other."""
    stmt = select(Examination).where(Examination.id == examination_id).execution_options(populate_existing=True)
    if for_update:
        stmt = stmt.with_for_update()
    return (await db.execute(stmt)).scalar_one_or_none()


async def examination_links(
    db: AsyncSession, examination_ids: Collection[int]
) -> tuple[dict[int, list[int]], dict[int, list[int]], dict[int, list[ExaminationWindow]]]:
    """Branch ids, doctor ids and weekly windows of each examination."""
    branches: dict[int, list[int]] = defaultdict(list)
    doctors: dict[int, list[int]] = defaultdict(list)
    windows: dict[int, list[ExaminationWindow]] = defaultdict(list)
    if not examination_ids:
        return {}, {}, {}
    ids = list(examination_ids)
    for exam_id, branch_id in await db.execute(
        select(ExaminationBranch.examination_id, ExaminationBranch.branch_id)
        .where(ExaminationBranch.examination_id.in_(ids))
        .order_by(ExaminationBranch.branch_id)
    ):
        branches[exam_id].append(branch_id)
    for exam_id, doctor_id in await db.execute(
        select(ExaminationDoctor.examination_id, ExaminationDoctor.doctor_id)
        .where(ExaminationDoctor.examination_id.in_(ids))
        .order_by(ExaminationDoctor.doctor_id)
    ):
        doctors[exam_id].append(doctor_id)
    for window in (
        await db.execute(
            select(ExaminationWindow)
            .where(ExaminationWindow.examination_id.in_(ids))
            .order_by(ExaminationWindow.weekday, ExaminationWindow.starts, ExaminationWindow.id)
        )
    ).scalars():
        windows[window.examination_id].append(window)
    return dict(branches), dict(doctors), dict(windows)


async def insert_examination(db: AsyncSession, values: dict[str, Any]) -> int:
    """Insert an examination and return its id; :class:`DuplicateCode` when the code is taken."""
    result = await db.execute(
        insert(Examination)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Examination.code])
        .returning(Examination.id)
    )
    new_id = result.scalar_one_or_none()
    if new_id is None:
        raise DuplicateCode(values.get("code"))
    return int(new_id)


async def update_examination(db: AsyncSession, examination_id: int, values: dict[str, Any]) -> None:
    """Write changed columns; :class:`DuplicateCode` when a new code is taken (the transaction stays usable)."""
    if not values:
        return
    try:
        async with db.begin_nested():
            await db.execute(update(Examination).where(Examination.id == examination_id).values(**values))
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == UNIQUE_VIOLATION or "uq_examinations_code" in str(exc.orig):
            raise DuplicateCode(values.get("code")) from None
        raise


async def deactivate_examination(db: AsyncSession, examination_id: int) -> bool:
    """Soft delete: ``active = false``; False when it was already inactive."""
    result = await db.execute(
        update(Examination)
        .where(Examination.id == examination_id, Examination.active.is_(True))
        .values(active=False)
        .returning(Examination.id)
    )
    return result.scalar_one_or_none() is not None


async def replace_branches(db: AsyncSession, examination_id: int, branch_ids: Iterable[int]) -> None:
    await db.execute(delete(ExaminationBranch).where(ExaminationBranch.examination_id == examination_id))
    rows = [{"examination_id": examination_id, "branch_id": b} for b in sorted(set(branch_ids))]
    if rows:
        await db.execute(insert(ExaminationBranch).values(rows))


async def replace_doctors(db: AsyncSession, examination_id: int, doctor_ids: Iterable[int]) -> None:
    await db.execute(delete(ExaminationDoctor).where(ExaminationDoctor.examination_id == examination_id))
    rows = [{"examination_id": examination_id, "doctor_id": d} for d in sorted(set(doctor_ids))]
    if rows:
        await db.execute(insert(ExaminationDoctor).values(rows))


async def replace_windows(db: AsyncSession, examination_id: int, windows: Iterable[tuple[int, time, time]]) -> None:
    await db.execute(delete(ExaminationWindow).where(ExaminationWindow.examination_id == examination_id))
    rows = [
        {"examination_id": examination_id, "weekday": weekday, "starts": starts, "ends": ends}
        for weekday, starts, ends in sorted(set(windows))
    ]
    if rows:
        await db.execute(insert(ExaminationWindow).values(rows))
