"""The composition root: ``create_app(settings)`` builds the gateway; resources live in ``cleanup_ctx``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from redis import Redis as SyncRedis
from redis.asyncio import BlockingConnectionPool, Redis

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.db.raw import make_raw_pool
from gateway import health, routes
from gateway.auth import require_staff
from gateway.dialog_runner import DialogRunner
from gateway.forms import storable_query
from gateway.group_ingest import GroupIngest
from gateway.keys import (
    ADAPTERS,
    DIALOG,
    ENGINE,
    GROUP_INGEST,
    METRICS,
    RAW_DB,
    REDIS,
    RQ_REDIS,
    SESSIONMAKER,
    SETTINGS,
)
from gateway.metrics import Metrics
from gateway.middleware import install_security_headers, request_context
from infra.adapters import build_adapters, close_adapters
from infra.settings import Settings, SettingsError

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_REQUEST_BODY = 1024 * 1024  # webhooks and forms are small; a megabyte leaves room for a media-rich Twilio form
#: Redis connections of the gateway's client at most (Redis's own limit, 10,000 clients by default, is shared by every
#: gateway and worker); a command waits up to REDIS_POOL_WAIT seconds for a free one. Web-chat replies use one more
#: connection per gateway (gateway/webchat_hub.py), RQ enqueues a few of their own.
REDIS_MAX_CONNECTIONS = 32
REDIS_POOL_WAIT = 5.0


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.async_database_url is not None
    engine = make_engine(settings.async_database_url)
    app[ENGINE] = engine
    app[SESSIONMAKER] = make_sessionmaker(engine)
    yield
    await engine.dispose()


async def _raw_database(app: web.Application) -> AsyncIterator[None]:
    """The webhooks' hot path: single autocommit statements on a small asyncpg pool (opens connections lazily)."""
    settings = app[SETTINGS]
    assert settings.async_database_url is not None
    pool = await make_raw_pool(settings.async_database_url)
    app[RAW_DB] = pool
    app[GROUP_INGEST] = GroupIngest(pool)
    yield
    await pool.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.REDIS_URL is not None
    # A bounded pool: a burst (visitors, webhooks) waits for a connection instead of opening hundreds that stay.
    pool = BlockingConnectionPool.from_url(
        settings.REDIS_URL, max_connections=REDIS_MAX_CONNECTIONS, timeout=REDIS_POOL_WAIT,
        socket_timeout=3, socket_connect_timeout=3, health_check_interval=30,
    )  # fmt: skip
    client = Redis.from_pool(pool)
    app[REDIS] = client
    app[RQ_REDIS] = SyncRedis.from_url(settings.REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    yield
    app[RQ_REDIS].close()
    await client.aclose()


async def _channels(app: web.Application) -> AsyncIterator[None]:
    """Channel adapters and the background dialog runner (after the database and Redis, closed before them)."""
    app[ADAPTERS] = build_adapters(app[SETTINGS], app[REDIS])
    app[DIALOG] = DialogRunner(app[SETTINGS], app[RQ_REDIS])
    yield
    await app[DIALOG].drain()
    await close_adapters(app[ADAPTERS])


def create_app(settings: Settings) -> web.Application:
    """Build the gateway for ``settings`` (DATABASE_URL and REDIS_URL must be set: `frontdesk run` fills them in)."""
    if settings.DATABASE_URL is None or settings.REDIS_URL is None:
        raise SettingsError("DATABASE_URL and REDIS_URL must be set to serve (or use `frontdesk run`)")
    settings.check_for_serving()
    app = web.Application(middlewares=[request_context, storable_query], client_max_size=MAX_REQUEST_BODY)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    install_security_headers(app, settings)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_raw_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_channels)
    health.setup(app)
    routes.setup(app, require_staff)
    return app
