"""Queries behind Best Deal coupons: issue, look up by code hash, redeem exactly once, void."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from booking_core.db.tables import Branch, Coupon, Examination, Patient

#: A coupon with the names it is shown with: (coupon, patient name, examination name, branch name).
Row = tuple[Coupon, str | None, str | None, str | None]


async def get_patient(db: AsyncSession, patient_id: int) -> Patient | None:
    return await db.get(Patient, patient_id)


async def get_examination(db: AsyncSession, examination_id: int) -> Examination | None:
    return await db.get(Examination, examination_id)


async def get_branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def insert_coupon(db: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert a coupon; None if its code hash already exists (a fresh code is drawn and tried again)."""
    result = await db.execute(
        insert(Coupon).values(**values).on_conflict_do_nothing(index_elements=[Coupon.code_hash]).returning(Coupon.id)
    )
    new_id = result.scalar_one_or_none()
    return None if new_id is None else int(new_id)


def _with_names() -> Any:  # a Select of Row
    branch = aliased(Branch)
    return (
        select(Coupon, Patient.name, Examination.name, branch.name)
        .outerjoin(Patient, Patient.id == Coupon.patient_id)
        .outerjoin(Examination, Examination.id == Coupon.examination_id)
        .outerjoin(branch, branch.id == Coupon.branch_id)
        .execution_options(populate_existing=True)
    )


async def _one(db: AsyncSession, stmt: Any) -> Row | None:
    row = (await db.execute(stmt)).one_or_none()
    if row is None:
        return None
    coupon, patient_name, examination_name, branch_name = row
    return coupon, patient_name, examination_name, branch_name


async def by_hash(db: AsyncSession, code_hash: str) -> Row | None:
    return await _one(db, _with_names().where(Coupon.code_hash == code_hash))


async def by_id(db: AsyncSession, coupon_id: int) -> Row | None:
    return await _one(db, _with_names().where(Coupon.id == coupon_id))


async def redeem(
    db: AsyncSession, code_hash: str, *, today: date, branch_id: int, staff_id: int | None, now: datetime
) -> int | None:
    """Redeem an active coupon valid today at ``branch_id``; of concurrent redeemers exactly one gets the id.

    The row lock taken by the UPDATE makes a second redeemer wait, then re-check ``status = 'active'`` against the
    committed row and match nothing.
    """
    result = await db.execute(
        update(Coupon)
        .where(
            Coupon.code_hash == code_hash,
            Coupon.status == "active",
            Coupon.valid_from <= today,
            Coupon.valid_until >= today,
            or_(Coupon.branch_id.is_(None), Coupon.branch_id == branch_id),
        )
        .values(status="redeemed", redeemed_at=now, redeemed_by=staff_id, redeemed_branch_id=branch_id)
        .returning(Coupon.id)
    )
    return result.scalar_one_or_none()


async def void(db: AsyncSession, coupon_id: int, *, note: str) -> bool:
    """Void an active coupon; False when it was already redeemed or void."""
    result = await db.execute(
        update(Coupon)
        .where(Coupon.id == coupon_id, Coupon.status == "active")
        .values(status="void", note=note)
        .returning(Coupon.id)
    )
    return result.scalar_one_or_none() is not None
