"""Queries over staff, login codes and staff sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import LoginCode, Staff, StaffSession


async def consume_login_code(
    db: AsyncSession, code_hash: str, *, now: datetime, client_ip: str | None
) -> LoginCode | None:
    """Mark an unused, unexpired code used and return it; of two concurrent consumers exactly one gets it."""
    result = await db.execute(
        update(LoginCode)
        .where(LoginCode.code_hash == code_hash, LoginCode.used_at.is_(None), LoginCode.expires_at > now)
        .values(used_at=now, used_from=client_ip)
        .returning(LoginCode)
    )
    return result.scalar_one_or_none()


async def active_staff_named(db: AsyncSession, *, name: str, role: str, branch_id: int | None) -> Staff | None:
    """The operator's (CLI's) way to continue a member: the oldest active one of this name, role and branch."""
    result = await db.execute(
        select(Staff)
        .where(
            Staff.name == name,
            Staff.role == role,
            Staff.branch_id.is_not_distinct_from(branch_id),
            Staff.active.is_(True),
        )
        .order_by(Staff.id)
        .limit(1)
    )
    return result.scalar_one_or_none()


async def session_by_token(db: AsyncSession, token_hash: str, *, now: datetime) -> tuple[Staff, StaffSession] | None:
    """The active member and their live (unrevoked, unexpired) session for a token hash."""
    result = await db.execute(
        select(Staff, StaffSession)
        .join(StaffSession, Staff.id == StaffSession.staff_id)
        .where(
            StaffSession.token_hash == token_hash,
            StaffSession.revoked_at.is_(None),
            StaffSession.expires_at > now,
            Staff.active.is_(True),
        )
    )
    row = result.one_or_none()
    return (row[0], row[1]) if row is not None else None


async def revoke_token(db: AsyncSession, token_hash: str, *, now: datetime) -> int | None:
    result = await db.execute(
        update(StaffSession)
        .where(StaffSession.token_hash == token_hash, StaffSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(StaffSession.id)
    )
    return result.scalar_one_or_none()


async def staff_with_sessions(db: AsyncSession, *, now: datetime, branch_id: int | None) -> list[tuple[Staff, int]]:
    """Active staff (of one branch, or all) with their count of live sessions, newest first."""
    live = (
        select(StaffSession.staff_id, func.count().label("n"))
        .where(StaffSession.revoked_at.is_(None), StaffSession.expires_at > now)
        .group_by(StaffSession.staff_id)
        .subquery()
    )
    query = (
        select(Staff, func.coalesce(live.c.n, 0))
        .outerjoin(live, live.c.staff_id == Staff.id)
        .where(Staff.active.is_(True))
        .order_by(Staff.created_at.desc(), Staff.id.desc())
    )
    if branch_id is not None:
        query = query.where(Staff.branch_id == branch_id)
    return [(staff, int(n)) for staff, n in (await db.execute(query)).all()]


async def revoke_staff_sessions(db: AsyncSession, staff_id: int, *, now: datetime) -> int:
    result = await db.execute(
        update(StaffSession)
        .where(StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(StaffSession.id)
    )
    return len(result.all())
