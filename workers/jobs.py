"""RQ jobs: module-level functions with primitive arguments that load what they need and call one service."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from booking_core.services import outbox
from workers import queues, runtime
from workers.ratelimit import Limit, RateLimiter


def ping(note: str = "") -> dict[str, Any]:
    """Proves the worker path: database and Redis reached through the process's one loop, engine and client."""
    rt = runtime.current()
    return rt.run(_ping(rt, note))


async def _ping(rt: runtime.Runtime, note: str) -> dict[str, Any]:
    async with rt.engine.connect() as conn:
        database = (await conn.execute(text("SELECT current_database()"))).scalar_one()
    await rt.redis.ping()  # type: ignore[misc]
    return {
        "note": note,
        "pid": os.getpid(),
        "database": database,
        "loop_id": id(rt.loop),
        "engine_id": id(rt.engine),
        "connections_opened": rt.connections_opened,
        "jobs_run": rt.jobs_run,
    }


def _whole_second_after(moment: datetime) -> datetime:
    """RQ's scheduler keeps whole seconds: schedule on the next one so the job never runs before the row is due."""
    return moment.replace(microsecond=0) + timedelta(seconds=1)


#: A rate-limit wait the worker sits out; a longer one puts the message back on the schedule instead.
SHORT_WAIT = 0.25


def deliver(outbox_id: int) -> str:
    """Send one outbox row on its channel (claimed first, so a repeated job never sends twice)."""
    rt = runtime.current()
    return rt.run(_deliver(rt, outbox_id))


async def _deliver(rt: runtime.Runtime, outbox_id: int) -> str:
    senders = rt.senders()
    limiter: RateLimiter = rt.limiter()

    async def before_send(message: object) -> None:
        sender = senders.get(message.channel)  # type: ignore[attr-defined]
        limits = [Limit(*item) for item in sender.rate_limits(message)] if sender is not None else []
        while (wait := await limiter.try_acquire(limits)) > 0:
            if wait > SHORT_WAIT:  # don't hold the worker: others' messages are ready to go
                raise outbox.Postpone(wait)
            await asyncio.sleep(wait)

    async with rt.sessionmaker() as db:
        outcome = await outbox.deliver(db, outbox_id, senders, before_send=before_send)
    if outcome.status == "retry" and outcome.retry_at is not None:
        queues.enqueue(
            rt.sync_redis(),
            rt.settings.FRONTDESK_REDIS_PREFIX,
            "workers.jobs.deliver",
            outbox_id,
            queue=queues.OUTBOUND,
            at=_whole_second_after(outcome.retry_at),
            job_id=f"deliver-{outbox_id}-{outcome.attempts}-{int(outcome.retry_at.timestamp() * 1000)}",
        )
    return outcome.status


def dialog(message_ids: list[int]) -> int:
    """Answer acknowledged inbound messages (one transaction each) and queue their replies' delivery."""
    rt = runtime.current()
    return rt.run(_dialog(rt, message_ids))


async def _dialog(rt: runtime.Runtime, message_ids: list[int]) -> int:
    from booking_core.services import conversation

    planned: list[int] = []
    for message_id in message_ids:
        async with rt.sessionmaker() as db, db.begin():
            planned += await conversation.handle(db, message_id, default_language=rt.settings.DEFAULT_LANGUAGE)
    enqueue_deliveries(rt, planned)
    return len(planned)


SWEEP_EVERY = 30  # seconds


def sweep() -> dict[str, int]:
    """The safety net, every 30 s: answer messages a gateway never got to, resend what is due, expire holds.

    It schedules its own next run under a fixed job id, and every worker start schedules it too, so a flushed
    Redis loses nothing for long.
    """
    rt = runtime.current()
    try:
        return rt.run(_sweep(rt))
    finally:
        schedule_sweep(rt)


def schedule_sweep(rt: runtime.Runtime, *, delay: float = SWEEP_EVERY) -> None:
    """Schedule the next sweep. Its id names its time slot: every worker asking for the same slot makes one job,
    and the id never collides with the sweep that is running now."""
    from datetime import UTC, datetime, timedelta

    at = datetime.now(UTC) + timedelta(seconds=delay)
    slot = int(at.timestamp() // SWEEP_EVERY)
    queues.enqueue(
        rt.sync_redis(),
        rt.settings.FRONTDESK_REDIS_PREFIX,
        "workers.jobs.sweep",
        at=at,
        job_id=f"{rt.settings.FRONTDESK_REDIS_PREFIX}-sweep-{slot}",
    )


async def _sweep(rt: runtime.Runtime) -> dict[str, int]:
    from booking_core.services import booking, conversation, ingest
    from workers.reminders import resync

    answered = 0
    async with rt.sessionmaker() as db:
        waiting = await ingest.unprocessed(db)
    for message_id in waiting:
        async with rt.sessionmaker() as db, db.begin():
            outbox_ids = await conversation.handle(db, message_id, default_language=rt.settings.DEFAULT_LANGUAGE)
        enqueue_deliveries(rt, outbox_ids)
        answered += 1
    async with rt.sessionmaker() as db:
        due = await outbox.due(db)
    enqueue_deliveries(rt, due)
    async with rt.sessionmaker() as db, db.begin():
        expired = await booking.expire_holds(db)
    await resync(rt)  # reminders and queue notices: Redis is rebuilt from the database
    return {"answered": answered, "redelivered": len(due), "expired_holds": expired}


def enqueue_deliveries(rt: runtime.Runtime, outbox_ids: list[int]) -> None:
    """One deterministic deliver job per outbox row (from inside a job)."""
    for outbox_id in outbox_ids:
        queues.enqueue(
            rt.sync_redis(),
            rt.settings.FRONTDESK_REDIS_PREFIX,
            "workers.jobs.deliver",
            outbox_id,
            queue=queues.OUTBOUND,
            job_id=f"deliver-{outbox_id}",
        )
