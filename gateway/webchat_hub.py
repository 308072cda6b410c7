"""Web-chat replies fanned out to open sockets over ONE Redis subscription per gateway process.

``WebchatAdapter.send`` (in a worker or any gateway) publishes a reply on the visitor's channel
(``{prefix}:webchat:{visitor_id}``). Each gateway holds one pattern subscription to ``{prefix}:webchat:*`` and hands
each reply to the sockets of that visitor it holds (a dict visitor → listeners); replies for visitors connected to
another gateway are dropped here and delivered there. A socket costs no Redis connection of its own, so open and
closed sockets leave the Redis client count where it was.

A listener queues what arrives for it (bounded): the socket sends its welcome first, then what was queued. When the
subscription is lost (Redis restarted, a network cut) or a socket falls too far behind, its socket is closed: the
widget reconnects and reloads the history from the database, so nothing sent is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from channels.webchat.adapter import visitor_channel

log = logging.getLogger(__name__)

#: Replies waiting for one socket at most; a socket this far behind is closed and reloads its history.
QUEUE_SIZE = 64
POLL_SECONDS = 5.0  # how long one read of the subscription waits (the loop also notices a stop in that time)
#: Seconds between two attempts to subscribe again after the subscription was lost (doubling up to the max).
RESUBSCRIBE_FIRST, RESUBSCRIBE_MAX = 0.5, 10.0
#: Seconds work a socket left behind (a message still being stored) may take to finish when the gateway stops.
BACKGROUND_GRACE = 15.0
#: Seconds the sites allowed to embed the widget are taken as known without asking the database again.
ORIGINS_TTL = 10.0


@dataclass(eq=False)
class Listener:
    """One open socket of a visitor: replies queue here until the socket sends them."""

    visitor_id: str
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    #: Set when replies may have been missed (subscription lost, queue full) or the gateway stops: the socket closes
    #: with ``close_code`` and the widget reconnects and reloads its history.
    stale: bool = False
    close_code: int = WSCloseCode.INTERNAL_ERROR

    def deliver(self, data: str) -> None:
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.mark_stale()

    def mark_stale(self, close_code: int = WSCloseCode.INTERNAL_ERROR) -> None:
        if not self.stale:
            self.close_code = close_code
        self.stale = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)  # wakes the socket's sender; if full, it sees ``stale`` on its next reply


class WebchatHub:
    """The gateway's one subscription to web-chat replies and the local registry of open sockets."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self._redis_url = redis_url
        self._channel_start = visitor_channel(prefix, "")
        self._pattern = self._channel_start + "*"
        self._listeners: dict[str, set[Listener]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pubsub: PubSub | None = None  # the subscription now, so that stop() can cut it
        self._background: set[asyncio.Task[Any]] = set()
        self._open_by_address: dict[str, int] = {}
        self._origins: list[str] = []
        self._origins_until = 0.0
        #: Set while the subscription is confirmed by Redis (replies published now reach this gateway).
        self.subscribed = asyncio.Event()

    # --- the registry

    def register(self, visitor_id: str) -> Listener:
        """A listener for a socket of ``visitor_id``; call only while :attr:`subscribed` is set."""
        listener = Listener(visitor_id)
        self._listeners.setdefault(visitor_id, set()).add(listener)
        return listener

    def unregister(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.visitor_id)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[listener.visitor_id]

    @property
    def sockets(self) -> int:
        """Open sockets registered here (for tests and metrics)."""
        return sum(len(listeners) for listeners in self._listeners.values())

    def dispatch(self, channel: str, data: str) -> None:
        """A published reply → every local socket of its visitor (none: the visitor is on another gateway)."""
        if not channel.startswith(self._channel_start):
            return
        for listener in list(self._listeners.get(channel[len(self._channel_start) :], ())):
            listener.deliver(data)

    def release_sockets(self) -> None:
        """The gateway stops: every open socket closes with 1012 (its widget reconnects, to another gateway)."""
        self._mark_all_stale(WSCloseCode.SERVICE_RESTART)

    def _mark_all_stale(self, close_code: int = WSCloseCode.INTERNAL_ERROR) -> None:
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener.mark_stale(close_code)

    # --- open sockets per address (on this gateway)

    def enter(self, address: str, limit: int) -> bool:
        """Count a socket of ``address`` in, unless it already holds ``limit`` open ones (then False)."""
        held = self._open_by_address.get(address, 0)
        if held >= limit:
            return False
        self._open_by_address[address] = held + 1
        return True

    def leave(self, address: str) -> None:
        held = self._open_by_address.get(address, 0) - 1
        if held > 0:
            self._open_by_address[address] = held
        else:
            self._open_by_address.pop(address, None)

    # --- the sites that may embed the widget (clinic settings), kept for a few seconds

    def recent_origins(self) -> list[str]:
        return self._origins if time.monotonic() < self._origins_until else []

    def remember_origins(self, origins: list[str]) -> None:
        self._origins = origins
        self._origins_until = time.monotonic() + ORIGINS_TTL

    # --- work a socket leaves behind

    def keep(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` as a task the hub holds until it ends (a socket may stop waiting for it, not cancel it)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._forget)
        return task

    @property
    def left_behind(self) -> int:
        """Work still running that its socket stopped waiting for."""
        return len(self._background)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:  # its socket has said "try again" already
            log.debug("webchat: work left behind by a socket failed: %r", task.exception())

    # --- the subscription

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="webchat-hub")

    async def stop(self) -> None:
        self._mark_all_stale(WSCloseCode.SERVICE_RESTART)  # their widgets reconnect (to another gateway, or this one)
        self._stopping = True
        if self._task is not None:
            # A cancellation can be lost inside redis-py's read of the subscription when it lands as that read
            # times out (seen: a gateway that never finished stopping). So: cancel, wait a moment, then cut the
            # connection under the read and cancel again; never wait for ever.
            for attempt in range(3):
                self._task.cancel()
                done, _ = await asyncio.wait({self._task}, timeout=2.0)
                if done:
                    break
                if attempt == 0 and self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.aclose()
            else:
                log.warning("webchat: the reply subscription did not stop; left behind")
        if self._background:
            _, late = await asyncio.wait(set(self._background), timeout=BACKGROUND_GRACE)
            for task in late:
                task.cancel()

    def _client(self) -> Redis:
        # No silent retries: a reconnect would re-subscribe behind our back and hide the gap in which replies were
        # published to nobody. The loop below notices the error, closes the sockets (they reload their history) and
        # subscribes again.
        return Redis.from_url(
            self._redis_url,
            socket_connect_timeout=3,
            socket_timeout=POLL_SECONDS + 5,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 0),
            client_name=f"frontdesk-webchat-{os.getpid()}",
        )

    async def _listen(self) -> None:
        delay = RESUBSCRIBE_FIRST
        while not self._stopping:
            client = self._client()
            pubsub = self._pubsub = client.pubsub()
            try:
                await self._subscribe(pubsub)
                delay = RESUBSCRIBE_FIRST
                while not self._stopping:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_SECONDS)
                    if message is not None and message["type"] == "pmessage":
                        self.dispatch(_text(message["channel"]), _text(message["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("webchat: the reply subscription was lost (%s); subscribing again", exc)
            finally:
                self.subscribed.clear()
                self._mark_all_stale()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE_MAX)

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.psubscribe(self._pattern)
        async with asyncio.timeout(POLL_SECONDS):
            while True:  # wait for Redis to confirm: from then on nothing published is missed
                confirmation = await pubsub.get_message(timeout=POLL_SECONDS)
                if confirmation is not None and confirmation["type"] == "psubscribe":
                    break
        self.subscribed.set()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
