"""The outbox: rows written with the change that caused them, claimed by one sender at a time (SKIP LOCKED)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import JobFailure, Message, OutboxMessage


async def insert_outbox(db: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert a row; None when a row with the same dedupe key exists (the message was already planned)."""
    stmt = insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=[OutboxMessage.dedupe_key])
    return (await db.execute(stmt.returning(OutboxMessage.id))).scalar_one_or_none()


async def insert_history(db: AsyncSession, values: dict[str, Any]) -> None:
    db.add(Message(**values))
    await db.flush()


async def finish(db: AsyncSession, outbox_id: int, values: dict[str, Any]) -> None:
    await db.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id).values(**values))


async def record_failure(db: AsyncSession, *, outbox_id: int, error: str) -> None:
    db.add(JobFailure(job_name="deliver", args=[outbox_id], error=error, outbox_id=outbox_id))
    await db.flush()


async def due_ids(db: AsyncSession, *, now: datetime, stale_before: datetime, limit: int) -> list[int]:
    """Rows a sweeper should (re)enqueue: pending and due, or stuck in 'sending'."""
    result = await db.execute(
        select(OutboxMessage.id)
        .where(
            or_(
                (OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= now),
                (OutboxMessage.status == "sending") & (OutboxMessage.locked_at < stale_before),
            )
        )
        .order_by(OutboxMessage.next_attempt_at)
        .limit(limit)
    )
    return list(result.scalars())
