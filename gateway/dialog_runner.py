"""Hands just-acknowledged messages to the workers' dialog queue, in batches.

The gateway only verifies, persists and acknowledges; the chatbot's step runs in a worker (`workers.jobs.dialog`),
so a burst of updates never slows the acknowledgements down. Messages that arrive together go in one job. If the
job is lost (Redis down, a process died), the message stays unprocessed and the worker's sweep answers it.

A quiet chat's message is queued at once; under load, jobs go out at most every ``MIN_INTERVAL`` and carry what
arrived meanwhile (up to ``MAX_BATCH``). Each RQ enqueue runs in a thread (the Redis client is synchronous), and
threads contend with the event loop for the GIL: fewer, fuller jobs keep the acknowledgements fast.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis import Redis as SyncRedis

from infra import job_names, queues
from infra.settings import Settings

log = logging.getLogger(__name__)
MAX_BATCH = 50
#: Seconds between two dialog jobs at most: under load one job carries what arrived meanwhile.
MIN_INTERVAL = 0.025


def enqueue_dialog(connection: SyncRedis, prefix: str, message_ids: Sequence[int]) -> None:
    queues.enqueue(
        connection,
        prefix,
        job_names.DIALOG,
        list(message_ids),
        queue=queues.DIALOG,
        job_id=f"dialog-{message_ids[0]}-{len(message_ids)}",
    )


class DialogRunner:
    def __init__(self, settings: Settings, rq_redis: SyncRedis) -> None:
        self._settings = settings
        self._rq_redis = rq_redis
        self._pending: list[int] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")

    def schedule(self, message_id: int) -> None:
        """Queue ``message_id`` for the dialog: at once when it is quiet, else with what arrives meanwhile."""
        self._pending.append(message_id)
        if len(self._pending) >= MAX_BATCH:
            self._flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            # call_later with 0 still runs after this loop turn, so updates answered together share the job.
            self._timer = loop.call_later(max(0.0, self._last_flush + MIN_INTERVAL - loop.time()), self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        loop = asyncio.get_running_loop()
        self._last_flush = loop.time()
        for start in range(0, len(batch), MAX_BATCH):
            task = loop.create_task(self._enqueue(batch[start : start + MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _enqueue(self, message_ids: list[int]) -> None:
        try:
            await asyncio.to_thread(enqueue_dialog, self._rq_redis, self._settings.FRONTDESK_REDIS_PREFIX, message_ids)
        except Exception:  # Redis unreachable: the messages are safe in Postgres and the sweep will answer them
            log.warning("could not queue the dialog for messages %s; the sweep will answer them", message_ids)

    async def drain(self, seconds: float = 10.0) -> None:
        """Hand over what is still pending (on shutdown)."""
        if self._pending:
            self._flush()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=seconds)
