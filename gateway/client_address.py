"""Who is asking: the client's address, as every per-address limit keys it.

Behind a reverse proxy the connection comes from the proxy, so its ``X-Forwarded-For`` is read — but only when the
connection's own address is one of ``FRONTDESK_TRUSTED_PROXIES``; anyone else could write that header themselves.
The header is read from the right: the first address that is not a trusted proxy is the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from aiohttp import web

from gateway.keys import SETTINGS

UNKNOWN = "unknown"


def _trusted(value: str, proxies: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        address = ip_address(value.strip())
    except ValueError:
        return False
    return any(address in network for network in proxies)


def client_address(request: web.Request) -> str:
    """The client's address for limits and audit rows (``"unknown"`` when there is none, e.g. a unix socket)."""
    remote = request.remote or UNKNOWN
    proxies = request.app[SETTINGS].FRONTDESK_TRUSTED_PROXIES
    if not proxies or not _trusted(remote, proxies):
        return remote
    hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted(hop, proxies):
            try:
                return str(ip_address(hop))
            except ValueError:
                return UNKNOWN  # a proxy passed on garbage: one bucket for all of it, never the raw header
    return remote
