"""Reminder jobs, and the resync that makes Redis match the database again.

``reminders`` rows are the truth. Each scheduled row has one RQ job, ``send_reminder(reminder_id)``, scheduled
with ``enqueue_at(due_at)`` under ``<prefix>-reminder-<id>-<due epoch>``: a moved reminder gets a new job id, and
its old job finds the row changed (or already sent) and does nothing. :func:`resync` runs in every sweep (and so
right after every worker start): it sends what is overdue and re-creates every missing schedule, so a flushed or
restarted Redis loses no reminder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from rq.job import Job

from booking_core.services import reminders
from booking_core.services.reminders import Due
from infra import job_names, queues
from workers import delivery, queue_replies, runtime

log = logging.getLogger(__name__)

#: Job states in which the job will still run (or is running): nothing to re-create.
ALIVE = frozenset({"scheduled", "queued", "started", "deferred"})
BATCH = 500


def job_id(prefix: str, due: Due) -> str:
    """Deterministic: the same row at the same due time always has the same job."""
    return f"{prefix}-reminder-{due.reminder_id}-{int(due.due_at.timestamp())}"


def send_reminder(reminder_id: int) -> str:
    """Send one reminder if it is (still) scheduled and due; ``sent``, ``skipped`` or ``not_due``."""
    rt = runtime.current()
    return rt.run(send_one(rt, reminder_id))


async def send_one(rt: runtime.Runtime, reminder_id: int) -> str:
    """The job's work: claim and plan the reminder in one transaction, then send it (see delivery.deliver_planned)."""
    async with rt.sessionmaker() as db, db.begin():
        result = await reminders.send(db, reminder_id, default_language=rt.settings.DEFAULT_LANGUAGE)
    if result.outbox_id is not None:
        await delivery.deliver_planned(rt, [result.outbox_id])
    return result.status


def schedule(rt: runtime.Runtime, rows: Sequence[Due], *, now: datetime | None = None) -> int:
    """Create the RQ job of every row whose job is missing or finished; a due row's job is enqueued at once.

    Existing jobs are looked up in one pipelined round trip per batch, so a sweep over thousands of future
    reminders stays cheap.
    """
    now = now or datetime.now(UTC)
    connection = rt.sync_redis()
    prefix = rt.settings.FRONTDESK_REDIS_PREFIX
    created = 0
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        ids = [job_id(prefix, due) for due in batch]
        with connection.pipeline(transaction=False) as pipe:
            for one in ids:
                pipe.hget(Job.key_for(one), "status")
            states = pipe.execute()
        for due, one, state in zip(batch, ids, states, strict=True):
            if state is not None and state.decode() in ALIVE:
                continue
            at = due.due_at if due.due_at > now else None
            queues.enqueue(connection, prefix, job_names.SEND_REMINDER, due.reminder_id, job_id=one, at=at)
            created += 1
    return created


async def send_due(rt: runtime.Runtime, *, limit: int = BATCH) -> dict[str, int]:
    """Send every overdue reminder, each in its own transaction; one patient's failure never stops the batch."""
    async with rt.sessionmaker() as db:
        ids = await reminders.due(db, limit=limit)
    counts = {"sent": 0, "skipped": 0, "failed": 0}
    for reminder_id in ids:
        try:
            async with rt.sessionmaker() as db, db.begin():
                result = await reminders.send(db, reminder_id, default_language=rt.settings.DEFAULT_LANGUAGE)
        except Exception as exc:
            log.exception("reminder %s could not be sent", reminder_id)
            counts["failed"] += 1
            await _give_up(rt, reminder_id, f"{type(exc).__name__}: {exc}")
            continue
        if result.status in counts:
            counts[result.status] += 1
        if result.outbox_id is not None:
            delivery.enqueue_deliveries(rt, [result.outbox_id])
    return counts


async def _give_up(rt: runtime.Runtime, reminder_id: int, note: str) -> None:
    try:
        async with rt.sessionmaker() as db, db.begin():
            await reminders.give_up(db, reminder_id, note)
    except Exception:
        log.exception("reminder %s: could not record the failure either; the next sweep tries again", reminder_id)


async def resync(rt: runtime.Runtime) -> dict[str, int]:
    """Make Redis match the database: send overdue reminders, re-create missing schedules, and announce queue
    places that a concurrent change kept from being announced. Called by every sweep."""
    summary = {f"reminders_{k}": v for k, v in (await send_due(rt)).items()}
    async with rt.sessionmaker() as db:
        rows = await reminders.pending(db)
    summary["reminders_scheduled"] = schedule(rt, rows)
    summary["queue_notices"] = await queue_replies.catch_up(rt)
    return summary
