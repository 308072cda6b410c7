"""Request id, access log, metrics and error rendering for every request."""

from __future__ import annotations

import contextvars
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web

from booking_core.services.errors import ServiceError
from gateway.errors import ApiError
from gateway.keys import METRICS

log = logging.getLogger("frontdesk.http")

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Request ids only need to be unique, not secret: a random per-process prefix and a counter (32 hex digits, like a
# uuid4) cost no system call per request.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count()

#: Paths where providers deliver (Telegram, Twilio): high volume, already counted per outcome.
PROVIDER_PATHS = ("/webhooks/",)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTTP_MESSAGES = {
    400: ("bad_request", "The request could not be read."),
    401: ("unauthorized", "Sign in first."),
    403: ("forbidden", "You are not allowed to do that."),
    404: ("not_found", "There is nothing here."),
    405: ("method_not_allowed", "That method is not allowed here."),
    413: ("too_large", "The request is too large."),
    429: ("rate_limited", "Too many requests; try again in a moment."),
}


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every log record so one request can be followed through the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def error_response(request: web.Request, status: int, code: str, message: str, details: object = None) -> web.Response:
    if is_api(request) or "application/json" in request.headers.get("Accept", ""):
        error: dict[str, object] = {"code": code, "message": message}
        if details is not None:
            error["details"] = details
        return web.json_response({"error": error}, status=status)
    try:
        response = aiohttp_jinja2.render_template(
            "error.html", request, {"status": status, "code": code, "message": message}, status=status
        )
    except Exception:  # the error page itself must never fail
        response = web.Response(text=f"{status}: {message}", status=status, content_type="text/plain")
    return response


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if incoming and _REQUEST_ID_OK.match(incoming) else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await _guarded(request, handler)
        except web.HTTPException as redirect:  # a redirect raised by a page: log its status, not a 500
            status = redirect.status
            raise
        status = response.status
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics = request.app.get(METRICS)
        if metrics is not None:
            metrics.observe_request(request.method, route, status, elapsed)
        # Providers' webhooks answered 2xx arrive by the thousand and are counted in the metrics above; their access
        # lines are DEBUG. Every other request, and every refused or failed webhook, is logged at INFO.
        level = logging.DEBUG if status < 400 and request.path.startswith(PROVIDER_PATHS) else logging.INFO
        log.log(level, "%s %s %s %.1fms", request.method, request.path, status, elapsed * 1000)
        REQUEST_ID.reset(token)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ApiError, ServiceError) as exc:
        refusal = error_response(request, exc.status, exc.code, exc.message, exc.details)
        refusal.headers.update(getattr(exc, "headers", None) or {})
        return refusal
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = HTTP_MESSAGES.get(exc.status, ("http_error", exc.reason))
        if exc.status == 413:
            message = "The request body is too large."
        response = error_response(request, exc.status, code, message)
        for header in ("Retry-After", "Allow", "WWW-Authenticate"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal_error", "Something went wrong on our side; it has been logged.")
