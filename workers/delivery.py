"""Sending outbox rows from inside a worker: the channels' shared rate limits, one row's delivery, and the rows a
job has just planned (sent where they were planned, or handed to deliver jobs).

The jobs (workers/jobs.py, reminders.py, queue_replies.py, ...) call it; it imports none of them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from booking_core.domain.messages import OutboundMessage
from booking_core.services import outbox
from infra import queues
from infra.ratelimit import Limit, RateLimiter
from infra.settings import Settings
from workers import runtime

if TYPE_CHECKING:
    from channels.base import Channel, ChannelAdapter

log = logging.getLogger(__name__)


def _whole_second_after(moment: datetime) -> datetime:
    """RQ's scheduler keeps whole seconds: schedule on the next one so the job never runs before the row is due."""
    return moment.replace(microsecond=0) + timedelta(seconds=1)


#: A rate-limit wait the worker sits out; a longer one puts the message back on the schedule instead.
SHORT_WAIT = 0.25


def _limits(sender: ChannelAdapter | None, message: OutboundMessage) -> list[Limit]:
    return [Limit(*item) for item in sender.rate_limits(message)] if sender is not None else []


class SharedPacing:
    """The channels' rate limits as every worker shares them in Redis (``outbox.Pacing``).

    ``route`` (``outbox.route``): where the row about to be claimed goes, when its job knew; its place in the rate
    limits is then asked for at once, while the row is claimed, rather than after."""

    def __init__(
        self, limiter: RateLimiter, senders: Mapping[Channel, ChannelAdapter], *, route: str | None = None
    ) -> None:
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


async def deliver_row(
    rt: runtime.Runtime,
    outbox_id: int,
    *,
    here_only: bool = False,
    record_later: bool = False,
    route: str | None = None,
) -> str:
    """Send one outbox row (the deliver job's work, ``workers.jobs.deliver``; ``record_later`` and ``route`` are
    explained there). ``here_only``: leave a row on a channel this worker has no sender for alone (``skipped``)
    instead of failing it; :func:`deliver_planned` hands such a row to a deliver job."""
    senders = rt.senders()
    pacing = SharedPacing(rt.limiter(), senders, route=route)
    try:
        async with rt.sessionmaker() as db:
            how = outbox.Sending(
                senders,
                pacing=pacing,
                stale_after=reclaim_after(rt.settings),
                own_channels_only=here_only,
                pool=await rt.sending_pool(),
                record_later=rt.after_job if record_later else None,
            )
            outcome = await outbox.deliver(db, outbox_id, how)
    finally:
        await pacing.settle()
    if rt.unfinished:
        await asyncio.sleep(0)  # the record's statement goes out now, so the database works on it meanwhile
    if outcome.status == "retry" and outcome.retry_at is not None:
        queues.enqueue_delivery(
            rt.sync_redis(),
            rt.settings.FRONTDESK_REDIS_PREFIX,
            outbox_id,
            at=_whole_second_after(outcome.retry_at),
            job_id=f"deliver-{outbox_id}-{outcome.attempts}-{int(outcome.retry_at.timestamp() * 1000)}",
        )
    return outcome.status


def reclaim_after(settings: Settings) -> timedelta:
    """How long a row may stay 'sending' before it belongs to a dead worker (FRONTDESK_OUTBOX_RECLAIM_AFTER)."""
    return timedelta(seconds=settings.FRONTDESK_OUTBOX_RECLAIM_AFTER)


async def deliver_planned(rt: runtime.Runtime, outbox_ids: list[int]) -> None:
    """Send rows a job has just planned and committed from that same job, rather than through a deliver job each:
    a message costs one job instead of two (for 10,000 reminders due at once, that is what keeps up with the
    channels' limits on two cores). Everything else is as in :func:`deliver_row`: a row that must wait (a rate
    limit, an earlier message to the same person) gets its retry job, a refused one is recorded. A row this worker
    has no sender for, or whose sending raised, is handed to a deliver job, as every row used to be.
    """
    for outbox_id in outbox_ids:
        try:
            status = await deliver_row(rt, outbox_id, here_only=True)
        except Exception:
            log.exception("outbox row %s: sending it where it was planned failed; a deliver job takes it", outbox_id)
            status = "skipped"
        if status == "skipped":
            enqueue_deliveries(rt, [outbox_id])


def enqueue_deliveries(rt: runtime.Runtime, outbox_ids: list[int], routes: dict[int, str] | None = None) -> None:
    """One deterministic deliver job per outbox row (from inside a job); ``routes``: where they go, as
    ``outbox.Planned`` has them."""
    queues.enqueue_deliveries(rt.sync_redis(), rt.settings.FRONTDESK_REDIS_PREFIX, outbox_ids, routes)
