"""What the gateway reads about the workers, from RQ's own records in Redis: who is alive, how deep each queue is.

Reads only: no registry cleanup runs from here (no job is moved), except that RQ itself drops a worker whose record
expired from its list of workers when it meets one. Synchronous like RQ: call it in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from rq import Queue, Worker

from infra import queues
from infra.settings import Settings

#: RQ's job registries counted per queue, next to the queue itself ("queued").
JOB_STATES = ("queued", "scheduled", "started", "failed")


#: Leeway on top of :func:`quiet_gap` for the round trips and housekeeping between two heartbeats.
HEARTBEAT_SLACK = 5.0


def housekeeping_every(settings: Settings) -> int:
    """Seconds between a worker's housekeeping rounds (and the longest it blocks waiting for a job): the worker runs
    on it (workers/runtime.py), the gateway's health judges the worker's silence by it."""
    return max(5, min(60, int(2 * settings.FRONTDESK_SWEEP_EVERY)))


def quiet_gap(settings: Settings) -> float:
    """The longest a healthy worker with nothing to do goes between two heartbeats: RQ beats before and after each
    wait for a job, and our workers wait up to their housekeeping interval."""
    return float(housekeeping_every(settings)) + HEARTBEAT_SLACK


@dataclass(frozen=True)
class WorkerBeat:
    """A worker registered for our queues and when it last said it was alive (RQ's heartbeat, UTC)."""

    name: str
    state: str
    last_heartbeat: datetime | None


def registered_workers(connection: Redis, prefix: str) -> list[WorkerBeat]:
    """Workers RQ lists for any of our queues (a worker whose record expired is not listed)."""
    found: dict[str, WorkerBeat] = {}
    for queue in queues.queues(connection, prefix):
        for worker in Worker.all(queue=queue):
            found[worker.name] = WorkerBeat(
                name=worker.name, state=str(worker.get_state()), last_heartbeat=worker.last_heartbeat
            )
    return sorted(found.values(), key=lambda beat: beat.name)


def queue_jobs(connection: Redis, prefix: str) -> dict[str, dict[str, int]]:
    """Jobs per queue (its short name, e.g. "outbound") and state: waiting, scheduled for later, running, failed."""
    depths: dict[str, dict[str, int]] = {}
    for name in queues.NAMES:
        queue = Queue(queues.queue_name(prefix, name), connection=connection)
        depths[name] = {
            "queued": queue.count,
            "scheduled": queue.scheduled_job_registry.get_job_count(cleanup=False),
            "started": queue.started_job_registry.get_job_count(cleanup=False),
            "failed": queue.failed_job_registry.get_job_count(cleanup=False),
        }
    return depths
