"""RQ's scheduler as a thread of the worker, not a forked child.

RQ forks its scheduler from the worker. A fork made after the worker opened its PostgreSQL connections holds copies
of those sockets: when the worker was killed with SIGKILL, its child lived on, the sockets stayed open, PostgreSQL
never saw the worker go, and the dead worker's open transaction kept its row locks (every ingest waited behind
them). A thread has no copies and dies with its process.

It also rides out Redis going away instead of dying with the connection: it keeps trying every second, takes the
scheduler locks back when Redis returns (or when the worker that held them died: the locks live
:data:`LOCK_SECONDS`, not RQ's minute), and notices when Redis came back *empty* (restarted without its data, or
flushed), which it reports through ``on_redis_lost`` so the worker can re-register and rebuild what was lost at
once rather than at its next housekeeping round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from rq.scheduler import RQScheduler
from rq.scripts import acquire_or_refresh_lock
from rq.utils import now, utcformat

log = logging.getLogger(__name__)

#: How long a scheduler lock outlives a scheduler that stopped refreshing it (its worker was killed).
LOCK_SECONDS = 10
#: How often a scheduler without every lock tries to take the missing ones.
RETRY_LOCKS_EVERY = 2.0


class ThreadScheduler(RQScheduler):
    """Moves jobs scheduled for now onto their queues, once a second, in a daemon thread of the worker."""

    def __init__(
        self,
        *args: Any,
        epoch_key: str,
        on_redis_lost: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._epoch_key = epoch_key  # a key that exists as long as Redis keeps its data
        self._on_redis_lost = on_redis_lost
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis_away = False

    @property
    def should_reacquire_locks(self) -> bool:
        if self._queue_names == self.acquired_locks:
            return False
        last = self.lock_acquisition_time
        return last is None or (datetime.now() - last).total_seconds() >= RETRY_LOCKS_EVERY

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        """RQ's, with a lock that outlives its holder by :data:`LOCK_SECONDS` rather than a minute."""
        taken: set[str] = set()
        for name in self._queue_names:
            outcome = acquire_or_refresh_lock(self.connection, self.get_locking_key(name), self.name, LOCK_SECONDS)
            if outcome in ("acquired", "refreshed"):
                taken.add(name)
        self._scheduled_job_registries = []
        self._acquired_locks = taken
        self.lock_acquisition_time = datetime.now()  # type: ignore[assignment]
        if taken and auto_start and not self.is_running():
            self.start()
        return taken

    def heartbeat(self) -> None:
        """Refresh our metadata and our locks (a lock another scheduler took meanwhile is dropped)."""
        self.last_heartbeat = now()
        with self.connection.pipeline() as pipeline:
            pipeline.hset(self.key, "last_heartbeat", utcformat(self.last_heartbeat))
            pipeline.expire(self.key, self.interval + 60)
            pipeline.execute()
        for name in sorted(self._acquired_locks):
            if acquire_or_refresh_lock(self.connection, self.get_locking_key(name), self.name, LOCK_SECONDS) not in (
                "acquired",
                "refreshed",
            ):
                self._acquired_locks.discard(name)
                self._scheduled_job_registries = []

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> threading.Thread:
        """Start the thread (once; a running one is left alone)."""
        if self.is_running():
            assert self._thread is not None
            return self._thread
        self._stopped.clear()
        self._thread = threading.Thread(target=self._run, name=f"rq-scheduler-{self.name[:8]}", daemon=True)
        self._thread.start()
        # RQ's worker keeps the scheduler's "process" and asks it is_alive(); a thread answers that too.
        self._process = self._thread  # type: ignore[assignment]
        return self._thread

    def stop(self) -> None:
        """Stop the thread and give the locks back (if Redis is there to take them)."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        try:
            self.release_locks()
            self.register_death()
        except RedisError:
            log.warning("scheduler %s: Redis is away; its locks expire by themselves", self.name)

    def tick(self) -> None:
        """One round: notice lost data, keep the locks, move due jobs. Raises RedisError while Redis is away."""
        if self.connection.set(self._epoch_key, self.name, nx=True):
            # The key was not there: Redis is new to us (first start, restart without data, flush). Locks we
            # thought we held are gone with it.
            self._acquired_locks = set()
            self._scheduled_job_registries = []
            self.lock_acquisition_time = None
            if self._on_redis_lost is not None:
                self._on_redis_lost()
        if not self.connection.exists(self.key):
            self.register_birth()
        if self.should_reacquire_locks:
            self.acquire_locks()
        self.heartbeat()
        self.enqueue_scheduled_jobs()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.tick()
                if self._redis_away:
                    log.warning("scheduler %s: Redis answers again", self.name)
                self._redis_away = False
            except RedisError as exc:
                if not self._redis_away:
                    log.warning("scheduler %s: Redis is away (%s); trying every second", self.name, exc)
                self._redis_away = True
                self._acquired_locks = set()
                self._scheduled_job_registries = []
                self.lock_acquisition_time = None
            except Exception:  # a bug must not end scheduling for this worker's life
                log.exception("scheduler %s: a round failed", self.name)
            self._stopped.wait(self.interval)


def epoch_key(prefix: str) -> str:
    """The key whose absence tells a scheduler that Redis lost its data."""
    return f"{prefix}:redis-epoch"
