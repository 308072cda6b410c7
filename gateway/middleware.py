"""Request id, access log, metrics, error rendering and security headers for every request.

Security headers (``security_headers``, run as every response is prepared, redirects and streams included):

* HTML pages get a Content-Security-Policy: scripts only from our origin or inline with this response's nonce
  (templates write ``<script nonce="{{ csp_nonce }}">``; inline event handlers are not allowed), styles from our
  origin and inline (``'unsafe-inline'``, deliberately: pages and the chat widget's shadow DOM use style attributes
  and <style> blocks, and styles cannot run code), images from our origin, ``data:`` and ``blob:``, connections to
  our origin (the staff app's fetch and event stream, the chat widget's websocket), forms posting only to us, and
  ``frame-ancestors 'none'`` (with ``X-Frame-Options: DENY`` for older browsers): no page is ever framed. The chat
  widget is embedded by its script, which builds its window in the host page; it frames nothing of ours.
* Other responses get ``default-src 'none'; frame-ancestors 'none'`` (a JSON answer opened as a page runs nothing).
* Every 429 carries ``Retry-After`` (the limit's own figure; 60 s if it gave none).
* Every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` (pages that set a stricter
  one keep it), ``Strict-Transport-Security`` when ``PUBLIC_BASE_URL`` is https, and ``Server: Frontdesk`` (no
  versions). A page that sets its own CSP or X-Frame-Options (the patient's confirmation page) keeps its own.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from booking_core.db.engine import DATABASE_AWAY
from booking_core.services.errors import ServiceError
from gateway.errors import ApiError
from gateway.keys import METRICS
from infra.settings import Settings

log = logging.getLogger("frontdesk.http")

#: Where a response's CSP nonce is kept once a template asked for it (see ``CspNonce``).
_PAGE_REQUEST: contextvars.ContextVar[web.Request | None] = contextvars.ContextVar("page_request", default=None)
CSP_NONCE_KEY: web.RequestKey[str] = web.RequestKey("csp_nonce", str)
SERVER = "Frontdesk"
HSTS = "max-age=31536000"
#: Responses that are not HTML pages run nothing and are framed by nobody.
NOT_A_PAGE_CSP = "default-src 'none'; frame-ancestors 'none'"
#: ``Retry-After`` for a 429 whose limit did not set its own (every limit of ours does; this is the safety net).
DEFAULT_RETRY_AFTER = "60"

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
    page = _PAGE_REQUEST.set(request)  # for {{ csp_nonce }} in the templates this request renders
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
        _PAGE_REQUEST.reset(page)


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
    except DATABASE_AWAY as exc:  # restarting, crashed, a cut connection: a moment's wait, not our bug
        log.warning("%s %s: the database is away (%s); answered 503", request.method, request.path, exc)
        unavailable = error_response(
            request, 503, "unavailable", "The database is not reachable right now; please try again in a moment."
        )
        unavailable.headers["Retry-After"] = "5"
        return unavailable
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal_error", "Something went wrong on our side; it has been logged.")


class CspNonce:
    """``{{ csp_nonce }}``: the script nonce of the response being rendered, drawn (with :mod:`secrets`) the first
    time a template prints it. Most responses (webhooks, the API) render no template and never pay for the draw."""

    __slots__ = ()

    def __str__(self) -> str:
        request = _PAGE_REQUEST.get()
        if request is None:
            raise RuntimeError("{{ csp_nonce }} is only known while a request is being answered")
        nonce = request.get(CSP_NONCE_KEY)
        if nonce is None:
            nonce = request[CSP_NONCE_KEY] = secrets.token_urlsafe(18)
        return nonce

    def __html__(self) -> str:
        return str(self)


def page_csp(settings: Settings) -> str:
    """The CSP of an HTML page, with ``{nonce}`` left to fill in (see the module docstring)."""
    base = urlsplit(settings.PUBLIC_BASE_URL)
    socket = f"{'wss' if base.scheme == 'https' else 'ws'}://{base.netloc}"
    return (
        "default-src 'self'; script-src 'self'{nonce}; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' {socket}; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def install_security_headers(app: web.Application, settings: Settings) -> None:
    """Put the security headers on every response of ``app`` and give its templates ``{{ csp_nonce }}``."""
    aiohttp_jinja2.get_env(app).globals["csp_nonce"] = CspNonce()
    app.on_response_prepare.append(security_headers(settings))


def security_headers(settings: Settings) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """The ``on_response_prepare`` hook that puts the security headers on every response."""
    page = page_csp(settings)
    page_without_nonce = page.format(nonce="")
    hsts = settings.PUBLIC_BASE_URL.startswith("https://")

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers["Server"] = SERVER
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if hsts:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if response.status == 429:  # a limit that forgot to say when: clients still get a time to back off
            headers.setdefault("Retry-After", DEFAULT_RETRY_AFTER)
        if response.content_type == "text/html":
            nonce = request.get(CSP_NONCE_KEY)
            csp = page.format(nonce=f" 'nonce-{nonce}'") if nonce else page_without_nonce
            headers.setdefault("Content-Security-Policy", csp)
            headers.setdefault("X-Frame-Options", "DENY")
        else:
            headers.setdefault("Content-Security-Policy", NOT_A_PAGE_CSP)

    return on_prepare
