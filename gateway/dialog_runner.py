"""Runs the dialog for a just-acknowledged message in the background, then hands its replies to the workers.

The provider has its 2xx already (the message is in Postgres). If this process dies before the dialog ran, the
message stays unprocessed and the worker's sweep runs it: nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis import Redis as SyncRedis

from booking_core.db.engine import Sessions
from gateway.settings import Settings
from workers import queues

log = logging.getLogger(__name__)


def enqueue_deliveries(connection: SyncRedis, prefix: str, outbox_ids: Sequence[int]) -> None:
    """One deterministic job per outbox row (a repeat is harmless: delivery claims the row first)."""
    for outbox_id in outbox_ids:
        queues.enqueue(
            connection, prefix, "workers.jobs.deliver", outbox_id, queue=queues.OUTBOUND, job_id=f"deliver-{outbox_id}"
        )


class DialogRunner:
    def __init__(self, settings: Settings, sessionmaker: Sessions, rq_redis: SyncRedis) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._rq_redis = rq_redis
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, message_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._run(message_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, message_id: int) -> None:
        from booking_core.services import conversation

        try:
            async with self._sessionmaker() as db, db.begin():
                outbox_ids = await conversation.handle(db, message_id, default_language=self._settings.DEFAULT_LANGUAGE)
            if outbox_ids:
                await asyncio.to_thread(
                    enqueue_deliveries, self._rq_redis, self._settings.FRONTDESK_REDIS_PREFIX, outbox_ids
                )
        except Exception:  # the sweep retries unprocessed messages; never crash the gateway
            log.exception("dialog step for message %s failed; the sweep will retry it", message_id)

    async def drain(self, seconds: float = 10.0) -> None:
        """Let running dialog steps finish (on shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=seconds)
