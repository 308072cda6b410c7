"""Operational endpoints: /health (real checks of Postgres and Redis), /metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import text

from gateway.api import api
from gateway.keys import ENGINE, METRICS, REDIS, SETTINGS

log = logging.getLogger(__name__)
CHECK_TIMEOUT = 2.0


async def _check_database(app: web.Application) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        log.warning("health: database check failed: %s", exc)
        return "unavailable"


async def _check_redis(app: web.Application) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await app[REDIS].ping()  # type: ignore[misc]
        return "ok"
    except Exception as exc:
        log.warning("health: redis check failed: %s", exc)
        return "unavailable"


async def health(request: web.Request) -> web.Response:
    database, redis = await asyncio.gather(_check_database(request.app), _check_redis(request.app))
    healthy = database == "ok" and redis == "ok"
    body = {"status": "ok" if healthy else "unavailable", "database": database, "redis": redis}
    return web.json_response(body, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    payload, content_type = request.app[METRICS].render()
    response = web.Response(body=payload)
    response.headers["Content-Type"] = content_type
    return response


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(api.openapi(server_url=request.app[SETTINGS].PUBLIC_BASE_URL))


def setup(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/openapi.json", openapi)
