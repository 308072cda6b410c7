"""Queries behind "you are next" notices: the once-per-position claim, and whose queue places to look at."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Branch, QueueEntry, Session


async def claim_position(db: AsyncSession, entry_id: int, position: int) -> bool:
    """Record that the patient is told about ``position``; False when they already were (or another
    transaction holds the entry right now: it announces the queue as it leaves it).

    ``SKIP LOCKED`` keeps this from waiting on a "call next" or a reorder that holds the day's entries while it
    waits for a session row this transaction may hold: no deadlock, and the sweep catches anything skipped.
    """
    locked = (
        select(QueueEntry.id)
        .where(QueueEntry.id == entry_id, QueueEntry.notified_position.is_distinct_from(position))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = await db.execute(
        update(QueueEntry)
        .where(QueueEntry.id == locked)
        .values(notified_position=position)
        .returning(QueueEntry.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def patients_of_sessions(db: AsyncSession, session_ids: Sequence[int]) -> dict[int, int]:
    if not session_ids:
        return {}
    result = await db.execute(select(Session.id, Session.patient_id).where(Session.id.in_(list(session_ids))))
    return {session_id: patient_id for session_id, patient_id in result.all()}


async def entry_of_session(db: AsyncSession, session_id: int) -> QueueEntry | None:
    result = await db.execute(select(QueueEntry).where(QueueEntry.session_id == session_id))
    return result.scalar_one_or_none()


async def branch_tz(db: AsyncSession, branch_id: int) -> str | None:
    result = await db.execute(select(Branch.tz).where(Branch.id == branch_id))
    return result.scalar_one_or_none()


async def active_queues(db: AsyncSession, *, first_day: date, last_day: date) -> list[tuple[int, date, str]]:
    """(branch id, day, branch time zone) of every queue with a waiting patient between two days."""
    result = await db.execute(
        select(QueueEntry.branch_id, QueueEntry.day, Branch.tz)
        .join(Session, Session.id == QueueEntry.session_id)
        .join(Branch, Branch.id == QueueEntry.branch_id)
        .where(Session.status == "waiting", QueueEntry.day >= first_day, QueueEntry.day <= last_day)
        .distinct()
        .order_by(QueueEntry.branch_id, QueueEntry.day)
    )
    return [(branch_id, day, tz) for branch_id, day, tz in result.all()]
