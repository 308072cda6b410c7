"""The worker process: one event loop, one engine, one Redis client and one set of channel clients for its life.

RQ would run an ``async def`` job on a fresh event loop each time (``asyncio.run``), which would also mean a new
connection pool per job. Our jobs are plain functions that hand their coroutine to :func:`run`, which uses the
process's single loop, so pools and clients survive from job to job.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from booking_core.db.engine import make_engine, make_sessionmaker
from gateway.settings import Settings, load_settings
from workers import queues

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Runtime:
    """Everything a job needs, made once per worker process."""

    settings: Settings
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    connections_opened: int = 0
    jobs_run: int = 0
    extras: dict[str, Any] = field(default_factory=dict)  # channel clients, added by the channels as they come

    def senders(self) -> dict[str, Any]:
        """The channel adapters used for sending, built on first use and kept for the process's life."""
        if "senders" not in self.extras:
            from gateway.channels import build_adapters

            self.extras["senders"] = build_adapters(self.settings, self.redis)
        return self.extras["senders"]

    def limiter(self) -> Any:
        if "limiter" not in self.extras:
            from workers.ratelimit import RateLimiter

            self.extras["limiter"] = RateLimiter(self.redis, self.settings.FRONTDESK_REDIS_PREFIX)
        return self.extras["limiter"]

    def sync_redis(self) -> SyncRedis:
        if "sync_redis" not in self.extras:
            assert self.settings.REDIS_URL is not None
            self.extras["sync_redis"] = SyncRedis.from_url(self.settings.REDIS_URL)
        return self.extras["sync_redis"]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        self.jobs_run += 1
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        async def _close() -> None:
            senders = self.extras.pop("senders", {})
            for client in [*senders.values(), *self.extras.values()]:
                closer = getattr(client, "aclose", None) or getattr(client, "close", None)
                if closer is not None:
                    result = closer()
                    if asyncio.iscoroutine(result):
                        await result
            await self.redis.aclose()
            await self.engine.dispose()

        self.loop.run_until_complete(_close())
        self.loop.close()


_current: Runtime | None = None


def build(settings: Settings) -> Runtime:
    assert settings.async_database_url is not None and settings.REDIS_URL is not None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    engine = make_engine(settings.async_database_url, pool_size=4)
    runtime = Runtime(
        settings=settings,
        loop=loop,
        engine=engine,
        sessionmaker=make_sessionmaker(engine),
        redis=Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _count(*_: object) -> None:
        runtime.connections_opened += 1

    return runtime


def current() -> Runtime:
    """The process's runtime; built on first use (e.g. when a test runs a job in its own process)."""
    global _current
    if _current is None or _current.loop.is_closed():
        _current = build(load_settings())
    return _current


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> bool:
    """Serve the queues (with RQ's scheduler) until stopped. SimpleWorker: no fork, so the runtime lives on."""
    from rq import SimpleWorker

    assert settings.REDIS_URL is not None
    runtime = build(settings)
    install(runtime)
    connection = SyncRedis.from_url(settings.REDIS_URL)
    worker = SimpleWorker(
        queues.queues(connection, settings.FRONTDESK_REDIS_PREFIX),
        connection=connection,
        name=name or f"frontdesk-{os.getpid()}",
    )
    log.info("worker %s serving %s", worker.name, [q.name for q in worker.queues])
    from workers.jobs import schedule_sweep

    schedule_sweep(runtime, delay=1)  # the database is the truth: a worker start re-creates the sweep schedule
    try:
        return worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    finally:
        runtime.close()
