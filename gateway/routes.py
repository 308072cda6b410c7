"""Every route of the gateway in one place (HTTP endpoints are registered here and only here)."""

from __future__ import annotations

from aiohttp import web

import gateway.api.staff  # registers the staff and login-code endpoints
import gateway.api.waitlist  # noqa: F401  (registers the waitlist endpoints)
from gateway import booking_form, confirmation_page, inbox, queue_page, webchat
from gateway.api import api, auth, booking, catalog, coupons, failures, invoices, leads, queue, schedule, sessions
from gateway.api.registry import Authenticator
from gateway.webhooks import telegram as telegram_webhook
from gateway.webhooks import whatsapp as whatsapp_webhook

#: Importing an endpoint module registers its endpoints on `api`; this tuple keeps the imports (and the list) explicit.
ENDPOINT_MODULES = (auth, booking, catalog, coupons, failures, invoices, leads, queue, schedule, sessions)


def setup(app: web.Application, authenticate: Authenticator) -> None:
    api.register(app, authenticate)
    telegram_webhook.setup(app)
    whatsapp_webhook.setup(app)
    webchat.setup(app)
    booking_form.setup(app)
    confirmation_page.setup(app)
    queue_page.setup(app)
    inbox.setup(app)
