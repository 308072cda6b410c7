"""The step every webhook shares: persist the parsed message (before the ack), count it, start the dialog."""

from __future__ import annotations

from aiohttp import web

from booking_core.domain.messages import InboundMessage
from booking_core.services import ingest
from gateway.keys import DIALOG, GROUP_INGEST, METRICS, SESSIONMAKER, SETTINGS


async def accept(request: web.Request, inbound: InboundMessage | None, *, channel: str) -> str:
    """ "handled" (new message, dialog scheduled), "duplicate" (provider retry: nothing else), or "ignored" (None)."""
    app = request.app
    metrics = app[METRICS]
    if inbound is None:
        metrics.inbound_outcome(channel, "ignored").inc()
        return "ignored"
    # A chat we know (nearly every message): one statement, committed together with what arrived alongside it.
    # The rest (a first message, a new phone number) is a transaction of its own over the ORM.
    received = await app[GROUP_INGEST].receive(inbound)
    if received is None:
        async with app[SESSIONMAKER]() as db, db.begin():
            received = await ingest.receive(db, inbound, default_language=app[SETTINGS].DEFAULT_LANGUAGE)
    outcome = "duplicate" if received.duplicate else "handled"
    metrics.inbound_outcome(channel, outcome).inc()
    if not received.duplicate:
        app[DIALOG].schedule(received.message_id)
    return outcome


def refused(request: web.Request, channel: str) -> None:
    """Count a request that was not from the provider or not readable."""
    request.app[METRICS].inbound_outcome(channel, "refused").inc()
