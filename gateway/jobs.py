"""Enqueueing RQ jobs from request handlers, after their transaction committed (off the event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime

from aiohttp import web

from gateway.keys import RQ_REDIS, SETTINGS
from infra import queues


async def enqueue(
    app: web.Application, func: str, *args: object, job_id: str | None = None, at: datetime | None = None
) -> None:
    """``func`` is a dotted path (``workers.followups.send_confirmation``); jobs take ids, never objects."""
    await asyncio.to_thread(
        queues.enqueue, app[RQ_REDIS], app[SETTINGS].FRONTDESK_REDIS_PREFIX, func, *args, job_id=job_id, at=at
    )


async def deliver(app: web.Application, outbox_ids: Sequence[int], routes: Mapping[int, str] | None = None) -> None:
    """Hand committed outbox rows to the workers (``routes``: where they go, from ``outbox.routes``)."""
    if outbox_ids:
        await asyncio.to_thread(
            queues.enqueue_deliveries, app[RQ_REDIS], app[SETTINGS].FRONTDESK_REDIS_PREFIX, outbox_ids, routes
        )
