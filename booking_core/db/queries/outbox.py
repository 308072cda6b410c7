"""The outbox: rows written with the change that caused them, claimed by one sender at a time (SKIP LOCKED)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import ChannelIdentity, JobFailure, Message, OutboxMessage


async def insert_outbox(db: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert a row; None when a row with the same dedupe key exists (the message was already planned)."""
    stmt = insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=[OutboxMessage.dedupe_key])
    return (await db.execute(stmt.returning(OutboxMessage.id))).scalar_one_or_none()


async def insert_history(db: AsyncSession, values: dict[str, Any]) -> None:
    db.add(Message(**values))
    await db.flush()


async def claim(db: AsyncSession, outbox_id: int, *, now: datetime, stale_before: datetime) -> OutboxMessage | None:
    """Lock and mark a due row 'sending' (or reclaim one stuck in 'sending'); None if sent, not due or taken."""
    row = (
        await db.execute(
            select(OutboxMessage)
            .where(
                OutboxMessage.id == outbox_id,
                or_(
                    (OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= now),
                    (OutboxMessage.status == "sending") & (OutboxMessage.locked_at < stale_before),
                ),
            )
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    row.status, row.locked_at, row.attempts = "sending", now, row.attempts + 1
    await db.flush()
    return row


async def identity_last_inbound(db: AsyncSession, identity_id: int | None) -> datetime | None:
    if identity_id is None:
        return None
    return (
        await db.execute(select(ChannelIdentity.last_inbound_at).where(ChannelIdentity.id == identity_id))
    ).scalar_one_or_none()


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


async def earlier_unsent(db: AsyncSession, row: OutboxMessage, *, now: datetime) -> datetime | None:
    """When an earlier message to the same recipient that is still to go may go (None: nothing is in the way).

    In the way: an earlier row being sent (or stuck with a dead worker until the sweep sends it again), one due
    within seconds, and one that was tried and waits for its retry (a 429's ``retry_after``, a backoff after a
    5xx), however long: messages must arrive in order. Not in the way: a row planned for later that was never
    tried, and a failed one (staff see it in the failures list).
    """
    from datetime import timedelta

    earlier = await db.execute(
        select(func.min(OutboxMessage.next_attempt_at), func.bool_or(OutboxMessage.status == "sending")).where(
            OutboxMessage.channel == row.channel,
            OutboxMessage.recipient == row.recipient,
            OutboxMessage.id < row.id,
            or_(
                (OutboxMessage.status == "pending")
                & ((OutboxMessage.next_attempt_at <= now + timedelta(seconds=5)) | (OutboxMessage.attempts > 0)),
                OutboxMessage.status == "sending",
            ),
        )
    )
    first_due, sending = earlier.one()
    if sending:
        return now
    return first_due
