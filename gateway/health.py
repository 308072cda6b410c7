"""Operational endpoints: /health (can every part do its work right now?), /metrics, the OpenAPI document.

/health answers 200 ``{"status": "ok", "database": "ok", "redis": "ok", ...}`` when every part is "ok", and 503 with
``"status": "unavailable"`` when one is not; a failing part's value says what is wrong. The parts:

* ``database``, ``redis``: they answer.
* ``ingest``: a write commits over the ingest's own pool within ``FRONTDESK_HEALTH_INGEST_WITHIN`` seconds, and no
  write of ours (gateways', workers') has waited longer than that for a lock. That is what froze every webhook when
  a dead worker's transaction kept holding chat rows: commits themselves worked, writes to those rows waited on.
* ``workers``: some worker's heartbeat (RQ's own record) is younger than ``FRONTDESK_HEALTH_WORKER_SILENCE``
  (or than an idle worker's own gap between heartbeats, if that is longer); for that long after the gateway starts,
  no worker at all is not yet a failure.
* ``outbox``: the oldest due outbox row has waited less than ``FRONTDESK_HEALTH_OUTBOX_LAG``.
* ``transactions``: no backend of this database has been idle in a transaction (holding its locks) for longer than
  ``FRONTDESK_HEALTH_IDLE_IN_TRANSACTION``.

Every check runs at once and is bounded in time; the answer is reused for a second (see gateway/vitals.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from aiohttp import web

from booking_core.db.engine import database_name
from booking_core.db.queries.health import Backend, DatabaseVitals, ReadOnlyDatabase
from gateway import metrics_access
from gateway.api import api
from gateway.keys import ENGINE, METRICS, RAW_DB, REDIS, RQ_REDIS, SETTINGS, VITALS
from gateway.vitals import Vitals, WorkerVitals, describe, open_vitals
from infra.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
CHECK_TIMEOUT = 2.0
OK = "ok"
#: The parts /health reports, in the order of its answer.
PARTS = ("database", "redis", "ingest", "workers", "outbox", "transactions")


async def _check_database(app: web.Application) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await database_name(app[ENGINE])
        return OK
    except Exception as exc:
        log.warning("health: database check failed: %s", exc)
        return "unavailable"


async def _check_redis(app: web.Application) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await app[REDIS].ping()  # type: ignore[misc]
        return OK
    except Exception as exc:
        log.warning("health: redis check failed: %s", exc)
        return "unavailable"


async def _outcome(figure: Awaitable[T]) -> T | BaseException:
    try:
        return await figure
    except Exception as exc:
        return exc


def _s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def _who(backend: Backend) -> str:
    return f"pid {backend.pid} ({backend.application or 'no name'})"


def _ingest(settings: Settings, commit: BaseException | None, database: DatabaseVitals | BaseException) -> str:
    within = settings.FRONTDESK_HEALTH_INGEST_WITHIN
    if isinstance(commit, TimeoutError):
        return f"cannot commit within {_s(within)}"
    if isinstance(commit, ReadOnlyDatabase):
        return f"cannot commit: {commit}"
    if isinstance(commit, BaseException):
        return f"cannot commit: {describe(commit)}"
    if isinstance(database, BaseException):
        return f"unknown: {describe(database)}"
    wait = database.longest_wait
    if wait is not None and wait.seconds > within:
        held = "a lock"
        if database.blocker is not None:
            blocker = database.blocker
            held = f"a lock held by {_who(blocker)}, {blocker.state or 'gone'} for {_s(blocker.seconds)}"
        return (
            f"{database.lock_waiting} write(s) waiting for locks; {_who(wait)} has waited {_s(wait.seconds)} "
            f"(limit {_s(within)}) for {held}"
        )
    return OK


def _workers(settings: Settings, vitals: Vitals, workers: WorkerVitals | BaseException) -> str:
    silence = settings.FRONTDESK_HEALTH_WORKER_SILENCE
    if isinstance(workers, BaseException):
        return f"unknown: {describe(workers)}"
    ages = workers.heartbeat_ages()
    newest = min(ages) if ages else None
    if newest is not None and newest <= vitals.worker_limit:
        return OK
    if vitals.watching_for() <= silence:  # just started: no worker can have been silent for that long yet
        return OK
    if newest is None:
        return f"no worker registered (limit {_s(silence)})"
    return f"no worker heartbeat for {_s(newest)} (limit {_s(vitals.worker_limit)}; {len(ages)} registered)"


def _outbox(settings: Settings, database: DatabaseVitals | BaseException) -> str:
    if isinstance(database, BaseException):
        return f"unknown: {describe(database)}"
    limit = settings.FRONTDESK_HEALTH_OUTBOX_LAG
    if database.outbox_lag > limit:
        return (
            f"the oldest due message has waited {_s(database.outbox_lag)} (limit {_s(limit)}); "
            f"{database.outbox_due} due"
        )
    return OK


def _transactions(settings: Settings, database: DatabaseVitals | BaseException) -> str:
    if isinstance(database, BaseException):
        return f"unknown: {describe(database)}"
    limit = settings.FRONTDESK_HEALTH_IDLE_IN_TRANSACTION
    idle = database.longest_idle
    if idle is not None and idle.seconds > limit:
        return (
            f"{_who(idle)} has been idle in a transaction for {_s(idle.seconds)} (limit {_s(limit)}); "
            f"{database.idle_in_transaction} idle in transaction"
        )
    return OK


async def _judge(app: web.Application) -> dict[str, str]:
    settings, vitals = app[SETTINGS], app[VITALS]
    database, redis, commit, figures, workers = await asyncio.gather(
        _check_database(app),
        _check_redis(app),
        _outcome(vitals.commit()),
        _outcome(vitals.database()),
        _outcome(vitals.workers()),
    )
    parts = {
        "database": database,
        "redis": redis,
        "ingest": _ingest(settings, commit, figures),
        "outbox": _outbox(settings, figures),
        "transactions": _transactions(settings, figures),
    }
    if settings.FRONTDESK_HEALTH_WORKER_SILENCE > 0:
        parts["workers"] = _workers(settings, vitals, workers)
    failing = {name: value for name, value in parts.items() if value != OK}
    if failing:
        log.warning("health: %s", "; ".join(f"{name}: {value}" for name, value in failing.items()))
    return {name: parts[name] for name in PARTS if name in parts}


async def health(request: web.Request) -> web.Response:
    app = request.app
    parts = await app[VITALS].verdict.get(lambda: _judge(app))
    healthy = all(value == OK for value in parts.values())
    body: dict[str, Any] = {"status": OK if healthy else "unavailable", **parts}
    return web.json_response(body, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: the gateway's own counters, and the system's figures read now (see gateway/vitals.py)."""
    if (refused := metrics_access.refusal(request)) is not None:  # a token, or this machine only
        return refused
    app = request.app
    app[METRICS].operations.snapshot = await app[VITALS].snapshot()
    payload, content_type = app[METRICS].render()
    response = web.Response(body=payload)
    response.headers["Content-Type"] = content_type
    return response


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(api.openapi(server_url=request.app[SETTINGS].PUBLIC_BASE_URL))


async def vitals_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the :class:`Vitals` /health and /metrics read (after the database pools and Redis exist)."""
    app[VITALS] = vitals = await open_vitals(app[SETTINGS], ingest=app[RAW_DB], rq_redis=app[RQ_REDIS])
    yield
    await vitals.close()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(vitals_context)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/openapi.json", openapi)
