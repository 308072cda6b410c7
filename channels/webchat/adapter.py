"""The web-chat channel: frames from the widget's websocket in, Redis pub/sub out.

Inbound, the gateway's websocket handler reads client frames with :func:`read_frame` (every refusal is a
:class:`FrameError` with a stable code the widget understands) and turns chat frames into an InboundMessage.
Outbound, :meth:`WebchatAdapter.send` publishes the reply on the visitor's Redis channel, so any gateway instance
(or a worker) can reach a visitor connected to any other instance: each gateway listens to every visitor's channel
through one pattern subscription and forwards a reply to the sockets of that visitor it holds. A reply published
while nobody listens is not lost: it is in the conversation's history, which the widget receives on its next
connection.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from booking_core.domain.text import storable_payload
from channels.base import Channel, ContactRef, DeliveryFailed, InboundMessage, OutboundMessage, RateLimit, Refused

#: A client frame larger than this (UTF-8 bytes) is answered with ``too_long``; the connection stays open.
MAX_FRAME_BYTES = 4 * 1024
#: Longest message a visitor may type.
MAX_TEXT_CHARS = 2000
#: Longest button data we take back (our own buttons carry short ids).
MAX_BUTTON_DATA = 200
LANGUAGES = ("en", "id")

FrameCode = Literal["too_long", "malformed", "unsupported", "empty", "bad_id", "hello_first"]


class FrameError(Exception):
    """A client frame we refuse; ``code`` goes back to the widget in ``{"type": "error", "code": ...}``."""

    def __init__(self, code: FrameCode, message: str, *, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id

    def to_frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.frame_id is not None:
            frame["id"] = self.frame_id
        return frame


@dataclass(frozen=True)
class Hello:
    """The first frame of a connection: the visitor's token (None for a first visit) and language."""

    token: str | None
    language: str | None


@dataclass(frozen=True)
class ChatFrame:
    """A typed message or a pressed reply button."""

    kind: Literal["text", "button"]
    id: str  # canonical UUID: the client's (retries resend the same) or one we made up
    text: str
    data: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def read_frame(raw: str | bytes) -> Hello | ChatFrame:
    """Parse one websocket frame from the widget; raise :class:`FrameError` for anything we refuse."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_FRAME_BYTES:
        raise FrameError("too_long", f"A message can be at most {MAX_FRAME_BYTES} bytes.")
    try:
        frame = storable_payload(json.loads(raw))  # NULs dropped, lone surrogates replaced: the message is kept
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FrameError("malformed", "The frame is not JSON.") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("malformed", "A frame is a JSON object with a type.")
    kind = frame["type"]
    if kind == "hello":
        token = frame.get("token")
        language = frame.get("language")
        return Hello(
            token=token if isinstance(token, str) else None,
            language=language if language in LANGUAGES else None,
        )
    if kind not in ("message", "button"):
        raise FrameError("unsupported", "Unknown frame type.")
    frame_id = _frame_id(frame.get("id"))
    text = frame.get("text", "")
    if not isinstance(text, str):
        raise FrameError("malformed", "text must be a string.", frame_id=frame_id)
    text = text.replace("\x00", "").strip()
    if len(text) > MAX_TEXT_CHARS:
        raise FrameError("too_long", f"A message can be at most {MAX_TEXT_CHARS} characters.", frame_id=frame_id)
    if kind == "message":
        if not text:
            raise FrameError("empty", "The message is empty.", frame_id=frame_id)
        return ChatFrame(kind="text", id=frame_id, text=text, raw=_kept(frame, frame_id))
    data = frame.get("data")
    if not isinstance(data, str) or not data or len(data) > MAX_BUTTON_DATA:
        raise FrameError("malformed", "A button frame carries the button's data.", frame_id=frame_id)
    # ``text`` of a button frame is the label the visitor saw: kept so the history reads naturally.
    return ChatFrame(kind="button", id=frame_id, text=text, data=data, raw=_kept(frame, frame_id))


def _frame_id(value: object) -> str:
    if value is None:
        return str(uuid.uuid4())
    if not isinstance(value, str) or len(value) > 64:
        raise FrameError("bad_id", "id must be a UUID.")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise FrameError("bad_id", "id must be a UUID.") from None


def _kept(frame: dict[str, Any], frame_id: str) -> dict[str, Any]:
    """What we store with the message: the frame's own fields, nothing else the client sent."""
    kept: dict[str, Any] = {k: frame[k] for k in ("type", "text", "data") if k in frame}
    kept["id"] = frame_id
    return kept


def to_inbound(frame: ChatFrame, *, visitor_id: str, language: str | None, now: datetime) -> InboundMessage:
    """The channel-neutral message for a chat frame of ``visitor_id``."""
    return InboundMessage(
        channel="webchat",
        external_id=frame.id,
        contact=ContactRef(channel="webchat", external_id=visitor_id, language_code=language),
        received_at=now,
        kind=frame.kind,
        text=frame.text,
        button_data=frame.data,
        raw=frame.raw,
    )


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url`` in lower case (default ports dropped), or None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def origin_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    """True when the browser's ``Origin`` header names one of the ``allowed`` sites ("null" never does)."""
    if not origin:
        return False
    wanted = origin_of(origin)
    return wanted is not None and wanted in {o for o in (origin_of(a) for a in allowed) if o is not None}


def visitor_channel(prefix: str, visitor_id: str) -> str:
    """The Redis pub/sub channel of one visitor's replies (``visitor_channel(prefix, "") + "*"`` covers them all)."""
    return f"{prefix}:webchat:{visitor_id}"


def image_data_url(message: OutboundMessage) -> str | None:
    if message.image is None:
        return None
    encoded = base64.b64encode(message.image.content).decode()
    return f"data:{message.image.content_type};base64,{encoded}"


class WebchatAdapter:
    """Web-chat channel adapter; ``send`` publishes to Redis, the websocket handler forwards to the browser."""

    channel: Channel = "webchat"

    def __init__(self, *, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def channel_for(self, visitor_id: str) -> str:
        return visitor_channel(self._prefix, visitor_id)

    async def verify(self, request: web.Request) -> None:
        """The transport half of the check: a websocket upgrade from a browser page (one that sends Origin).

        Which origins may embed the widget is clinic data; the handler checks it with :func:`origin_allowed`.
        """
        if not request.headers.get("Origin"):
            raise Refused(403, "The chat only answers the pages it is embedded in.")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise Refused(400, "This address speaks websocket only.")

    def parse(self, raw: Any) -> InboundMessage | None:
        """``raw`` is ``{"visitor_id", "language", "frame", "now"}``; a hello frame is not a message (None)."""
        frame = read_frame(raw["frame"])
        if isinstance(frame, Hello):
            return None
        return to_inbound(frame, visitor_id=raw["visitor_id"], language=raw.get("language"), now=raw["now"])

    def rate_limits(self, message: OutboundMessage) -> list[RateLimit]:
        """Our own pub/sub: no provider limit to respect."""
        return []

    async def send(self, message: OutboundMessage) -> str:
        """Publish ``message`` to the visitor's channel; returns the id the widget sees (also in the history)."""
        message_id = uuid.uuid4().hex
        payload = {
            "type": "message",
            "id": message_id,
            "text": message.text,
            "buttons": [{"label": b.label, "data": b.data} for b in message.buttons],
            "image": image_data_url(message),
        }
        try:
            await self._redis.publish(self.channel_for(message.recipient), json.dumps(payload, ensure_ascii=False))
        except (RedisError, OSError) as exc:
            raise DeliveryFailed(f"cannot publish the web-chat reply: {exc}", transient=True, code="redis") from exc
        return message_id

    async def close(self) -> None:
        """Nothing to close: the Redis client belongs to whoever built the adapter."""
