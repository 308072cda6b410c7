"""What per-address limits count against, and how a refusal says when to come back.

Every per-address limit (sign-in failures, the booking form, the queue page, the confirmation page) keys on
:func:`limit_address`: the client's address as :func:`gateway.client_address.client_address` finds it (a trusted
proxy's ``X-Forwarded-For``), with IPv6 addresses taken as their /64. One IPv6 subscriber is handed a whole /64
and can pick a new address from it for every request; counting the /64 gives them one budget, as an IPv4 address
does. Every 429 carries ``Retry-After`` (whole seconds, at least 1) from :func:`retry_after`.
"""

from __future__ import annotations

import math
from ipaddress import IPv6Address, IPv6Network, ip_address

from aiohttp import web

from gateway.client_address import client_address

#: The part of an IPv6 address that one subscriber (one home, one phone) usually gets to choose from.
IPV6_SUBSCRIBER_PREFIX = 64


def limit_address(request: web.Request) -> str:
    """The client address as limits count it: IPv4 as is, IPv6 as its /64 (``"2001:db8:1:2::/64"``)."""
    found = client_address(request)
    try:
        address = ip_address(found)
    except ValueError:
        return found  # "unknown" (a unix socket): one bucket
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(IPv6Network((address, IPV6_SUBSCRIBER_PREFIX), strict=False))
    return str(address)


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up, never 0 (a client told 0 would retry at once)."""
    return str(max(1, math.ceil(seconds)))
