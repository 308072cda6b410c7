"""``POST /webhooks/whatsapp`` (Twilio inbound messages) and ``POST /webhooks/whatsapp/status`` (status callbacks).

Both are signed by Twilio (``X-Twilio-Signature`` over ``PUBLIC_BASE_URL`` + path and the form). Inbound: verify,
parse, persist (``accept``), then answer an empty TwiML ``<Response/>`` so Twilio itself sends nothing back; the
dialog's reply goes out later through the outbox. Status callbacks are kept in ``delivery_events`` and move the
outbox row forward only (see ``channels.whatsapp.status``). Refusals: 403 (signature), 400 (not a readable form),
413 (too large); never a 500 for what a caller sends.
"""

from __future__ import annotations

from aiohttp import web

from booking_core.services import delivery_status
from channels.base import Refused
from channels.whatsapp.adapter import WhatsAppAdapter, verified_form
from channels.whatsapp.status import RANK
from gateway.api.common import transaction
from gateway.inbound import accept, refused
from gateway.keys import ADAPTERS

PATH = "/webhooks/whatsapp"
STATUS_PATH = "/webhooks/whatsapp/status"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
REFUSAL_CODES = {400: "malformed_form", 403: "bad_signature", 413: "too_large"}


async def whatsapp_webhook(request: web.Request) -> web.Response:
    adapter = _adapter(request)
    if adapter is None:
        return _error(404, "not_configured", "WhatsApp is not configured on this gateway.")
    try:
        await adapter.verify(request)
        inbound = adapter.parse(verified_form(request))
    except Refused as exc:
        return _refuse(request, exc)
    await accept(request, inbound, channel="whatsapp")  # persisted (or recognised as a retry) before we answer
    return _twiml()


async def whatsapp_status(request: web.Request) -> web.Response:
    adapter = _adapter(request)
    if adapter is None:
        return _error(404, "not_configured", "WhatsApp is not configured on this gateway.")
    try:
        await adapter.verify(request)
        report = adapter.parse_status(verified_form(request))
    except Refused as exc:
        return _refuse(request, exc)
    async with transaction(request) as db:
        await delivery_status.record(
            db,
            channel="whatsapp",
            provider_id=report.provider_id,
            state=report.state,
            rank=RANK,
            error_code=report.error_code,
            raw=report.raw,
        )
    return _twiml()


def _adapter(request: web.Request) -> WhatsAppAdapter | None:
    adapter = request.app[ADAPTERS].get("whatsapp")
    return adapter if isinstance(adapter, WhatsAppAdapter) else None


def _twiml() -> web.Response:
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


def _refuse(request: web.Request, exc: Refused) -> web.Response:
    refused(request, "whatsapp")
    return _error(exc.status, REFUSAL_CODES.get(exc.status, "refused"), exc.message)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def setup(app: web.Application) -> None:
    app.router.add_post(PATH, whatsapp_webhook)
    app.router.add_post(STATUS_PATH, whatsapp_status)
