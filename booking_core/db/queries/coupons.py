"""Queries behind Best Deal coupons: issue, look up by code hash, redeem on a visit (each use once), undo, void."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from booking_core.db.tables import (
    Branch,
    Coupon,
    CouponRedemption,
    Doctor,
    Examination,
    Patient,
    QueueEntry,
    Session,
    SessionLine,
    Staff,
)

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


async def use(
    db: AsyncSession, coupon_id: int, *, today: date, branch_id: int, staff_id: int | None, now: datetime
) -> bool:
    """Take one use of an active coupon valid today at ``branch_id``; of concurrent redeemers only those that find
    a use left succeed (the last use turns it ``redeemed``).

    The row lock taken by the UPDATE makes a second redeemer wait, then re-check ``uses < max_uses`` against the
    committed row and match nothing; the CHECK ``uses <= max_uses`` backs it up.
    """
    result = await db.execute(
        update(Coupon)
        .where(
            Coupon.id == coupon_id,
            Coupon.status == "active",
            Coupon.uses < Coupon.max_uses,
            Coupon.valid_from <= today,
            Coupon.valid_until >= today,
            or_(Coupon.branch_id.is_(None), Coupon.branch_id == branch_id),
        )
        .values(
            uses=Coupon.uses + 1,
            status=case((Coupon.uses + 1 >= Coupon.max_uses, "redeemed"), else_="active"),
            redeemed_at=now,
            redeemed_by=staff_id,
            redeemed_branch_id=branch_id,
        )
        .returning(Coupon.id)
    )
    return result.scalar_one_or_none() is not None


async def give_back(db: AsyncSession, coupon_id: int) -> None:
    """Give an undone redemption's use back; the latest standing redemption (if any) becomes ``redeemed_*``."""
    latest = (
        select(CouponRedemption)
        .where(CouponRedemption.coupon_id == coupon_id, CouponRedemption.undone_at.is_(None))
        .order_by(CouponRedemption.redeemed_at.desc(), CouponRedemption.id.desc())
        .limit(1)
        .subquery()
    )
    await db.execute(
        update(Coupon)
        .where(Coupon.id == coupon_id)
        .values(
            uses=Coupon.uses - 1,
            status=case((Coupon.status == "redeemed", "active"), else_=Coupon.status),
            redeemed_at=select(latest.c.redeemed_at).scalar_subquery(),
            redeemed_by=select(latest.c.redeemed_by).scalar_subquery(),
            redeemed_branch_id=select(latest.c.branch_id).scalar_subquery(),
        )
    )


async def add_redemption(
    db: AsyncSession, *, coupon_id: int, session_id: int, branch_id: int, staff_id: int | None, now: datetime
) -> int | None:
    """Record a redemption on a visit; None when this coupon already stands on that visit (the unique index)."""
    result = await db.execute(
        insert(CouponRedemption)
        .values(
            coupon_id=coupon_id,
            session_id=session_id,
            branch_id=branch_id,
            redeemed_by=staff_id,
            redeemed_at=now,
            undo_reason="",
        )
        .on_conflict_do_nothing(
            index_elements=[CouponRedemption.coupon_id, CouponRedemption.session_id],
            index_where=CouponRedemption.undone_at.is_(None),
        )
        .returning(CouponRedemption.id)
    )
    new_id = result.scalar_one_or_none()
    return None if new_id is None else int(new_id)


async def lock_redemption(db: AsyncSession, redemption_id: int) -> CouponRedemption | None:
    stmt = (
        select(CouponRedemption)
        .where(CouponRedemption.id == redemption_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await db.execute(stmt)).scalar_one_or_none()


async def lock_coupon(db: AsyncSession, coupon_id: int) -> None:
    await db.execute(select(Coupon.id).where(Coupon.id == coupon_id).with_for_update())


async def mark_undone(
    db: AsyncSession, redemption_id: int, *, staff_id: int | None, reason: str, now: datetime
) -> None:
    await db.execute(
        update(CouponRedemption)
        .where(CouponRedemption.id == redemption_id)
        .values(undone_at=now, undone_by=staff_id, undo_reason=reason)
    )


async def standing_on_session(db: AsyncSession, session_id: int) -> list[tuple[CouponRedemption, Coupon]]:
    """The redemptions that stand on a visit, with their coupons, oldest first (the invoice's coupon lines)."""
    rows = await db.execute(
        select(CouponRedemption, Coupon)
        .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
        .where(CouponRedemption.session_id == session_id, CouponRedemption.undone_at.is_(None))
        .order_by(CouponRedemption.id)
    )
    return [(redemption, coupon) for redemption, coupon in rows]


#: A redemption as shown: (redemption, visit start, visit's branch id, staff name or None).
RedemptionRow = tuple[CouponRedemption, datetime | None, int | None, str | None]


async def redemptions(db: AsyncSession, coupon_id: int) -> list[RedemptionRow]:
    """Every redemption of a coupon (standing and undone), oldest first, with its visit's time and who redeemed it."""
    rows = await db.execute(
        select(CouponRedemption, Session.starts_at, Session.branch_id, Staff.name)
        .outerjoin(Session, Session.id == CouponRedemption.session_id)
        .outerjoin(Staff, Staff.id == CouponRedemption.redeemed_by)
        .where(CouponRedemption.coupon_id == coupon_id)
        .order_by(CouponRedemption.id)
    )
    return [(r, starts_at, branch_id, name) for r, starts_at, branch_id, name in rows]


async def visits_of_patient(
    db: AsyncSession, patient_id: int, *, branch_id: int, since: datetime, statuses: Sequence[str], limit: int = 20
) -> list[tuple[Session, str, list[str], bool]]:
    """The patient's visits at a branch starting from ``since`` (the desk's midnight), soonest first:
    (visit, doctor name, examination names, checked in today)."""
    rows = await db.execute(
        select(Session, Doctor.name, QueueEntry.id)
        .join(Doctor, Doctor.id == Session.doctor_id)
        .outerjoin(QueueEntry, QueueEntry.session_id == Session.id)
        .where(
            Session.patient_id == patient_id,
            Session.branch_id == branch_id,
            Session.starts_at >= since,
            Session.status.in_(statuses),
        )
        .order_by(Session.starts_at, Session.id)
        .limit(limit)
    )
    found = [(session, doctor, entry) for session, doctor, entry in rows]
    names: dict[int, list[str]] = {session.id: [] for session, _, _ in found}
    if names:
        lines = await db.execute(
            select(SessionLine.session_id, SessionLine.name)
            .where(SessionLine.session_id.in_(names), SessionLine.kind == "examination")
            .order_by(SessionLine.id)
        )
        for session_id, name in lines:
            names[session_id].append(name)
    return [(session, doctor, names[session.id], entry is not None) for session, doctor, entry in found]


async def void(db: AsyncSession, coupon_id: int, *, note: str) -> bool:
    """Void an active coupon; False when it was already redeemed or void."""
    result = await db.execute(
        update(Coupon)
        .where(Coupon.id == coupon_id, Coupon.status == "active")
        .values(status="void", note=note)
        .returning(Coupon.id)
    )
    return result.scalar_one_or_none() is not None
