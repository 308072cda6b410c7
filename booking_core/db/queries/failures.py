"""What failed to go out: failed outbox rows and jobs that exhausted their retries, and resetting a row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import AuditEntry, JobFailure, Lead, OutboxMessage, Reminder, Session


def _lead_of_conversation() -> Any:
    """The newest lead of the row's conversation (the inbox link)."""
    return (
        select(Lead.id, Lead.branch_id)
        .where(Lead.conversation_id == OutboxMessage.conversation_id)
        .order_by(Lead.id.desc())
        .limit(1)
        .correlate(OutboxMessage)
        .lateral("lead")
    )


def _session_of_reminder() -> Any:
    """The session a reminder row was sent for, if this row is one."""
    return (
        select(Session.id, Session.branch_id)
        .join(Reminder, Reminder.session_id == Session.id)
        .where(Reminder.outbox_id == OutboxMessage.id)
        .limit(1)
        .correlate(OutboxMessage)
        .lateral("visit")
    )


def _open_failure() -> Any:
    """The newest job failure of the row that staff have not retried yet."""
    return (
        select(JobFailure.id, JobFailure.error, JobFailure.failed_at)
        .where(JobFailure.outbox_id == OutboxMessage.id, JobFailure.retried_at.is_(None))
        .order_by(JobFailure.id.desc())
        .limit(1)
        .correlate(OutboxMessage)
        .lateral("failure")
    )


def _scoped(branch: ColumnElement[Any], only_branch: int | None) -> ColumnElement[bool] | None:
    if only_branch is None:
        return None
    return or_(branch.is_(None), branch == only_branch)  # a row no branch is known for is everyone's


async def failed_outbox(db: AsyncSession, *, only_branch: int | None, limit: int) -> list[Any]:
    """Rows with status failed, newest failure first, with their open job failure, lead and session links."""
    lead, visit, failure = _lead_of_conversation(), _session_of_reminder(), _open_failure()
    branch = func.coalesce(visit.c.branch_id, lead.c.branch_id)
    when = func.coalesce(failure.c.failed_at, OutboxMessage.created_at)
    stmt = (
        select(
            OutboxMessage,
            failure.c.id.label("job_failure_id"),
            failure.c.error.label("job_error"),
            when.label("failed_at"),
            lead.c.id.label("lead_id"),
            visit.c.id.label("session_id"),
            branch.label("branch_id"),
        )
        .select_from(OutboxMessage)
        .outerjoin(lead, true())
        .outerjoin(visit, true())
        .outerjoin(failure, true())
        .where(OutboxMessage.status == "failed")
        .order_by(when.desc(), OutboxMessage.id.desc())
        .limit(limit)
    )
    scope = _scoped(branch, only_branch)
    if scope is not None:
        stmt = stmt.where(scope)
    return list((await db.execute(stmt)).all())


async def failed_jobs(db: AsyncSession, *, limit: int) -> list[JobFailure]:
    """Job failures of other jobs than deliveries (no outbox row) that nobody retried, newest first."""
    result = await db.execute(
        select(JobFailure)
        .where(JobFailure.outbox_id.is_(None), JobFailure.retried_at.is_(None))
        .order_by(JobFailure.failed_at.desc(), JobFailure.id.desc())
        .limit(limit)
    )
    return list(result.scalars())


async def outbox_scope(db: AsyncSession, outbox_id: int) -> Any:
    """(status, branch id or None) of one outbox row, or None when there is no such row."""
    lead, visit = _lead_of_conversation(), _session_of_reminder()
    stmt = (
        select(OutboxMessage.status, func.coalesce(visit.c.branch_id, lead.c.branch_id).label("branch_id"))
        .select_from(OutboxMessage)
        .outerjoin(lead, true())
        .outerjoin(visit, true())
        .where(OutboxMessage.id == outbox_id)
    )
    return (await db.execute(stmt)).one_or_none()


async def reset_failed(db: AsyncSession, outbox_id: int, *, now: datetime) -> Any:
    """Failed → pending, due now, with a fresh set of attempts (``last_error`` stays until it is sent).

    Returns (attempts, last_error) as they were when it failed, or None when it was not failed.
    """
    before = (
        select(OutboxMessage.id, OutboxMessage.attempts, OutboxMessage.last_error)
        .where(OutboxMessage.id == outbox_id)
        .with_for_update()
        .subquery("before")
    )
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.id == before.c.id, OutboxMessage.status == "failed")
        .values(status="pending", next_attempt_at=now, locked_at=None, attempts=0)
        .returning(before.c.attempts, before.c.last_error)
        .execution_options(synchronize_session=False)
    )
    return (await db.execute(stmt)).one_or_none()


async def mark_retried(db: AsyncSession, outbox_id: int, *, now: datetime) -> int:
    """Set ``retried_at`` on the row's open job failures; how many there were."""
    result = await db.execute(
        update(JobFailure)
        .where(JobFailure.outbox_id == outbox_id, JobFailure.retried_at.is_(None))
        .values(retried_at=now)
        .returning(JobFailure.id)
        .execution_options(synchronize_session=False)
    )
    return len(result.all())


async def retries_so_far(db: AsyncSession, outbox_id: int) -> int:
    """How often staff retried this row before (audit rows), so each retry gets a job id of its own."""
    result = await db.execute(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.entity == "outbox", AuditEntry.entity_id == outbox_id, AuditEntry.action == "outbox.retried")
    )
    return int(result.scalar_one())
