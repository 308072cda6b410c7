"""Who may read ``/metrics``: a Prometheus with the bearer token, or, without a token set, only this machine.

The figures say how busy the clinic is, which channels it uses and where it fails: not for the public.

* ``FRONTDESK_METRICS_TOKEN`` set: every scrape must send ``Authorization: Bearer <token>`` (401 otherwise), from
  anywhere — what a Prometheus on another machine does (``authorization: {credentials: …}`` in its scrape config).
* Not set (the default): only loopback clients (127.0.0.0/8, ::1) get the figures (403 otherwise), so ``make run``
  and a Prometheus or agent on the same machine work unchanged. A request that a proxy forwarded
  (``X-Forwarded-For`` or ``Forwarded``) from a proxy that is not one of ``FRONTDESK_TRUSTED_PROXIES`` is refused
  too: a reverse proxy on this machine would otherwise make every visitor look local. A reverse proxy on this
  machine that forwards no such header cannot be told apart: set the token (or do not route /metrics) there.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from aiohttp import web

from gateway.client_address import client_address
from gateway.keys import SETTINGS

FORWARDED_HEADERS = ("X-Forwarded-For", "Forwarded")


def _refuse(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def _loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return False


def _within(address: str, networks: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def refusal(request: web.Request) -> web.Response | None:
    """None when ``request`` may read the metrics; otherwise the 401/403 answer to send."""
    settings = request.app[SETTINGS]
    token = settings.FRONTDESK_METRICS_TOKEN
    if token is not None:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return _refuse(401, "unauthorized", "Send the metrics token: Authorization: Bearer <token>.",
                           **{"WWW-Authenticate": 'Bearer realm="metrics"'})  # fmt: skip
        return None
    forwarded = any(header in request.headers for header in FORWARDED_HEADERS)
    if forwarded and not _within(request.remote or "", settings.FRONTDESK_TRUSTED_PROXIES):
        return _refuse(403, "forbidden", "Metrics are not served through an untrusted proxy; set "
                       "FRONTDESK_METRICS_TOKEN or FRONTDESK_TRUSTED_PROXIES.")  # fmt: skip
    if not _loopback(client_address(request)):
        return _refuse(403, "forbidden", "Metrics are served to this machine only; set FRONTDESK_METRICS_TOKEN to "
                       "scrape them from elsewhere.")  # fmt: skip
    return None
