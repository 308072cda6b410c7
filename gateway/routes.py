"""Every route of the gateway in one table (HTTP endpoints are registered here and only here)."""

from __future__ import annotations

from aiohttp import web

import gateway.api.auth  # noqa: F401 - registers the endpoints on `api`
from gateway.api import api
from gateway.api.registry import Authenticator


def setup(app: web.Application, authenticate: Authenticator) -> None:
    api.register(app, authenticate)
