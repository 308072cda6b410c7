"""Hands just-acknowledged messages to the workers' dialog queue, batched per event-loop turn.

The gateway only verifies, persists and acknowledges; the chatbot's step runs in a worker (`workers.jobs.dialog`),
so a burst of updates never slows the acknowledgements down. Messages that arrive together go in one job. If the
job is lost (Redis down, a process died), the message stays unprocessed and the worker's sweep answers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis import Redis as SyncRedis

from gateway.settings import Settings
from workers import queues

log = logging.getLogger(__name__)
MAX_BATCH = 50
#: How long a message may wait for others to share its job: under load one job carries many messages.
BATCH_WINDOW = 0.01


def enqueue_deliveries(connection: SyncRedis, prefix: str, outbox_ids: Sequence[int]) -> None:
    """One deterministic job per outbox row (a repeat is harmless: delivery claims the row first)."""
    for outbox_id in outbox_ids:
        queues.enqueue(
            connection, prefix, "workers.jobs.deliver", outbox_id, queue=queues.OUTBOUND, job_id=f"deliver-{outbox_id}"
        )


def enqueue_dialog(connection: SyncRedis, prefix: str, message_ids: Sequence[int]) -> None:
    queues.enqueue(
        connection,
        prefix,
        "workers.jobs.dialog",
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

    def schedule(self, message_id: int) -> None:
        """Queue ``message_id`` for the dialog; what arrives within ``BATCH_WINDOW`` goes in one job."""
        self._pending.append(message_id)
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_later(BATCH_WINDOW, self._flush)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), MAX_BATCH):
            task = asyncio.get_running_loop().create_task(self._enqueue(batch[start : start + MAX_BATCH]))
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
