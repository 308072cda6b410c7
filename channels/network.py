"""What a failed HTTP call to a provider tells us: did the request leave, or not?

A request that never left (the connection was refused, or could not be made in time) is safe to send again. Any
other failure (a timeout while waiting for the answer, a connection cut mid-way) may have reached the provider:
neither the Bot API nor Twilio's Messages API takes an idempotency key, so whether the patient got it is unknown.
"""

from __future__ import annotations

import aiohttp

#: Seconds a send may take before it counts as uncertain: a provider answering within this is never sent twice.
SEND_TIMEOUT = 60.0

_NEVER_LEFT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def may_have_reached(exc: BaseException) -> bool:
    """Whether the request that failed with ``exc`` (or with what it was raised from) may have reached the
    provider."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _NEVER_LEFT):
            return False
        seen = seen.__cause__ or seen.__context__
    return True
