"""The web chat: the embeddable widget script, its websocket, and a demo page that embeds it.

One connection: origin check (403 before the upgrade) → ``hello`` → ``welcome`` (signed visitor token + history from
the database) → chat frames, each persisted through the same ``accept`` step as every webhook and acknowledged.
Replies come back over Redis pub/sub (``WebchatAdapter.send``), so whichever gateway instance or worker sends them,
the instance holding the visitor's socket delivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import WSMsgType, web
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from booking_core.services import settings as clinic_settings
from booking_core.services import webchat as webchat_service
from channels.base import Refused
from channels.webchat.adapter import (
    ChatFrame,
    FrameError,
    Hello,
    WebchatAdapter,
    origin_allowed,
    read_frame,
    to_inbound,
    visitor_channel,
)
from channels.webchat.token import VisitorTokens, new_visitor_id
from gateway.inbound import accept, refused
from gateway.keys import ADAPTERS, REDIS, SESSIONMAKER, SETTINGS
from gateway.middleware import error_response
from workers.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)

WIDGET_JS = Path(__file__).resolve().parent.parent / "channels" / "webchat" / "static" / "widget.js"
#: The widget URL has no version in it (sites paste it once), so caches revalidate hourly (cheap: ETag → 304).
WIDGET_CACHE_CONTROL = "public, max-age=3600, stale-while-revalidate=86400"

HELLO_TIMEOUT = 30.0  # seconds a new socket may stay silent before saying hello
#: Frames above the 4 KiB the protocol allows get a ``too_long`` error frame; only far larger ones (which no widget
#: sends) make aiohttp close the connection.
WS_MAX_MESSAGE = 64 * 1024
RATE_LIMIT = 10  # chat frames per visitor ...
RATE_WINDOW = 10  # ... per this many seconds
SUBSCRIBE_TIMEOUT = 5.0
POLL_SECONDS = 5.0


# --- the widget script and the demo page


def _widget_handler() -> Any:
    body = WIDGET_JS.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

    async def widget_js(request: web.Request) -> web.Response:
        headers = {
            "Cache-Control": WIDGET_CACHE_CONTROL,
            "ETag": etag,
            "X-Content-Type-Options": "nosniff",
            # Any site may load the script (even pages with Cross-Origin-Embedder-Policy).
            "Cross-Origin-Resource-Policy": "cross-origin",
            "Access-Control-Allow-Origin": "*",
        }
        if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="text/javascript", charset="utf-8", headers=headers)

    return widget_js


async def demo(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    lang = request.query.get("lang")
    lang = lang if lang in ("en", "id") else settings.DEFAULT_LANGUAGE
    return aiohttp_jinja2.render_template(
        "public/webchat_demo.html",
        request,
        {"lang": lang, "widget_src": "/webchat/widget.js", "public_base_url": settings.PUBLIC_BASE_URL},
    )


# --- the websocket


def _adapter(request: web.Request) -> WebchatAdapter:
    adapter = request.app[ADAPTERS].get("webchat")
    assert isinstance(adapter, WebchatAdapter)
    return adapter


async def _allowed_origins(request: web.Request) -> list[str]:
    async with request.app[SESSIONMAKER]() as db:
        configured = await clinic_settings.get(db, "webchat_allowed_origins")
    extra = [o for o in configured if isinstance(o, str)] if isinstance(configured, list) else []
    return [request.app[SETTINGS].PUBLIC_BASE_URL, *extra]


async def websocket(request: web.Request) -> web.StreamResponse:
    adapter = _adapter(request)
    try:
        await adapter.verify(request)
        if not origin_allowed(request.headers.get("Origin"), await _allowed_origins(request)):
            raise Refused(403, "This site may not embed the clinic's chat.")
    except Refused as exc:
        refused(request, "webchat")
        return error_response(request, exc.status, "forbidden" if exc.status == 403 else "bad_request", exc.message)
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=WS_MAX_MESSAGE)
    try:
        await ws.prepare(request)
    except ConnectionError:  # the visitor left (page closed, reloaded) before the upgrade finished
        return ws
    with contextlib.suppress(ConnectionError):
        hello = await _await_hello(ws)
        if hello is not None:
            await VisitorSocket(request, ws, hello).run()
    if not ws.closed:
        await ws.close()
    return ws


async def _send(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    if not ws.closed:
        await ws.send_str(json.dumps(frame, ensure_ascii=False))


async def _await_hello(ws: web.WebSocketResponse) -> Hello | None:
    """Read frames until the hello (answering anything else with an error frame); None if the socket goes away."""
    while True:
        try:
            msg = await ws.receive(timeout=HELLO_TIMEOUT)
        except TimeoutError:
            await ws.close(code=1008, message=b"hello expected")
            return None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        if msg.type != WSMsgType.TEXT:
            await _send(ws, FrameError("malformed", "Frames are JSON text.").to_frame())
            continue
        try:
            frame = read_frame(msg.data)
        except FrameError as exc:
            await _send(ws, exc.to_frame())
            continue
        if isinstance(frame, Hello):
            return frame
        await _send(ws, FrameError("hello_first", "Say hello first.", frame_id=frame.id).to_frame())


class VisitorSocket:
    """One visitor's open socket after the hello: welcome, then frames in and published replies out."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, hello: Hello) -> None:
        self.request = request
        self.app = request.app
        self.ws = ws
        self.language = hello.language
        settings = self.app[SETTINGS]
        self.prefix = settings.FRONTDESK_REDIS_PREFIX
        tokens = VisitorTokens(settings.SECRET_KEY)
        # A missing, forged or expired token starts a new visitor: never an error the visitor has to deal with.
        self.visitor_id = tokens.read(hello.token) or new_visitor_id()
        self.token = tokens.issue(self.visitor_id)

    async def run(self) -> None:
        pubsub = self.app[REDIS].pubsub()
        forwarder: asyncio.Task[None] | None = None
        try:
            # Subscribe before reading the history: a reply sent in between is then in one or both (the widget drops
            # repeats by id), never in neither.
            await self._subscribe(pubsub)
            async with self.app[SESSIONMAKER]() as db:
                history = await webchat_service.history(db, self.visitor_id)
            await _send(self.ws, {"type": "welcome", "token": self.token, "history": [h.to_frame() for h in history]})
            forwarder = asyncio.create_task(self._forward(pubsub))
            await self._receive()
        finally:
            if forwarder is not None:
                forwarder.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await forwarder
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(visitor_channel(self.prefix, self.visitor_id))
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
            while True:  # wait for Redis to confirm, so nothing published from now on is missed
                confirmation = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
                if confirmation is not None and confirmation["type"] == "subscribe":
                    return

    async def _forward(self, pubsub: PubSub) -> None:
        """Published replies → the socket. If Redis goes away, close the socket: the widget reconnects and reloads
        the history, so nothing is lost."""
        try:
            while not self.ws.closed:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_SECONDS)
                if message is None or message["type"] != "message":
                    continue
                data = message["data"]
                await self.ws.send_str(data.decode() if isinstance(data, bytes) else str(data))
        except (RedisError, OSError) as exc:
            log.warning("webchat: lost the reply channel of a visitor: %s", exc)
            await self.ws.close(code=1011, message=b"reply channel lost")

    async def _receive(self) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT:
                frame_bytes: str | bytes = msg.data
            elif msg.type == WSMsgType.BINARY:
                frame_bytes = msg.data
            else:
                continue
            try:
                await self._handle(frame_bytes)
            except FrameError as exc:
                await _send(self.ws, exc.to_frame())
            except ConnectionError:
                raise
            except Exception:  # one bad frame (or a database hiccup) must not end the visitor's chat
                log.exception("webchat: frame from a visitor failed")
                await _send(
                    self.ws,
                    {"type": "error", "code": "unavailable", "message": "We could not take that message; try again."},
                )

    async def _handle(self, raw: str | bytes) -> None:
        frame = read_frame(raw)
        if isinstance(frame, Hello):
            raise FrameError("unsupported", "Hello was said already.")
        assert isinstance(frame, ChatFrame)
        limit = Limit(f"webchat:visitor:{self.visitor_id}", RATE_LIMIT, RATE_WINDOW)
        if await RateLimiter(self.app[REDIS], self.prefix).try_acquire([limit]) > 0:
            await _send(
                self.ws,
                {"type": "error", "code": "rate_limited", "id": frame.id,
                 "message": "You are sending messages too quickly; wait a few seconds."},
            )  # fmt: skip
            return
        inbound = to_inbound(frame, visitor_id=self.visitor_id, language=self.language, now=datetime.now(UTC))
        await accept(self.request, inbound, channel="webchat")
        await _send(self.ws, {"type": "ack", "id": frame.id})


def setup(app: web.Application) -> None:
    app.router.add_get("/webchat/widget.js", _widget_handler())
    app.router.add_get("/webchat/ws", websocket)
    app.router.add_get("/webchat/demo", demo)
