"""Every route of the gateway in one table (HTTP endpoints are registered here and only here)."""

from __future__ import annotations

from aiohttp import web

# Importing an endpoint module registers its endpoints on `api`.
import gateway.api.auth
import gateway.api.booking  # noqa: F401
import gateway.api.catalog
import gateway.api.coupons
import gateway.api.invoices  # noqa: F401
import gateway.api.queue
import gateway.api.schedule
import gateway.api.sessions  # noqa: F401
from gateway.api import api
from gateway.api.registry import Authenticator


def setup(app: web.Application, authenticate: Authenticator) -> None:
    api.register(app, authenticate)
