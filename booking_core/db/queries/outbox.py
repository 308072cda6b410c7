"""The outbox: rows written with the change that caused them, claimed by one sender at a time (SKIP LOCKED)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

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


async def give_up_uncertain(db: AsyncSession, *, stale_before: datetime, error: str) -> int:
    """Rows stale in 'sending' after an uncertain send already: failed with ``error``, each listed for staff."""
    given_up = list(
        (
            await db.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.status == "sending",
                    OutboxMessage.locked_at < stale_before,
                    OutboxMessage.uncertain_at.is_not(None),
                )
                .values(status="failed", last_error=error, locked_at=None)
                .returning(OutboxMessage.id)
            )
        ).scalars()
    )
    for outbox_id in given_up:
        await record_failure(db, outbox_id=outbox_id, error=error)
    return len(given_up)


async def unpark(db: AsyncSession, *, now: datetime, probe_before: datetime) -> list[int]:
    """Parked rows of channels that answer again (a row on it sent after the first was parked, looked for among
    the rows written since, by id) or parked before ``probe_before``: pending again, attempts from zero."""
    parked = (
        select(
            OutboxMessage.channel,
            func.min(OutboxMessage.id).label("first_id"),
            func.min(OutboxMessage.parked_at).label("since"),
        )
        .where(OutboxMessage.parked_at.is_not(None), OutboxMessage.status == "failed")
        .group_by(OutboxMessage.channel)
        .cte("parked")
    )
    later = aliased(OutboxMessage, name="later")
    answers_again = (
        select(later.id)
        .where(
            later.id > parked.c.first_id,
            later.channel == parked.c.channel,
            later.status == "sent",
            later.sent_at > parked.c.since,
        )
        .exists()
    )
    recovered = select(parked.c.channel).where(or_(parked.c.since < probe_before, answers_again)).cte("recovered")
    result = await db.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel.in_(select(recovered.c.channel)),
            OutboxMessage.parked_at.is_not(None),
            OutboxMessage.status == "failed",
        )
        .values(status="pending", parked_at=None, attempts=0, next_attempt_at=now, locked_at=None)
        .returning(OutboxMessage.id)
    )
    return sorted(result.scalars())
