"""Staff decisions on a lead: status changes that race safely, and what a decision needs to read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Branch, ChannelIdentity, Doctor, Examination, Lead, Patient, Room, Session, SlotHold


async def lead(db: AsyncSession, lead_id: int) -> Lead | None:
    result = await db.execute(select(Lead).where(Lead.id == lead_id).execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def lock_lead(db: AsyncSession, lead_id: int) -> Lead | None:
    """The lead, locked for the rest of the transaction: concurrent conversions of one lead queue up here."""
    result = await db.execute(
        select(Lead).where(Lead.id == lead_id).with_for_update().execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def move_status(
    db: AsyncSession,
    lead_id: int,
    *,
    to: str,
    allowed_from: Sequence[str],
    now: datetime,
    values: dict[str, Any] | None = None,
) -> Lead | None:
    """``UPDATE leads SET status = to WHERE id = .. AND status IN allowed_from RETURNING``: None when not moved.

    Of two staff clicking at once, exactly one moves the lead; the other sees the status it is in now.
    """
    stmt = (
        update(Lead)
        .where(Lead.id == lead_id, Lead.status.in_(tuple(allowed_from)))
        .values(status=to, updated_at=now, **(values or {}))
        .returning(Lead)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    return (await db.execute(stmt)).scalar_one_or_none()


async def session_of_lead(db: AsyncSession, lead_id: int) -> Session | None:
    result = await db.execute(
        select(Session).where(Session.lead_id == lead_id).execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def hold(db: AsyncSession, hold_id: int) -> SlotHold | None:
    result = await db.execute(select(SlotHold).where(SlotHold.id == hold_id).execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def living_patient(db: AsyncSession, patient_id: int | None) -> Patient | None:
    """The patient, or the record it was merged into."""
    if patient_id is None:
        return None
    found = await db.get(Patient, patient_id)
    if found is not None and found.merged_into_id is not None:
        return await db.get(Patient, found.merged_into_id)
    return found


async def identity(db: AsyncSession, identity_id: int | None) -> ChannelIdentity | None:
    return await db.get(ChannelIdentity, identity_id) if identity_id is not None else None


async def names(
    db: AsyncSession, *, branch_id: int | None, examination_id: int | None, doctor_id: int | None
) -> tuple[Branch | None, str | None, str | None]:
    """The branch (for its name and time zone) and the examination's and doctor's names, where known."""
    branch = await db.get(Branch, branch_id) if branch_id is not None else None
    exam = await db.get(Examination, examination_id) if examination_id is not None else None
    doctor = await db.get(Doctor, doctor_id) if doctor_id is not None else None
    return branch, exam.name if exam else None, doctor.name if doctor else None


async def doctor_and_room_names(db: AsyncSession, *, doctor_id: int, room_id: int) -> tuple[str, str]:
    doctor = await db.get(Doctor, doctor_id)
    room = await db.get(Room, room_id)
    return (doctor.name if doctor else ""), (room.name if room else "")
