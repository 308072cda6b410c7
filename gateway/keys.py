"""Typed keys for everything the app shares; the only place app-wide state is named."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONMAKER: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("sessionmaker")
REDIS: web.AppKey[Redis] = web.AppKey("redis")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
