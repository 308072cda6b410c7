"""Handing committed outbox rows to the workers from request handlers (off the event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from aiohttp import web

from gateway.keys import RQ_REDIS, SETTINGS
from infra import queues


async def deliver(app: web.Application, outbox_ids: Sequence[int], routes: Mapping[int, str] | None = None) -> None:
    """Hand committed outbox rows to the workers (``routes``: where they go, as ``outbox.Planned`` has them)."""
    if outbox_ids:
        await asyncio.to_thread(
            queues.enqueue_deliveries, app[RQ_REDIS], app[SETTINGS].FRONTDESK_REDIS_PREFIX, outbox_ids, routes
        )
