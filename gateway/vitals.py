"""The figures /health judges and /metrics shows: gathered concurrently, each bounded in time, kept a moment.

A flood of probes costs the database one round trip a second at most: every figure is cached for
:data:`CACHE_SECONDS` and asked once however many requests wait for it (the outbox's full count, which grows with
history, for :data:`TOTALS_EVERY`). The database figures come over a pool of their own (two connections, named
``frontdesk-health``), so they still answer, and name the culprit, when the gateway's own pools are all waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from redis import Redis as SyncRedis

from booking_core.db.queries import health as queries
from booking_core.db.raw import RawDb, make_raw_pool
from infra import watch
from infra.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a figure is reused before it is asked again.
CACHE_SECONDS = 1.0
#: How long the outbox's count by status (a full count) is reused.
TOTALS_EVERY = 30.0
#: The longest a database or Redis figure may take; past it the figure is "unknown".
QUERY_SECONDS = 2.0
#: Workers with a heartbeat this recent count as live in /metrics when /health does not watch them.
LIVE_WORKER_SECONDS = 60.0


class _Cached(Generic[T]):
    """One value (or error) made at most once per ``seconds``; callers that arrive meanwhile share the making."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._at = -float("inf")
        self._outcome: tuple[T | None, BaseException | None] | None = None
        self._making: asyncio.Task[T] | None = None

    async def get(self, make: Callable[[], Awaitable[T]]) -> T:
        if self._making is None:
            if self._outcome is not None and time.monotonic() - self._at < self._seconds:
                value, error = self._outcome
                if error is not None:
                    raise error
                return value  # type: ignore[return-value]
            self._making = asyncio.ensure_future(self._make(make))
        # Shielded: a prober that hangs up does not cancel the answer the others are waiting for.
        return await asyncio.shield(self._making)

    async def _make(self, make: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await make()
        except Exception as exc:
            self._outcome = (None, exc)
            raise
        else:
            self._outcome = (value, None)
            return value
        finally:
            self._at = time.monotonic()
            self._making = None


@dataclass(frozen=True)
class WorkerVitals:
    workers: list[watch.WorkerBeat]
    jobs: dict[str, dict[str, int]]
    read_at: datetime

    def heartbeat_ages(self) -> list[float]:
        """Seconds since each registered worker's last heartbeat (workers without one are left out)."""
        return [
            max(0.0, (self.read_at - beat.last_heartbeat).total_seconds())
            for beat in self.workers
            if beat.last_heartbeat is not None
        ]


@dataclass(frozen=True)
class Snapshot:
    """Everything /metrics shows, each part None when it could not be read in time."""

    database: queries.DatabaseVitals | None
    outbox_totals: dict[str, int] | None
    workers: WorkerVitals | None
    live_within: float


class Vitals:
    """The gateway's view of the whole system, for /health and /metrics."""

    def __init__(self, settings: Settings, *, ingest: RawDb, monitor: RawDb, rq_redis: SyncRedis) -> None:
        self.settings = settings
        self._ingest = ingest
        self._monitor = monitor
        self._rq_redis = rq_redis
        #: When this gateway started watching (a worker cannot have been silent for longer than that).
        self.started = time.monotonic()
        #: A worker is live while its last heartbeat is at most this old: the configured silence, but never less than
        #: the gap a healthy idle worker leaves between two heartbeats (else an idle night would look like a death).
        self.worker_limit = max(
            settings.FRONTDESK_HEALTH_WORKER_SILENCE or LIVE_WORKER_SECONDS, watch.quiet_gap(settings)
        )
        self._database: _Cached[queries.DatabaseVitals] = _Cached(CACHE_SECONDS)
        self._workers: _Cached[WorkerVitals] = _Cached(CACHE_SECONDS)
        self._totals: _Cached[dict[str, int]] = _Cached(TOTALS_EVERY)
        #: The last answer of /health (its parts), reused like the figures it is made of.
        self.verdict: _Cached[dict[str, str]] = _Cached(CACHE_SECONDS)

    async def close(self) -> None:
        """Close the monitoring pool (cut it when it does not close within 5 s)."""
        try:
            await asyncio.wait_for(self._monitor.close(), timeout=5)
        except TimeoutError:
            self._monitor.terminate()

    def watching_for(self) -> float:
        return time.monotonic() - self.started

    async def commit(self) -> None:
        """Commit a write-like transaction over the ingest's own pool within the health's ingest limit."""
        async with asyncio.timeout(self.settings.FRONTDESK_HEALTH_INGEST_WITHIN):
            await queries.commit_probe(self._ingest)

    async def database(self) -> queries.DatabaseVitals:
        async def make() -> queries.DatabaseVitals:
            async with asyncio.timeout(QUERY_SECONDS):
                return await queries.vitals(self._monitor)

        return await self._database.get(make)

    async def outbox_totals(self) -> dict[str, int]:
        async def make() -> dict[str, int]:
            async with asyncio.timeout(QUERY_SECONDS):
                return await queries.outbox_totals(self._monitor)

        return await self._totals.get(make)

    async def workers(self) -> WorkerVitals:
        prefix = self.settings.FRONTDESK_REDIS_PREFIX

        def read() -> WorkerVitals:  # RQ is synchronous: in a thread, bounded by the client's socket timeout
            workers = watch.registered_workers(self._rq_redis, prefix)
            return WorkerVitals(workers, watch.queue_jobs(self._rq_redis, prefix), datetime.now(UTC))

        async def make() -> WorkerVitals:
            async with asyncio.timeout(QUERY_SECONDS):
                return await asyncio.to_thread(read)

        return await self._workers.get(make)

    async def snapshot(self) -> Snapshot:
        """All figures at once; a part that fails or takes too long is None (and logged)."""
        database, totals, workers = await asyncio.gather(
            _or_none(self.database(), "database figures"),
            _or_none(self.outbox_totals(), "outbox totals"),
            _or_none(self.workers(), "worker figures"),
        )
        return Snapshot(database=database, outbox_totals=totals, workers=workers, live_within=self.worker_limit)


async def _or_none(figure: Awaitable[T], what: str) -> T | None:
    try:
        return await figure
    except Exception as exc:
        log.warning("metrics: %s unavailable: %s", what, describe(exc))
        return None


def describe(exc: BaseException) -> str:
    """A short, single-line reason for ``exc`` (no traceback, nothing secret: error class and message)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    message = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def open_vitals(settings: Settings, *, ingest: RawDb, rq_redis: SyncRedis) -> Vitals:
    """The :class:`Vitals` with its own monitoring pool (close it with :meth:`Vitals.close`)."""
    assert settings.async_database_url is not None
    monitor = await make_raw_pool(
        settings.async_database_url,
        max_size=2,
        settings={"application_name": "frontdesk-health", "statement_timeout": str(int(QUERY_SECONDS * 1000))},
    )
    return Vitals(settings, ingest=ingest, monitor=monitor, rq_redis=rq_redis)
