"""RQ jobs: module-level functions with primitive arguments that load what they need and call one service."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError

from booking_core.db.engine import database_name
from booking_core.domain.messages import OutboundMessage
from booking_core.services import booking, outbox
from infra import job_names, queues
from infra.ratelimit import Limit, RateLimiter
from infra.settings import Settings
from workers import runtime

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


def _whole_second_after(moment: datetime) -> datetime:
    """RQ's scheduler keeps whole seconds: schedule on the next one so the job never runs before the row is due."""
    return moment.replace(microsecond=0) + timedelta(seconds=1)


#: A rate-limit wait the worker sits out; a longer one puts the message back on the schedule instead.
SHORT_WAIT = 0.25


def deliver(outbox_id: int, route: str | None = None) -> str:
    """Send one outbox row on its channel (claimed first, so a repeated job never sends twice).

    ``route`` (``outbox.route``), when the enqueuer knew where the row goes: the row's place in the channel's rate
    limits is asked for in Redis while the row is claimed in PostgreSQL, rather than after. The record of a sent row
    (its provider id, one UPDATE) is started before the job returns and finishes while RQ files the job away; the
    worker waits for it before it takes another job."""
    rt = runtime.current()
    return rt.run(_deliver(rt, outbox_id, record_later=True, route=route))


def _limits(sender: Any, message: OutboundMessage) -> list[Limit]:
    return [Limit(*item) for item in sender.rate_limits(message)] if sender is not None else []


class SharedPacing:
    """The channels' rate limits as every worker shares them in Redis (``outbox.Pacing``).

    ``route`` (``outbox.route``): where the row about to be claimed goes, when its job knew; its place in the rate
    limits is then asked for at once, while the row is claimed, rather than after."""

    def __init__(self, limiter: RateLimiter, senders: dict[str, Any], *, route: str | None = None) -> None:
        self._limiter = limiter
        self._senders = senders
        self._route = route
        self._early: asyncio.Future[float] | None = None
        self._early_limits: list[Limit] = []
        self._early_token = secrets.token_hex(8)
        if route is not None:
            channel, recipient = outbox.unroute(route)
            expected = OutboundMessage(channel=channel, recipient=recipient, text="")  # type: ignore[arg-type]
            self._early_limits = self._limits(expected)
            self._early = asyncio.ensure_future(limiter.try_acquire(self._early_limits, token=self._early_token))

    def _limits(self, message: OutboundMessage) -> list[Limit]:
        return _limits(self._senders.get(message.channel), message)

    async def before_send(self, message: OutboundMessage) -> None:
        limits = self._limits(message)
        if self._early is not None and self._route == outbox.route(message.channel, message.recipient):
            wait, self._early = await self._early, None
        else:
            wait = await self._limiter.try_acquire(limits)
        while wait > 0:
            if wait > SHORT_WAIT:  # don't hold the worker: others' messages are ready to go
                raise outbox.Postpone(wait)
            await asyncio.sleep(wait)
            wait = await self._limiter.try_acquire(limits)

    async def throttled(self, message: OutboundMessage, seconds: float) -> None:
        await self._limiter.pause(self._limits(message), seconds)

    async def settle(self) -> None:
        """The early answer, if the row was not sent (already sent, or waiting its turn behind an earlier message):
        a place it took is given back, else messages that wait their turn would use up their chat's one place a
        second while the message at the head of the line never finds it free."""
        if self._early is None:
            return
        early, self._early = self._early, None
        [taken] = await asyncio.gather(early, return_exceptions=True)
        if taken == 0.0:
            try:
                await self._limiter.release(self._early_limits, self._early_token)
            except RedisError:
                log.warning("could not give back an unused rate-limit place; it expires with its window")


async def _deliver(
    rt: runtime.Runtime,
    outbox_id: int,
    *,
    here_only: bool = False,
    record_later: bool = False,
    route: str | None = None,
) -> str:
    """``here_only``: leave a row on a channel this worker has no sender for alone (``skipped``) instead of failing
    it; :func:`deliver_planned` hands such a row to a deliver job. ``record_later``, ``route``: see :func:`deliver`."""
    senders = rt.senders()
    pacing = SharedPacing(rt.limiter(), senders, route=route)
    try:
        async with rt.sessionmaker() as db:
            outcome = await outbox.deliver(
                db,
                outbox_id,
                senders,
                pacing=pacing,
                stale_after=reclaim_after(rt.settings),
                channels=list(senders) if here_only else None,
                hot=await rt.sending_pool(),
                record_later=rt.after_job if record_later else None,
            )
    finally:
        await pacing.settle()
    if rt.unfinished:
        await asyncio.sleep(0)  # the record's statement goes out now, so the database works on it meanwhile
    if outcome.status == "retry" and outcome.retry_at is not None:
        queues.enqueue(
            rt.sync_redis(),
            rt.settings.FRONTDESK_REDIS_PREFIX,
            job_names.DELIVER,
            outbox_id,
            queue=queues.OUTBOUND,
            at=_whole_second_after(outcome.retry_at),
            job_id=f"deliver-{outbox_id}-{outcome.attempts}-{int(outcome.retry_at.timestamp() * 1000)}",
            timeout=queues.DELIVER_TIMEOUT,
        )
    return outcome.status


async def answer(rt: runtime.Runtime, db: Any, message_id: int) -> list[int]:
    """The chatbot's answer to one inbound message, with what it needs of the settings: its default language, and
    what signs the link of a visit it books."""
    from booking_core.services import conversation

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
            return answered, outbox.routes(db)

        answered, answered_routes = await booking.retrying(attempt)
        planned += answered
        routes |= answered_routes
    enqueue_deliveries(rt, planned, routes)
    return len(planned)


SWEEP_EVERY = 30  # seconds, unless FRONTDESK_SWEEP_EVERY says otherwise


def reclaim_after(settings: Settings) -> timedelta:
    """How long a row may stay 'sending' before it belongs to a dead worker (FRONTDESK_OUTBOX_RECLAIM_AFTER)."""
    return timedelta(seconds=settings.FRONTDESK_OUTBOX_RECLAIM_AFTER)


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
        schedule_sweep(rt)


def schedule_sweep(rt: runtime.Runtime) -> None:
    """Make sure the next sweep is scheduled: at the start of the next FRONTDESK_SWEEP_EVERY slot, under an id that
    names the slot. However many workers ask (each sweep, each worker's housekeeping), and however often, there is
    one sweep per slot, and the id never collides with the sweep that is running now (it is in an earlier slot)."""
    every = rt.settings.FRONTDESK_SWEEP_EVERY
    slot = int(time.time() // every) + 1
    queues.enqueue(
        rt.sync_redis(),
        rt.settings.FRONTDESK_REDIS_PREFIX,
        job_names.SWEEP,
        at=datetime.fromtimestamp(slot * every, UTC),
        job_id=f"{rt.settings.FRONTDESK_REDIS_PREFIX}-sweep-{slot}",
    )


def sweep_now(rt: runtime.Runtime) -> None:
    """A sweep at once, outside the schedule (a worker start). It needs no scheduler: a worker that replaces one
    killed with SIGKILL cannot schedule anything until the dead one's scheduler lock expires, but it sweeps."""
    queues.enqueue(
        rt.sync_redis(),
        rt.settings.FRONTDESK_REDIS_PREFIX,
        job_names.SWEEP,
        job_id=f"{rt.settings.FRONTDESK_REDIS_PREFIX}-sweep-start-{os.getpid()}-{time.time_ns()}",
    )


async def _sweep(rt: runtime.Runtime) -> dict[str, int]:
    from booking_core.services import booking, ingest
    from workers.reminders import resync

    answered = 0
    async with rt.sessionmaker() as db:
        waiting = await ingest.unprocessed(db)
    for message_id in waiting:
        async with rt.sessionmaker() as db, db.begin():
            outbox_ids = await answer(rt, db, message_id)
        enqueue_deliveries(rt, outbox_ids)
        answered += 1
    async with rt.sessionmaker() as db, db.begin():
        given_up = await outbox.give_up_uncertain(db, stale_after=reclaim_after(rt.settings))
        unparked = await outbox.unpark(db)
    async with rt.sessionmaker() as db:
        due = await outbox.due(db, stale_after=reclaim_after(rt.settings))
    enqueue_deliveries(rt, sorted({*due, *unparked}))
    async with rt.sessionmaker() as db, db.begin():
        expired = await booking.expire_holds(db)
    await resync(rt)  # reminders and queue notices: Redis is rebuilt from the database
    return {
        "answered": answered,
        "redelivered": len(due),
        "unparked": len(unparked),
        "given_up_uncertain": given_up,
        "expired_holds": expired,
    }


async def deliver_planned(rt: runtime.Runtime, outbox_ids: list[int]) -> None:
    """Send rows a job has just planned and committed from that same job, rather than through a deliver job each:
    a message costs one job instead of two (for 10,000 reminders due at once, that is what keeps up with the
    channels' limits on two cores). Everything else is as in :func:`deliver`: a row that must wait (a rate limit,
    an earlier message to the same person) gets its retry job, a refused one is recorded. A row this worker has
    no sender for, or whose sending raised, is handed to a deliver job, as every row used to be.
    """
    for outbox_id in outbox_ids:
        try:
            status = await _deliver(rt, outbox_id, here_only=True)
        except Exception:
            log.exception("outbox row %s: sending it where it was planned failed; a deliver job takes it", outbox_id)
            status = "skipped"
        if status == "skipped":
            enqueue_deliveries(rt, [outbox_id])


def enqueue_deliveries(rt: runtime.Runtime, outbox_ids: list[int], routes: dict[int, str] | None = None) -> None:
    """One deterministic deliver job per outbox row (from inside a job); ``routes`` as ``outbox.routes`` gives them."""
    queues.enqueue_deliveries(rt.sync_redis(), rt.settings.FRONTDESK_REDIS_PREFIX, outbox_ids, routes)
