"""Queue names and enqueueing. Jobs are named in :mod:`infra.job_names` and take ids, never objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.job import Job

from infra import job_names

DEFAULT = "default"
OUTBOUND = "outbound"
DIALOG = "dialog"
#: A worker serves the chatbot first, then what goes out: answers are what patients are waiting for.
NAMES = (DIALOG, OUTBOUND, DEFAULT)
#: Seconds a deliver job may run: a send waits up to 60 s for the provider (a photo and its text, two sends).
DELIVER_TIMEOUT = 300


def queue_name(prefix: str, name: str) -> str:
    return f"{prefix}:{name}"


def queues(connection: Redis, prefix: str) -> list[Queue]:
    return [Queue(queue_name(prefix, name), connection=connection) for name in NAMES]


def enqueue(
    connection: Redis,
    prefix: str,
    func: str,
    *args: Any,
    queue: str = DEFAULT,
    job_id: str | None = None,
    at: datetime | None = None,
    retries: int = 0,
    timeout: int = 120,
) -> Job:
    """Enqueue the job ``func`` (a name from :mod:`infra.job_names`) now or at ``at``; a deterministic ``job_id``
    makes repeats harmless."""
    q = Queue(queue_name(prefix, queue), connection=connection)
    options: dict[str, Any] = {
        "job_id": job_id,
        "job_timeout": timeout,
        "result_ttl": 3600,
        "failure_ttl": 7 * 86400,
    }
    if retries:
        options["retry"] = Retry(max=retries, interval=[5, 30, 120][:retries] or 5)
    if at is not None:
        return q.enqueue_at(at, func, *args, **options)
    return q.enqueue(func, *args, **options)


def enqueue_deliveries(
    connection: Redis, prefix: str, outbox_ids: Sequence[int], routes: Mapping[int, str] | None = None
) -> None:
    """One deterministic ``deliver`` job per outbox row (a repeat is harmless: delivery claims the row first).

    ``routes`` (``outbox.Planned.routes``): where each row goes, when the caller knows; the job then takes its place
    in the channel's rate limits while it claims the row."""
    for outbox_id in outbox_ids:
        enqueue_delivery(connection, prefix, outbox_id, route=routes.get(outbox_id) if routes else None)


def enqueue_delivery(
    connection: Redis,
    prefix: str,
    outbox_id: int,
    *,
    route: str | None = None,
    job_id: str | None = None,
    at: datetime | None = None,
) -> Job:
    """The deliver job of one outbox row: every deliver job is enqueued here, with the deliver job's timeout.

    ``route``: where the row goes, when the caller knows; ``job_id``: ``deliver-<id>`` unless a retry names its own
    (a staff retry, the job's own retry at ``at``)."""
    args: tuple[Any, ...] = (outbox_id,) if route is None else (outbox_id, route)
    return enqueue(
        connection,
        prefix,
        job_names.DELIVER,
        *args,
        queue=OUTBOUND,
        job_id=job_id or f"deliver-{outbox_id}",
        at=at,
        timeout=DELIVER_TIMEOUT,
    )
