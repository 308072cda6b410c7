"""Live updates for open staff pages: PostgreSQL NOTIFY (from triggers, migration 0006) → server-sent events.

Each gateway process keeps one listening connection and fans each change out to its open ``/inbox/events``
streams; a page re-reads what it shows when a change of a table it watches arrives. Staff tied to a branch get
only that branch's changes (and the branch-less ones, e.g. a new message, which carry no patient data).
A stream ends as soon as its session is revoked or expires (the revocation is announced on the same channel).
If the listening connection drops, it is re-opened and every stream is told to refresh ("resync").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from booking_core.domain.actors import Actor
from booking_core.services import auth as auth_service
from gateway.auth import token_from
from gateway.inbox.web import ALL, message_page, staff_page
from gateway.keys import SESSIONMAKER, SETTINGS
from infra.settings import to_asyncpg_url

log = logging.getLogger(__name__)

CHANNEL = "frontdesk_changes"
HEARTBEAT = 15.0  # seconds between keep-alive comments (proxies close idle streams)
QUEUE_SIZE = 200  # a stream this far behind is told to resync instead of buffering forever


class ChangeHub:
    """One LISTEN connection per process, fanned out to every open stream."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._streams: set[asyncio.Queue[dict[str, Any]]] = set()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="change-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._streams.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._streams.discard(queue)

    def publish(self, change: dict[str, Any]) -> None:
        for queue in list(self._streams):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        queue.get_nowait()
                queue.put_nowait({"table": "*", "op": "resync"})

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            change = json.loads(payload)
        except ValueError:
            return
        if isinstance(change, dict):
            self.publish(change)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5)
                await conn.add_listener(CHANNEL, self._on_notify)
                self.connected.set()
                delay = 0.5
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 10)
                    if not lost.is_set():
                        await conn.execute("SELECT 1")  # notices a dead server even without a FIN
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: keep trying, streams keep their heartbeat
                log.warning("live updates: listening connection lost (%s); retrying", exc.__class__.__name__)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            self.publish({"table": "*", "op": "resync"})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


HUB = web.AppKey("change_hub", ChangeHub)


async def change_hub(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].DATABASE_URL
    assert url is not None
    hub = ChangeHub(to_asyncpg_url(url).replace("postgresql+asyncpg://", "postgresql://", 1))
    hub.start()
    app[HUB] = hub
    yield
    await hub.stop()


#: The last event of a stream whose session ended: the page goes to the sign-in page instead of reconnecting.
SIGNED_OUT = b"event: signed-out\ndata: {}\n\n"
#: Changes about sign-in itself: they end streams, and are never sent to a page.
SIGN_IN_TABLES = frozenset({"staff_sessions", "staff"})


def _visible(change: dict[str, Any], actor: Actor) -> bool:
    if change.get("table") in SIGN_IN_TABLES:
        return False
    branch = change.get("branch_id")
    return branch is None or actor.can_see_branch(branch if isinstance(branch, int) else None)


def _concerns(change: dict[str, Any], session: auth_service.SignedIn) -> bool:
    """Whether a change may have ended this stream's session: its own session row, its member, or a resync (the
    listening connection was lost, so an announcement may have been missed)."""
    table, row_id = change.get("table"), change.get("id")
    return (
        change.get("op") == "resync"
        or (table == "staff_sessions" and row_id == session.session_id)
        or (table == "staff" and row_id == session.actor.id)
    )


async def _still_signed_in(request: web.Request, token: str, session: auth_service.SignedIn) -> bool:
    """The session is live and its member unchanged (a new role or branch re-opens the stream with the new scope)."""
    async with request.app[SESSIONMAKER]() as db:
        now = await auth_service.signed_in(db, token, secret=request.app[SETTINGS].SECRET_KEY)
    return now is not None and now.session_id == session.session_id and now.actor == session.actor


async def _send_changes(
    request: web.Request,
    response: web.StreamResponse,
    queue: asyncio.Queue[dict[str, Any]],
    token: str,
    session: auth_service.SignedIn,
) -> None:
    await response.prepare(request)
    await response.write(b"retry: 2000\nevent: ready\ndata: {}\n\n")
    while True:
        left = (session.expires_at - datetime.now(UTC)).total_seconds()
        if left <= 0:
            await response.write(SIGNED_OUT)
            return
        try:
            change = await asyncio.wait_for(queue.get(), min(HEARTBEAT, left))
        except TimeoutError:
            if not await _still_signed_in(request, token, session):
                await response.write(SIGNED_OUT)
                return
            await response.write(b": keep-alive\n\n")
            continue
        if change.get("op") == "closing":
            return
        if _concerns(change, session) and not await _still_signed_in(request, token, session):
            await response.write(SIGNED_OUT)
            return
        if _visible(change, session.actor):
            await response.write(f"event: change\ndata: {json.dumps(change)}\n\n".encode())


@staff_page(ALL)
async def events(request: web.Request, actor: Actor) -> web.StreamResponse:
    """``GET /inbox/events``: text/event-stream of ``change`` events ({"table", "op", "id", "branch_id"}).

    The stream lives only as long as its session: a revocation (sign out, "sign out everywhere", the member leaving)
    arrives on the same NOTIFY channel and ends it before any later change is sent; a heartbeat also re-checks the
    session, and the stream ends when the session expires. Its last event is then ``signed-out``.
    """
    hub = request.app[HUB]
    queue = hub.subscribe()  # before the check below: a revocation committed after it is heard
    try:
        token = token_from(request)
        async with request.app[SESSIONMAKER]() as db:
            session = await auth_service.signed_in(db, token or "", secret=request.app[SETTINGS].SECRET_KEY)
        if token is None or session is None or session.actor != actor:
            return message_page(request, 401, "unauthorized", "Your session has ended. Sign in again.")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        with contextlib.suppress(ConnectionResetError):
            await _send_changes(request, response, queue, token, session)
        return response
    finally:
        hub.unsubscribe(queue)


async def _close_streams(app: web.Application) -> None:
    """On shutdown, end open streams at once (browsers reconnect to another instance) instead of holding it up."""
    if HUB in app:
        app[HUB].publish({"table": "*", "op": "closing"})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(change_hub)
    app.on_shutdown.append(_close_streams)
    app.router.add_get("/inbox/events", events)
