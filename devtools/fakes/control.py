"""Shared machinery of the fake provider APIs: request recording, fault injection, rate limits, serving.

Both fakes (Telegram Bot API, Twilio Messages API) run in one asyncio loop. Every decision that touches
shared state (taking a fault, checking and counting a rate limit, numbering a message) happens in plain
synchronous code with no ``await`` in between, so concurrent requests can never both take the last fault or
both squeeze under a limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

Clock = Callable[[], float]
"""Seconds on a monotonic scale; ``time.monotonic`` unless a test freezes time."""

FaultKind = Literal["retry_after", "server_error", "delay"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass(frozen=True, slots=True)
class RecordedFile:
    """A file part of a multipart/form-data request (e.g. the PNG of a sendPhoto)."""

    part: str
    filename: str | None
    content_type: str
    size: int
    sha256: str
    data: bytes = field(repr=False)

    @classmethod
    def of(cls, *, part: str, filename: str | None, content_type: str, data: bytes) -> RecordedFile:
        """Describe uploaded bytes."""
        return cls(
            part=part,
            filename=filename,
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data=data,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON view (without the bytes)."""
        return {
            "part": self.part,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request a fake answered.

    ``method`` is the Bot API method (``sendMessage``) for Telegram and the resource action
    (``Messages.create``, ``Messages.fetch``, ``Messages.list``, ``Messages.delete``) for Twilio; ``token``
    is the bot token for Telegram and the account sid of the URL for Twilio. ``at`` is ``time.monotonic()``
    (system-wide on Linux, so comparable with another process's clock) at the moment the fake decided the
    answer, i.e. after any injected delay. ``response`` is the JSON body the fake answered.
    """

    method: str
    token: str
    params: dict[str, Any]
    at: float
    status: int
    files: dict[str, RecordedFile] = field(default_factory=dict)
    response: Any = None

    @property
    def ok(self) -> bool:
        """The provider accepted the request (2xx)."""
        return 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        """JSON view used by ``GET /_fake/requests``."""
        return {
            "method": self.method,
            "token": self.token,
            "params": self.params,
            "at": self.at,
            "status": self.status,
            "files": {name: file.to_json() for name, file in self.files.items()},
            "response": self.response,
        }


_fault_ids = itertools.count(1)


@dataclass(slots=True)
class Fault:
    """An injected failure for the next ``times`` matching calls (``None``: every one until cleared).

    ``retry_after``: answer 429 asking the client to wait ``retry_after`` seconds. ``server_error``: answer
    ``status`` (5xx). ``delay``: wait ``seconds`` before answering normally.
    """

    kind: FaultKind
    times: int | None = 1
    method: str | None = None
    retry_after: int = 1
    status: int = 502
    seconds: float = 0.0
    id: int = field(default_factory=lambda: next(_fault_ids))

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 (or null for every call)")
        if self.retry_after < 1:
            raise ValueError("retry_after must be >= 1")
        if not 500 <= self.status <= 599:
            raise ValueError("status must be a 5xx code")
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")

    def matches(self, method: str) -> bool:
        """Whether this fault applies to a call of ``method`` (case-insensitive, like the Bot API)."""
        return self.method is None or self.method.lower() == method.lower()

    def to_json(self) -> dict[str, Any]:
        """JSON view used by ``/_fake/faults``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "times": self.times,
            "method": self.method,
            "retry_after": self.retry_after,
            "status": self.status,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """Build from the ``POST /_fake/faults`` body; ``ValueError`` on anything malformed."""
        unknown = set(data) - {"kind", "times", "method", "retry_after", "status", "seconds"}
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        times = data.get("times", 1)
        method = data.get("method")
        retry_after = data.get("retry_after", 1)
        status = data.get("status", 502)
        seconds = data.get("seconds", 0.0)
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
            raise ValueError("times must be an integer or null")
        if method is not None and not isinstance(method, str):
            raise ValueError("method must be a string or null")
        if isinstance(retry_after, bool) or not isinstance(retry_after, int):
            raise ValueError("retry_after must be an integer")
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError("status must be an integer")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError("seconds must be a number")
        return cls(
            kind=kind,
            times=times,
            method=method,
            retry_after=retry_after,
            status=status,
            seconds=float(seconds),
        )


class FaultQueue:
    """Pending faults, taken first-in first-out by the calls they match."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Queue a fault."""
        self._pending.append(fault)
        return fault

    def take(self, method: str) -> Fault | None:
        """Consume one use of the oldest fault matching ``method`` (synchronous: atomic under asyncio)."""
        for fault in self._pending:
            if not fault.matches(method):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    self._pending.remove(fault)
            return fault
        return None

    def clear(self) -> int:
        """Drop every pending fault; returns how many there were."""
        count = len(self._pending)
        self._pending.clear()
        return count

    @property
    def pending(self) -> list[Fault]:
        """A copy of the pending faults, oldest first."""
        return list(self._pending)


class SlidingWindowLimit:
    """At most ``limit`` accepted events per ``period`` seconds for each key."""

    def __init__(self, limit: int, period: float = 1.0) -> None:
        self.limit = limit
        self.period = period
        self._events: dict[Hashable, deque[float]] = {}

    def wait_time(self, key: Hashable, now: float) -> float:
        """Seconds until one more event for ``key`` would be within the limit (0.0: allowed now)."""
        events = self._events.get(key)
        if events is None:
            return 0.0
        while events and events[0] <= now - self.period:
            events.popleft()
        if not events:
            del self._events[key]
            return 0.0
        if len(events) < self.limit:
            return 0.0
        return events[0] + self.period - now

    def hit(self, key: Hashable, now: float) -> None:
        """Count an accepted event."""
        self._events.setdefault(key, deque()).append(now)

    def clear(self) -> None:
        """Forget every event."""
        self._events.clear()


def whole_seconds(wait: float) -> int:
    """A wait expressed as providers do: whole seconds, at least one."""
    return max(1, math.ceil(wait))


class FakeProvider:
    """State and controls shared by the fakes: recorded requests, faults, rate-limit switch, base URL."""

    def __init__(self, *, enforce_limits: bool, clock: Clock) -> None:
        self.requests: list[Recorded] = []
        self.faults = FaultQueue()
        self.enforce_limits = enforce_limits
        self.throttled_count = 0
        self.clock = clock
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` once served by ``running_fake_*`` (or after a runner sets it)."""
        if self._base_url is None:
            raise RuntimeError("this fake is not being served; use running_fake_telegram/running_fake_twilio")
        return self._base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._base_url = value.rstrip("/")

    def record(
        self,
        *,
        method: str,
        token: str,
        params: dict[str, Any],
        status: int,
        files: dict[str, RecordedFile] | None = None,
        response: Any = None,
    ) -> Recorded:
        """Append one answered request to ``requests``."""
        entry = Recorded(
            method=method,
            token=token,
            params=params,
            at=self.clock(),
            status=status,
            files=files or {},
            response=response,
        )
        self.requests.append(entry)
        return entry

    def requests_for(self, method: str) -> list[Recorded]:
        """Recorded calls of one method (case-insensitive)."""
        wanted = method.lower()
        return [entry for entry in self.requests if entry.method.lower() == wanted]

    def reset(self) -> int:
        """Forget recorded requests and the throttled count (faults stay); returns how many were dropped."""
        count = len(self.requests)
        self.requests.clear()
        self.throttled_count = 0
        return count

    # --- fault controls ---

    def add_fault(self, fault: Fault) -> Fault:
        """Queue any fault."""
        return self.faults.add(fault)

    def throttle_next(self, times: int | None = 1, *, retry_after: int = 1, method: str | None = None) -> Fault:
        """Answer the next ``times`` calls (of ``method``, if given) with 429 and ``retry_after`` seconds."""
        return self.add_fault(Fault(kind="retry_after", times=times, method=method, retry_after=retry_after))

    def fail_next(self, times: int | None = 1, *, status: int = 502, method: str | None = None) -> Fault:
        """Answer the next ``times`` calls (of ``method``, if given) with a 5xx ``status``."""
        return self.add_fault(Fault(kind="server_error", times=times, method=method, status=status))

    def delay_next(self, times: int | None = 1, *, seconds: float, method: str | None = None) -> Fault:
        """Hold the next ``times`` calls (of ``method``, if given) ``seconds`` before answering normally."""
        return self.add_fault(Fault(kind="delay", times=times, method=method, seconds=seconds))

    def clear_faults(self) -> int:
        """Drop every pending fault."""
        return self.faults.clear()

    async def take_fault(self, method: str) -> Fault | None:
        """Consume the fault for this call; a delay is served here (and then the call proceeds normally)."""
        fault = self.faults.take(method)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return None
        return fault


FakeGetter = Callable[[web.Request], FakeProvider]


def control_routes(get_fake: FakeGetter) -> list[web.RouteDef]:
    """The ``/_fake/...`` endpoints that let an out-of-process test or benchmark read and steer a fake.

    ``GET /_fake/requests[?method=sendMessage][&offset=N]`` →
    ``{"total", "throttled_count", "requests": [...]}``; ``DELETE /_fake/requests`` resets them;
    ``GET|POST|DELETE /_fake/faults`` lists, adds (JSON body of :meth:`Fault.from_json`) and clears faults;
    ``GET|PUT /_fake/limits`` reads or sets ``{"enforce": bool}``.
    """

    async def list_requests(request: web.Request) -> web.Response:
        fake = get_fake(request)
        method = request.query.get("method")
        try:
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return web.json_response({"error": "offset must be an integer"}, status=400)
        entries = fake.requests[max(offset, 0) :]
        if method:
            entries = [entry for entry in entries if entry.method.lower() == method.lower()]
        return web.json_response(
            {
                "total": len(fake.requests),
                "throttled_count": fake.throttled_count,
                "requests": [entry.to_json() for entry in entries],
            }
        )

    async def reset_requests(request: web.Request) -> web.Response:
        cleared = get_fake(request).reset()
        return web.json_response({"cleared": cleared})

    async def list_faults(request: web.Request) -> web.Response:
        return web.json_response({"faults": [fault.to_json() for fault in get_fake(request).faults.pending]})

    async def add_fault(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        try:
            fault = Fault.from_json(body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        get_fake(request).add_fault(fault)
        return web.json_response({"fault": fault.to_json()}, status=201)

    async def clear_faults(request: web.Request) -> web.Response:
        return web.json_response({"cleared": get_fake(request).clear_faults()})

    async def get_limits(request: web.Request) -> web.Response:
        fake = get_fake(request)
        return web.json_response({"enforce": fake.enforce_limits, "throttled_count": fake.throttled_count})

    async def set_limits(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("enforce"), bool):
            return web.json_response({"error": 'body must be {"enforce": true|false}'}, status=400)
        fake = get_fake(request)
        fake.enforce_limits = body["enforce"]
        return web.json_response({"enforce": fake.enforce_limits, "throttled_count": fake.throttled_count})

    return [
        web.get("/_fake/requests", list_requests, allow_head=False),
        web.delete("/_fake/requests", reset_requests),
        web.get("/_fake/faults", list_faults, allow_head=False),
        web.post("/_fake/faults", add_fault),
        web.delete("/_fake/faults", clear_faults),
        web.get("/_fake/limits", get_limits, allow_head=False),
        web.put("/_fake/limits", set_limits),
    ]


def not_found_middleware(body: Callable[[web.Request], dict[str, Any]]) -> Middleware:
    """Answer unmatched paths with the provider's own JSON 404 instead of aiohttp's text page."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.json_response(body(request), status=404)

    return middleware


#: The status a request is recorded with when its caller went away before the fake answered it (nginx's "client
#: closed request"); never a 2xx, so ``sent_messages`` does not count it.
CUT_OFF = 499


def cut_off_middleware(get_fake: FakeGetter, describe: Callable[[web.Request], tuple[str, str] | None]) -> Middleware:
    """Record a provider call whose caller went away before the fake answered it, with status :data:`CUT_OFF`.

    ``describe`` names the call (method, token) or returns None for a request that is no provider call. It only
    sees such requests when the app is served with ``serve(..., cut_off=True)``.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except asyncio.CancelledError:
            call = describe(request)
            if call is not None:
                get_fake(request).record(method=call[0], token=call[1], params={}, status=CUT_OFF)
            raise

    return middleware


@asynccontextmanager
async def serve(
    app: web.Application, *, host: str = "127.0.0.1", port: int = 0, cut_off: bool = False
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (port 0: any free port) and yield its base URL; stop on exit.

    ``cut_off``: a request whose caller goes away is cancelled before the fake answers it, as by a provider that had
    not taken the message yet when the connection broke (recorded by :func:`cut_off_middleware`). Otherwise the fake
    finishes it and takes the message although nobody reads the answer (a provider that took it: the sender cannot
    know).
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=cut_off)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        yield f"http://{url_host}:{bound_port}"
    finally:
        await runner.cleanup()
