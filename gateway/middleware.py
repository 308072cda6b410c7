"""Request id, access log, metrics and error rendering for every request."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web

from booking_core.services.errors import ServiceError
from gateway.errors import ApiError
from gateway.keys import METRICS

log = logging.getLogger("frontdesk.http")

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

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
    request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await _guarded(request, handler)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics = request.app.get(METRICS)
        if metrics is not None:
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(route).observe(elapsed)
        log.info("%s %s %s %.1fms", request.method, request.path, status, elapsed * 1000)
        REQUEST_ID.reset(token)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ApiError, ServiceError) as exc:
        return error_response(request, exc.status, exc.code, exc.message, exc.details)
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
