"""Every route of the gateway in one place (HTTP endpoints are registered here and only here)."""

from __future__ import annotations

from aiohttp import web

from gateway import booking_form, webchat
from gateway.api import api, auth, booking, catalog, coupons, invoices, leads, queue, schedule, sessions
from gateway.api.registry import Authenticator
from gateway.webhooks import telegram as telegram_webhook
from gateway.webhooks import whatsapp as whatsapp_webhook

#: Importing an endpoint module registers its endpoints on `api`; this tuple keeps the imports (and the list) explicit.
ENDPOINT_MODULES = (auth, booking, catalog, coupons, invoices, leads, queue, schedule, sessions)


def setup(app: web.Application, authenticate: Authenticator) -> None:
    api.register(app, authenticate)
    telegram_webhook.setup(app)
    whatsapp_webhook.setup(app)
    webchat.setup(app)
    booking_form.setup(app)
