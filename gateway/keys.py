"""Typed keys for everything the app shares; the only place app-wide state is named."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from booking_core.db.engine import Engine, Sessions
from booking_core.db.raw import RawDb
from infra.settings import Settings

if TYPE_CHECKING:
    from channels.base import Channel, ChannelAdapter
    from gateway.dialog_runner import DialogRunner
    from gateway.group_ingest import GroupIngest
    from gateway.metrics import Metrics
    from gateway.vitals import Vitals
    from gateway.webchat_hub import WebchatHub

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", Engine)
SESSIONMAKER: web.AppKey[Sessions] = web.AppKey("sessionmaker")
REDIS: web.AppKey[Redis] = web.AppKey("redis")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
#: channel name → adapter (verify / parse / send), built once from settings by infra.adapters.
ADAPTERS: web.AppKey[dict[Channel, ChannelAdapter]] = web.AppKey("adapters")
#: A synchronous Redis client for RQ (enqueueing happens in a thread, off the event loop).
RQ_REDIS: web.AppKey[SyncRedis] = web.AppKey("rq_redis")
DIALOG: web.AppKey[DialogRunner] = web.AppKey("dialog")
#: A small asyncpg pool for single autocommit statements on the webhooks' hot path (see booking_core/db/raw.py).
RAW_DB: web.AppKey[RawDb] = web.AppKey("raw_db")
#: Stores inbound messages from known chats that arrive together in one transaction (see gateway/group_ingest.py).
GROUP_INGEST: web.AppKey[GroupIngest] = web.AppKey("group_ingest")
#: The figures /health judges and /metrics shows (see gateway/vitals.py).
VITALS: web.AppKey[Vitals] = web.AppKey("vitals")
#: The gateway's one subscription to web-chat replies and its open chat sockets (see gateway/webchat_hub.py).
WEBCHAT_HUB: web.AppKey[WebchatHub] = web.AppKey("webchat_hub")
