"""Queries behind finding a patient at the front desk (by name or phone)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Patient


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search(db: AsyncSession, *, name: str, digits: str, limit: int) -> list[Patient]:
    """Living patients whose name contains ``name`` or whose phone contains ``digits`` (either may be empty)."""
    conditions = []
    if name:
        conditions.append(Patient.name.ilike(_like(name), escape="\\"))
    if digits:
        conditions.append(Patient.phone_e164.like(_like(digits), escape="\\"))
    if not conditions:
        return []
    found = await db.execute(
        select(Patient)
        .where(Patient.merged_into_id.is_(None), or_(*conditions))
        .order_by(Patient.name, Patient.id)
        .limit(limit)
    )
    return list(found.scalars())


async def get(db: AsyncSession, patient_id: int) -> Patient | None:
    return await db.get(Patient, patient_id)
