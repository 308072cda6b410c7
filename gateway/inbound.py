"""The step every webhook shares: persist the parsed message (before the ack), count it, start the dialog."""

from __future__ import annotations

from aiohttp import web

from booking_core.domain.messages import InboundMessage
from booking_core.services import ingest
from gateway.keys import DIALOG, METRICS, SESSIONMAKER, SETTINGS


async def accept(request: web.Request, inbound: InboundMessage | None, *, channel: str) -> str:
    """ "handled" (new message, dialog scheduled), "duplicate" (provider retry: nothing else), or "ignored" (None)."""
    app = request.app
    if inbound is None:
        app[METRICS].inbound.labels(channel, "ignored").inc()
        return "ignored"
    async with app[SESSIONMAKER]() as db, db.begin():
        received = await ingest.receive(db, inbound, default_language=app[SETTINGS].DEFAULT_LANGUAGE)
    outcome = "duplicate" if received.duplicate else "handled"
    app[METRICS].inbound.labels(channel, outcome).inc()
    if not received.duplicate:
        app[DIALOG].schedule(received.message_id)
    return outcome


def refused(request: web.Request, channel: str) -> None:
    """Count a request that was not from the provider or not readable."""
    request.app[METRICS].inbound.labels(channel, "refused").inc()
