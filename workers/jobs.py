"""RQ jobs: module-level functions with primitive arguments that load what they need and call one service."""

from __future__ import annotations

import logging
import os
from typing import Any

from booking_core.db.engine import Db, database_name
from booking_core.services import booking, conversation, ingest, outbox
from workers import delivery, reminders, runtime

log = logging.getLogger(__name__)


def ping(note: str = "") -> dict[str, Any]:
    """Proves the worker path: database and Redis reached through the process's one loop, engine and client."""
    rt = runtime.current()
    return rt.run(_ping(rt, note))


async def _ping(rt: runtime.Runtime, note: str) -> dict[str, Any]:
    database = await database_name(rt.engine)
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


def deliver(outbox_id: int, route: str | None = None) -> str:
    """Send one outbox row on its channel (claimed first, so a repeated job never sends twice).

    ``route`` (``outbox.route``), when the enqueuer knew where the row goes: the row's place in the channel's rate
    limits is asked for in Redis while the row is claimed in PostgreSQL, rather than after. The record of a sent row
    (its provider id, one UPDATE) is started before the job returns and finishes while RQ files the job away; the
    worker waits for it before it takes another job."""
    rt = runtime.current()
    return rt.run(delivery.deliver_row(rt, outbox_id, record_later=True, route=route))


async def answer(rt: runtime.Runtime, db: Db, message_id: int) -> list[int]:
    """The chatbot's answer to one inbound message, with what it needs of the settings: its default language, and
    what signs the link of a visit it books."""
    settings = rt.settings
    return await conversation.handle(
        db,
        message_id,
        default_language=settings.DEFAULT_LANGUAGE,
        secret=settings.SECRET_KEY,
        base_url=settings.PUBLIC_BASE_URL,
    )


def dialog(message_ids: list[int]) -> int:
    """Answer acknowledged inbound messages (one transaction each) and queue their replies' delivery."""
    rt = runtime.current()
    return rt.run(_dialog(rt, message_ids))


async def _dialog(rt: runtime.Runtime, message_ids: list[int]) -> int:
    planned: list[int] = []
    routes: dict[int, str] = {}
    for message_id in message_ids:

        async def attempt(message_id: int = message_id) -> tuple[list[int], dict[int, str]]:
            # Run again whole if PostgreSQL aborts it (a deadlock while the dialog holds or books a slot).
            async with rt.sessionmaker() as db, db.begin():
                answered = await answer(rt, db, message_id)
            return answered, outbox.take_planned(db).routes

        answered, answered_routes = await booking.retrying(attempt)
        planned += answered
        routes |= answered_routes
    delivery.enqueue_deliveries(rt, planned, routes)
    return len(planned)


SWEEP_EVERY = 30  # seconds, unless FRONTDESK_SWEEP_EVERY says otherwise


def sweep() -> dict[str, int]:
    """The safety net, every 30 s (FRONTDESK_SWEEP_EVERY): answer messages a gateway never got to, resend what is
    due (and what a dead worker left 'sending'), expire holds, rebuild reminder schedules.

    It schedules its own next run under an id naming its time slot; every worker start runs one at once, and every
    worker's housekeeping (``runtime.Worker``) schedules it again if it went missing, so a flushed or restarted
    Redis loses nothing for long.
    """
    rt = runtime.current()
    try:
        return rt.run(_sweep(rt))
    finally:
        runtime.schedule_sweep(rt)


async def _sweep(rt: runtime.Runtime) -> dict[str, int]:
    answered = 0
    async with rt.sessionmaker() as db:
        waiting = await ingest.unprocessed(db)
    for message_id in waiting:
        async with rt.sessionmaker() as db, db.begin():
            outbox_ids = await answer(rt, db, message_id)
        delivery.enqueue_deliveries(rt, outbox_ids)
        answered += 1
    async with rt.sessionmaker() as db, db.begin():
        given_up = await outbox.give_up_uncertain(db, stale_after=delivery.reclaim_after(rt.settings))
        unparked = await outbox.unpark(db)
    async with rt.sessionmaker() as db:
        due = await outbox.due(db, stale_after=delivery.reclaim_after(rt.settings))
    delivery.enqueue_deliveries(rt, sorted({*due, *unparked}))
    async with rt.sessionmaker() as db, db.begin():
        expired = await booking.expire_holds(db)
    await reminders.resync(rt)  # reminders and queue notices: Redis is rebuilt from the database
    return {
        "answered": answered,
        "redelivered": len(due),
        "unparked": len(unparked),
        "given_up_uncertain": given_up,
        "expired_holds": expired,
    }
