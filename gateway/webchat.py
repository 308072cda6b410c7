"""The web chat: the embeddable widget script, its websocket, and a demo page that embeds it.

One connection: origin check (403 before the upgrade) → ``hello`` → limits for a new visitor → ``welcome`` (signed
visitor token + history from the database) → chat frames, each persisted through the same ``accept`` step as every
webhook and only then acknowledged. A message that cannot be stored in time gets a retryable ``unavailable`` error
and the widget sends it again (same id, so one copy is kept): a busy database delays a message, never drops it.

Replies come back over Redis pub/sub (``WebchatAdapter.send``): whichever gateway instance or worker sends them, the
gateway holding the visitor's socket receives them on its one subscription (gateway/webchat_hub.py) and forwards
them. A socket holds no Redis connection of its own.

Limits: new visitors (a hello without a valid token) per address per 10 minutes and clinic-wide per minute, refused
with a ``busy`` frame carrying ``retry_after`` and a 1013 close; open sockets per address on this gateway (HTTP 429
with ``Retry-After`` on the upgrade); chat frames per visitor (``rate_limited`` frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import WSCloseCode, WSMsgType, web
from redis.exceptions import RedisError

from booking_core.db.engine import DATABASE_FAILED
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
)
from channels.webchat.token import VisitorTokens, new_visitor_id
from gateway.inbound import accept, refused
from gateway.keys import ADAPTERS, REDIS, SESSIONMAKER, SETTINGS, WEBCHAT_HUB
from gateway.limits import limit_address, retry_after
from gateway.middleware import error_response
from gateway.webchat_hub import Listener, WebchatHub
from infra.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)
#: What reading the database (or waiting for it) raises when it cannot answer now: the visitor is asked to retry.
_NOT_NOW: tuple[type[BaseException], ...] = (TimeoutError, OSError, *DATABASE_FAILED)

WIDGET_JS = Path(__file__).resolve().parent.parent / "channels" / "webchat" / "static" / "widget.js"
#: The widget URL has no version in it (sites paste it once), so caches revalidate hourly (cheap: ETag → 304).
WIDGET_CACHE_CONTROL = "public, max-age=3600, stale-while-revalidate=86400"

HELLO_TIMEOUT = 30.0  # seconds a new socket may stay silent before saying hello
#: Frames above the 4 KiB the protocol allows get a ``too_long`` error frame; only far larger ones (which no widget
#: sends) make aiohttp close the connection.
WS_MAX_MESSAGE = 64 * 1024
RATE_LIMIT = 10  # chat frames per visitor ...
RATE_WINDOW = 10  # ... per this many seconds
SUBSCRIBE_TIMEOUT = 5.0  # seconds a new socket waits for the gateway's reply subscription (after a Redis restart)
#: Windows (seconds) of the new-visitor limits; the counts are settings (FRONTDESK_WEBCHAT_NEW_VISITORS_*).
NEW_VISITOR_ADDRESS_WINDOW = 600
NEW_VISITOR_CLINIC_WINDOW = 60
RETRY_SECONDS = 3  # ``retry_after`` of an ``unavailable`` error: the widget waits this long, then longer, and retries
OPEN_SOCKETS_RETRY = 30  # ``Retry-After`` when an address holds too many open sockets
NEW_VISITOR_REFUSALS = {
    "address": "Too many new chats were started from your network; the chat will try again later.",
    "clinic": "Many people are starting a chat right now; the chat will try again soon.",
}


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


# --- what the gateway keeps for the web chat


async def webchat_hub(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the one reply subscription of this gateway, released when the gateway stops."""
    settings = app[SETTINGS]
    assert settings.REDIS_URL is not None
    hub = WebchatHub(settings.REDIS_URL, settings.FRONTDESK_REDIS_PREFIX)
    app[WEBCHAT_HUB] = hub
    hub.start()
    yield
    await hub.stop()


async def _release_sockets(app: web.Application) -> None:
    """``on_shutdown``: open sockets close now (their widgets reconnect, to another gateway if there is one), so
    the gateway does not wait for visitors to leave before it stops."""
    app[WEBCHAT_HUB].release_sockets()


#: New visitors counted in fixed windows: the address first, the clinic only for addresses under their limit (so a
#: flood from one address does not use up the clinic's budget). Returns {0, 0} or {which (1 address, 2 clinic),
#: seconds until that window ends}.
_NEW_VISITOR_SCRIPT = """
local function count(key, window)
  local n = redis.call('INCR', key)
  if n == 1 or redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, window) end
  return n
end
if count(KEYS[1], tonumber(ARGV[2])) > tonumber(ARGV[1]) then return {1, redis.call('TTL', KEYS[1])} end
if count(KEYS[2], tonumber(ARGV[4])) > tonumber(ARGV[3]) then return {2, redis.call('TTL', KEYS[2])} end
return {0, 0}
"""


async def new_visitor_wait(request: web.Request) -> tuple[str | None, int]:
    """Count a new visitor of this request's address: ``(None, 0)`` lets them in, else which limit refused them
    (``"address"`` or ``"clinic"``) and the seconds until its window ends."""
    settings = request.app[SETTINGS]
    prefix = settings.FRONTDESK_REDIS_PREFIX
    keys = [f"{prefix}:webchat:new:address:{limit_address(request)}", f"{prefix}:webchat:new:clinic"]
    args = [settings.FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS, NEW_VISITOR_ADDRESS_WINDOW,
            settings.FRONTDESK_WEBCHAT_NEW_VISITORS_PER_MINUTE, NEW_VISITOR_CLINIC_WINDOW]  # fmt: skip
    count = request.app[REDIS].register_script(_NEW_VISITOR_SCRIPT)  # EVALSHA, loading the script when Redis lacks it
    refused_by, seconds = await count(keys=keys, args=args)
    scope = {1: "address", 2: "clinic"}.get(int(refused_by))
    return scope, (max(1, int(seconds)) if scope else 0)


# --- the websocket


def _adapter(request: web.Request) -> WebchatAdapter:
    adapter = request.app[ADAPTERS].get("webchat")
    assert isinstance(adapter, WebchatAdapter)
    return adapter


async def _allowed_origins(request: web.Request) -> list[str]:
    async with asyncio.timeout(request.app[SETTINGS].FRONTDESK_WEBCHAT_STORE_WITHIN):
        async with request.app[SESSIONMAKER]() as db:
            configured = await clinic_settings.get(db, "webchat_allowed_origins")
    extra = [o for o in configured if isinstance(o, str)] if isinstance(configured, list) else []
    return [request.app[SETTINGS].PUBLIC_BASE_URL, *extra]


async def _origin_allowed(request: web.Request) -> bool:
    """The page embedding the widget is the clinic's own site or one its settings list (recent answers are kept
    for a few seconds, so a burst of visitors costs the database one query; a refusal always asks again)."""
    origin = request.headers.get("Origin")
    hub = request.app[WEBCHAT_HUB]
    if origin_allowed(origin, hub.recent_origins()):
        return True
    allowed = await _allowed_origins(request)
    hub.remember_origins(allowed)
    return origin_allowed(origin, allowed)


def _busy(request: web.Request, message: str, *, status: int, seconds: float) -> web.Response:
    response = error_response(request, status, "busy" if status == 429 else "unavailable", message)
    response.headers["Retry-After"] = retry_after(seconds)
    return response


async def websocket(request: web.Request) -> web.StreamResponse:
    adapter = _adapter(request)
    settings = request.app[SETTINGS]
    hub = request.app[WEBCHAT_HUB]
    try:
        await adapter.verify(request)
        if not await _origin_allowed(request):
            raise Refused(403, "This site may not embed the clinic's chat.")
    except Refused as exc:
        refused(request, "webchat")
        return error_response(request, exc.status, "forbidden" if exc.status == 403 else "bad_request", exc.message)
    except _NOT_NOW:
        log.warning("webchat: cannot read the allowed sites now; the widget will try again")
        return _busy(request, "The chat is busy; try again in a moment.", status=503, seconds=RETRY_SECONDS)
    address = limit_address(request)
    if not hub.enter(address, settings.FRONTDESK_WEBCHAT_OPEN_SOCKETS_PER_ADDRESS):
        return _busy(request, "Too many chats are open from your address.", status=429, seconds=OPEN_SOCKETS_RETRY)
    try:
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
    finally:
        hub.leave(address)


async def _send(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    if not ws.closed:
        await ws.send_str(json.dumps(frame, ensure_ascii=False))


async def _refuse(ws: web.WebSocketResponse, code: str, message: str, seconds: int) -> None:
    """A frame the widget shows (and waits ``retry_after`` seconds on), then the close: 1013, try again later."""
    await _send(ws, {"type": "error", "code": code, "message": message, "retry_after": seconds})
    await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=message.encode()[:120])


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
        self.store_within = settings.FRONTDESK_WEBCHAT_STORE_WITHIN
        tokens = VisitorTokens(settings.SECRET_KEY)
        # A missing, forged or expired token starts a new visitor: never an error the visitor has to deal with.
        known = tokens.read(hello.token)
        self.new_visitor = known is None
        self.visitor_id = known or new_visitor_id()
        self.token = tokens.issue(self.visitor_id)

    async def run(self) -> None:
        hub = self.app[WEBCHAT_HUB]
        if not await self._admitted():
            return
        listener = hub.register(self.visitor_id)
        forwarder: asyncio.Task[None] | None = None
        try:
            # Registered (on a confirmed subscription) before the history is read: a reply sent in between is then
            # in one or both (the widget drops repeats by id), never in neither.
            try:
                async with asyncio.timeout(self.store_within), self.app[SESSIONMAKER]() as db:
                    history = await webchat_service.history(db, self.visitor_id)
            except _NOT_NOW:
                log.warning("webchat: cannot read a visitor's history now; the widget will reconnect")
                await _refuse(self.ws, "unavailable", "We cannot open the chat right now; trying again.", RETRY_SECONDS)
                return
            await _send(self.ws, {"type": "welcome", "token": self.token, "history": [h.to_frame() for h in history]})
            forwarder = asyncio.create_task(self._forward(listener))
            await self._receive()
        finally:
            hub.unregister(listener)
            if forwarder is not None:
                forwarder.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await forwarder

    async def _admitted(self) -> bool:
        """A new visitor within the address's and the clinic's limits, and a reply subscription that is up."""
        hub = self.app[WEBCHAT_HUB]
        try:
            scope, wait = await new_visitor_wait(self.request) if self.new_visitor else (None, 0)
        except RedisError as exc:
            log.warning("webchat: cannot count new visitors now (%s)", exc)
            await _refuse(self.ws, "unavailable", "We cannot open the chat right now; trying again.", RETRY_SECONDS)
            return False
        if scope is not None:
            log.debug("webchat: a new visitor refused by the %s limit (%s)", scope, limit_address(self.request))
            await _refuse(self.ws, "busy", NEW_VISITOR_REFUSALS[scope], wait)
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await hub.subscribed.wait()
        if not hub.subscribed.is_set():
            await _refuse(self.ws, "unavailable", "We cannot open the chat right now; trying again.", RETRY_SECONDS)
            return False
        return True

    async def _forward(self, listener: Listener) -> None:
        """Published replies → the socket. If replies may have been missed (the subscription was lost, or this
        socket fell far behind), close it: the widget reconnects and reloads the history, so nothing is lost."""
        while not self.ws.closed:
            data = await listener.queue.get()
            if data is None or listener.stale:
                await self.ws.close(code=listener.close_code, message=b"reconnect to catch up")
                return
            await self.ws.send_str(data)

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

    async def _handle(self, raw: str | bytes) -> None:
        frame = read_frame(raw)
        if isinstance(frame, Hello):
            raise FrameError("unsupported", "Hello was said already.")
        assert isinstance(frame, ChatFrame)
        limit = Limit(f"webchat:visitor:{self.visitor_id}", RATE_LIMIT, RATE_WINDOW)
        try:
            over = await RateLimiter(self.app[REDIS], self.prefix).try_acquire([limit]) > 0
        except RedisError as exc:
            log.warning("webchat: cannot check a visitor's rate now (%s)", exc)
            await self._try_again(frame)
            return
        if over:
            await _send(
                self.ws,
                {"type": "error", "code": "rate_limited", "id": frame.id,
                 "message": "You are sending messages too quickly; wait a few seconds."},
            )  # fmt: skip
            return
        inbound = to_inbound(frame, visitor_id=self.visitor_id, language=self.language, now=datetime.now(UTC))
        # Stored, then acknowledged. The store runs on even if this socket stops waiting for it (a message half
        # stored is never cancelled); the widget re-sends a message it was told to try again with the same id, and
        # the store keeps one copy.
        storing = self.app[WEBCHAT_HUB].keep(accept(self.request, inbound, channel="webchat"))
        try:
            await asyncio.wait_for(asyncio.shield(storing), self.store_within)
        except Exception:  # no free database connection in time, the database away: the widget sends it again
            if not storing.done():
                log.warning("webchat: a message waited %.0f s for the database; the widget will resend it",
                            self.store_within)  # fmt: skip
            else:
                log.exception("webchat: a visitor's message could not be stored; the widget will resend it")
            await self._try_again(frame)
            return
        await _send(self.ws, {"type": "ack", "id": frame.id})

    async def _try_again(self, frame: ChatFrame) -> None:
        """The message was not taken: a retryable error the widget answers by sending the same frame again later."""
        await _send(
            self.ws,
            {"type": "error", "code": "unavailable", "id": frame.id, "retry_after": RETRY_SECONDS,
             "message": "We could not take that message yet; it will be sent again."},
        )  # fmt: skip


def setup(app: web.Application) -> None:
    # Appended after the database and Redis contexts of create_app: the hub stops first, and messages still being
    # stored for sockets that stopped waiting finish while the pools are open.
    app.cleanup_ctx.append(webchat_hub)
    app.on_shutdown.append(_release_sockets)
    app.router.add_get("/webchat/widget.js", _widget_handler())
    app.router.add_get("/webchat/ws", websocket)
    app.router.add_get("/webchat/demo", demo)
