"""What every channel adapter is: verify a request, parse it into an InboundMessage, send an OutboundMessage.

Shared code routes by channel through tables (``SENDERS[channel]``), never with ``if channel == ...``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from aiohttp import web

from booking_core.domain.messages import (
    CHANNELS,
    Button,
    Channel,
    ContactRef,
    DeliveryFailed,
    Image,
    InboundMessage,
    OutboundMessage,
    Sender,
)

__all__ = [
    "CHANNELS",
    "Button",
    "Channel",
    "ChannelAdapter",
    "ContactRef",
    "DeliveryFailed",
    "Image",
    "InboundMessage",
    "OutboundMessage",
    "RateLimit",
    "Refused",
    "Sender",
]


class Refused(Exception):
    """The request is not from the provider (bad secret or signature) or not readable; ``status`` says how to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RateLimit(NamedTuple):
    """At most ``most`` sends per ``seconds`` for ``key``, shared by every worker (see infra/ratelimit.py)."""

    key: str
    most: int
    seconds: float


class ChannelAdapter(Sender, Protocol):
    """The whole adapter: outbound (send, within the provider's rate limits) and inbound (verify + parse)."""

    channel: Channel

    def rate_limits(self, message: OutboundMessage) -> list[RateLimit]:
        """The provider's limits this message counts against (none: an empty list)."""
        ...

    async def close(self) -> None: ...

    async def verify(self, request: web.Request) -> None:
        """Raise :class:`Refused` unless the request really comes from the provider."""
        ...

    def parse(self, raw: Any) -> InboundMessage | None:
        """The message in ``raw``, or None for a payload ignored on purpose (the caller still answers 2xx)."""
        ...
