"""The worker process: one event loop, one engine, one Redis client and one set of channel clients for its life.

RQ would run an ``async def`` job on a fresh event loop each time (``asyncio.run``), which would also mean a new
connection pool per job. Our jobs are plain functions that hand their coroutine to :func:`run`, which uses the
process's single loop, so pools and clients survive from job to job.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker, worker_registration
from rq.exceptions import StopRequested

from booking_core.db.engine import Engine, Sessions, make_engine, make_sessionmaker, on_connect
from booking_core.db.raw import RawDb, make_raw_pool
from infra import job_names, queues
from infra.adapters import build_adapters
from infra.loop import new_event_loop
from infra.ratelimit import RateLimiter
from infra.settings import Settings, load_settings
from infra.watch import housekeeping_every
from workers.scheduler import ThreadScheduler
from workers.scheduler import epoch_key as scheduler_epoch_key

if TYPE_CHECKING:
    from channels.base import Channel, ChannelAdapter

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Runtime:
    """Everything a job needs, made once per worker process."""

    settings: Settings
    loop: asyncio.AbstractEventLoop
    engine: Engine
    sessionmaker: Sessions
    redis: Redis
    connections_opened: int = 0
    jobs_run: int = 0
    extras: dict[str, Any] = field(default_factory=dict)  # channel clients, added by the channels as they come
    #: Work a job left running when it returned (see :meth:`after_job`); finished before the next job starts.
    unfinished: set[asyncio.Task[Any]] = field(default_factory=set)

    def senders(self) -> dict[Channel, ChannelAdapter]:
        """The channel adapters used for sending, built on first use and kept for the process's life."""
        if "senders" not in self.extras:
            self.extras["senders"] = build_adapters(self.settings, self.redis)
        return self.extras["senders"]

    async def sending_pool(self) -> RawDb:
        """A small asyncpg pool of its own for a delivery's two statements (the claim and the record of a sent
        row): no session around them, and plans kept generic, since those two statements always look rows up by
        their ids and planning the claim anew each time costs more than running it. Made on first use."""
        if "sending_pool" not in self.extras:
            assert self.settings.async_database_url is not None

            def opened() -> None:
                self.connections_opened += 1

            self.extras["sending_pool"] = await make_raw_pool(
                self.settings.async_database_url,
                max_size=2,
                settings={"plan_cache_mode": "force_generic_plan"},
                on_connect=opened,
            )
        pool: RawDb = self.extras["sending_pool"]
        return pool

    def limiter(self) -> RateLimiter:
        if "limiter" not in self.extras:
            self.extras["limiter"] = RateLimiter(self.redis, self.settings.FRONTDESK_REDIS_PREFIX)
        return self.extras["limiter"]

    def sync_redis(self) -> SyncRedis:
        if "sync_redis" not in self.extras:
            assert self.settings.REDIS_URL is not None
            self.extras["sync_redis"] = SyncRedis.from_url(self.settings.REDIS_URL)
        return self.extras["sync_redis"]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        self.finish_unfinished()
        self.jobs_run += 1
        return self.loop.run_until_complete(coro)

    def after_job(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` past the end of the job: started now, it goes on while RQ files the job away and is waited
        for before this worker takes its next job (:meth:`finish_unfinished`), so no later job of this worker runs
        before it is done. An error is logged: the job has already said what it did."""
        task = self.loop.create_task(coro)
        self.unfinished.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.unfinished.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("work left running after a job failed", exc_info=task.exception())

    def finish_unfinished(self, *, seconds: float = 30.0) -> None:
        """Wait for what jobs left running; what is not done within ``seconds`` (a database that hangs) is
        cancelled and logged. A record cancelled so leaves its row 'sending', for the sweep to reclaim."""
        if not self.unfinished or self.loop.is_closed():
            return

        async def settle() -> None:
            running = set(self.unfinished)  # what is still running now: some may have finished meanwhile
            if not running:
                return
            _done, late = await asyncio.wait(running, timeout=seconds)
            for task in late:
                log.error("work left running after a job did not finish within %s s; cancelled", seconds)
                task.cancel()
            if late:
                await asyncio.wait(late)

        self.loop.run_until_complete(settle())

    def close(self) -> None:
        self.finish_unfinished()

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
    loop = new_event_loop()  # uvloop
    asyncio.set_event_loop(loop)
    engine = make_engine(settings.async_database_url, pool_size=4)
    runtime = Runtime(
        settings=settings,
        loop=loop,
        engine=engine,
        sessionmaker=make_sessionmaker(engine),
        redis=Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5),
    )

    def _count() -> None:
        runtime.connections_opened += 1

    on_connect(engine, _count)

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


class Worker(SimpleWorker):
    """RQ's SimpleWorker (no fork, so the runtime lives on), made to outlive Redis going away.

    Housekeeping runs every :func:`housekeeping_every` seconds instead of RQ's ten minutes. It is what restarts
    RQ's scheduler after Redis went away (the scheduler process dies with the connection) and what takes over the
    scheduler lock of a worker that was killed (the lock outlives it by a minute); here it also puts back the
    sweep's schedule, which a Redis that restarted empty has lost. When RQ gives up because Redis vanished in the
    middle of a job, :func:`run_worker` waits for Redis and starts a new one.
    """

    stopping = False  # a SIGTERM/SIGINT asked this worker to stop (rather than Redis going away)
    #: RQ waits up to a minute between tries while Redis is away; a clinic's patients should not.
    max_connection_wait_time = 1.0

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stopping = True
        try:
            super().request_stop(signum, frame)
        except RedisError:  # RQ notes the request in Redis; without it the worker still stops after this job
            log.warning("worker %s: stopping; Redis is away, so RQ could not record it", self.name)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        current().finish_unfinished()  # before waiting for the next job: nothing is left half-done while idle
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def _start_scheduler(self, burst: bool = False, logging_level: Any = "INFO", *args: Any, **kwargs: Any) -> None:
        """RQ's scheduler, but as a thread of this process (see workers/scheduler.py), started whether or not this
        worker holds the scheduler locks now: it takes them when their holder dies or Redis comes back."""
        prefix = current().settings.FRONTDESK_REDIS_PREFIX
        self.scheduler = ThreadScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            serializer=self.serializer,
            epoch_key=scheduler_epoch_key(prefix),
            on_redis_lost=self._redis_lost,
        )
        if burst:
            if self.scheduler.acquire_locks():
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            return
        self.scheduler.start()

    def stop_scheduler(self) -> None:
        if isinstance(self.scheduler, ThreadScheduler):
            self.scheduler.stop()

    _command_channel_logged = 0.0  # when the command channel's loss was last logged (monotonic seconds)

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        """RQ stops the scheduler and unregisters the worker when its command channel loses Redis; here both ride
        the outage out (the scheduler thread reconnects by itself, :meth:`_redis_lost` re-registers). The command
        channel's thread calls this and tries again at once, so it waits a second here, and logs once a minute."""
        if time.monotonic() - self._command_channel_logged > 60:
            log.warning("worker %s: the command channel lost Redis (%s); it reconnects", self.name, exc)
            self._command_channel_logged = time.monotonic()
        time.sleep(1.0)

    def _redis_lost(self) -> None:
        """Redis came back without its data (or was flushed): register this worker again and rebuild at once what
        was lost (the sweep re-enqueues due deliveries and unanswered messages and rebuilds reminders)."""
        try:
            with self.connection.pipeline() as pipeline:
                pipeline.hset(self.key, mapping=self.serialize())
                worker_registration.register(self, pipeline)
                pipeline.expire(self.key, self.worker_ttl + 60)
                pipeline.execute()
            sweep_now(current())
            schedule_sweep(current())
        except RedisError:  # gone again: the next round notices
            log.warning("worker %s: could not rebuild after Redis lost its data", self.name, exc_info=True)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        try:
            schedule_sweep(current())
        except RedisError:  # Redis is away again: the next round tries again
            log.warning("could not schedule the sweep; the next housekeeping round will", exc_info=True)

    def teardown(self) -> None:
        """RQ's teardown, except that a Redis which is gone does not turn a stop into a crash."""
        if self.scheduler:
            self.stop_scheduler()
        for step in (self.register_death, self.unsubscribe):
            try:
                step()
            except RedisError:
                log.warning("worker %s: Redis is away, %s skipped", self.name, step.__name__)


def schedule_sweep(rt: Runtime) -> None:
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


def sweep_now(rt: Runtime) -> None:
    """A sweep at once, outside the schedule (a worker start). It needs no scheduler: a worker that replaces one
    killed with SIGKILL cannot schedule anything until the dead one's scheduler lock expires, but it sweeps."""
    queues.enqueue(
        rt.sync_redis(),
        rt.settings.FRONTDESK_REDIS_PREFIX,
        job_names.SWEEP,
        job_id=f"{rt.settings.FRONTDESK_REDIS_PREFIX}-sweep-start-{os.getpid()}-{time.time_ns()}",
    )


def prepare(runtime: Runtime) -> None:
    """Before the first job: build the channel clients (aiogram's and twilio's imports take a second or more, which
    the first patient's message would otherwise wait for), then freeze what the process has made so far. It lives
    as long as the process, and frozen, the garbage collector stops walking it (the hundreds of thousands of
    objects behind aiogram's and pydantic's models) in every full collection a busy worker runs."""

    async def build_senders() -> None:  # on the loop, where the clients will run
        runtime.senders()
        await runtime.sending_pool()

    runtime.loop.run_until_complete(build_senders())
    gc.collect()
    gc.freeze()


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> bool:
    """Serve the queues (with RQ's scheduler) until stopped by a signal (or, with ``burst``, until they are empty).

    Redis going away does not end it: RQ's worker gives up when Redis vanishes in the middle of a job; then this
    waits until Redis answers again and serves on with a new RQ worker (the same runtime, pools and clients).
    """
    assert settings.REDIS_URL is not None
    runtime = build(settings)
    install(runtime)
    prepare(runtime)
    connection = SyncRedis.from_url(settings.REDIS_URL)
    every = housekeeping_every(settings)
    base_name = name or f"frontdesk-{os.getpid()}"
    worked = False
    try:
        for round_ in itertools.count(1):
            worker = Worker(
                queues.queues(connection, settings.FRONTDESK_REDIS_PREFIX),
                connection=connection,
                name=base_name if round_ == 1 else f"{base_name}-{round_}",
                maintenance_interval=every,
                # RQ blocks for a job at most worker_ttl - 15 s, then sends its heartbeat (and housekeeping when due):
                # an idle worker is seen alive at least every 20 s (/health allows 60 s of silence).
                worker_ttl=min(every, 20) + 15,
            )
            log.info("worker %s serving %s", worker.name, [q.name for q in worker.queues])
            try:
                # The database is the truth: a worker start sweeps at once and re-creates the sweep schedule.
                sweep_now(runtime)
                schedule_sweep(runtime)
                worked = worker.work(burst=burst, with_scheduler=True, logging_level="WARNING") or worked
            except StopRequested:
                return worked
            except RedisError:
                log.warning("worker %s: Redis is away", worker.name, exc_info=True)
            finally:
                worker.stop_scheduler()  # this round's scheduler thread ends with it; the next round starts its own
            if burst or worker.stopping:
                return worked
            log.warning("worker %s stopped serving; a new one starts once Redis answers", worker.name)
            if not _wait_for_redis(connection, worker):
                return worked
        raise AssertionError("unreachable")
    finally:
        runtime.close()


def _wait_for_redis(connection: SyncRedis, worker: Worker) -> bool:
    """Ping Redis until it answers (True) or a signal asks the worker to stop (False)."""
    signal.signal(signal.SIGINT, worker.request_stop)
    signal.signal(signal.SIGTERM, worker.request_stop)
    delay = 0.5
    while not worker.stopping:
        try:
            connection.ping()
            return True
        except RedisError:
            pass
        except StopRequested:
            return False
        try:
            time.sleep(delay)
        except StopRequested:
            return False
        delay = min(delay * 2, 5.0)
    return False
