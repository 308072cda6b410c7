"""Queries over the clinic's catalog: branches, rooms, doctors, examinations, settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Branch, ClinicSetting


async def branch_count(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(Branch))).scalar_one())


async def get_setting(db: AsyncSession, key: str, default: Any = None) -> Any:
    row = await db.get(ClinicSetting, key)
    return default if row is None else row.value


async def put_setting(db: AsyncSession, key: str, value: Any) -> None:
    stmt = insert(ClinicSetting).values(key=key, value=value)
    await db.execute(
        stmt.on_conflict_do_update(index_elements=[ClinicSetting.key], set_={"value": value, "updated_at": func.now()})
    )
