"""What every staff page shares: sign-in and role checks, CSRF on every post, the layout's context, notices.

A page handler is declared with ``@staff_page(roles)`` and receives ``(request, actor)``; it renders with
``render(...)`` or answers a post with ``back(...)`` (post/redirect/get with a one-shot notice). Services' refusals
(``ServiceError``) raised from a post become a notice on the page the post came from, never a 500.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer

from booking_core.domain.actors import FRONT_DESK, ROLES, Actor
from booking_core.services.auth import AuthError
from booking_core.services.errors import ServiceError
from gateway import csrf
from gateway.auth import current_actor
from gateway.forms import posted_form
from gateway.keys import SETTINGS

PageHandler = Callable[[web.Request, Actor], Awaitable[web.StreamResponse]]
View = Callable[[web.Request], Awaitable[web.StreamResponse]]
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ALL = frozenset(ROLES)
MANAGERS = frozenset({"owner", "admin"})
DESK = FRONT_DESK  # the inbox, conversations, bookings: the same rule as the API's (a doctor is refused both)
NOTICE_COOKIE = "fd_notice"


#: The navigation: (path, label, roles that see it). Pages outside it (lead detail, session page) hang off these.
NAV: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("/inbox", "Inbox", DESK),
    ("/inbox/appointments", "Appointments", DESK),
    ("/inbox/queue", "Queue", ALL),
    ("/inbox/scanner", "Scanner", DESK),
    ("/inbox/calendar", "Calendar", ALL),
    ("/inbox/settings", "Settings", MANAGERS),
    ("/inbox/staff", "Staff & login codes", MANAGERS),
)


def _notices(request: web.Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app[SETTINGS].SECRET_KEY, salt="frontdesk.staff.notice")


def safe_next(target: str | None, default: str = "/inbox") -> str:
    """A same-site path to go back to (never an absolute URL or ``//host``: no open redirect)."""
    if not target or len(target) > 500:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return default
    return target


def back(request: web.Request, to: str | None = None, *, notice: str = "", error: str = "") -> web.Response:
    """Redirect after a post (to ``to``, else the page the form came from, else the inbox) with a one-shot notice."""
    referer = request.headers.get("Referer", "")
    came_from = urlsplit(referer)._replace(scheme="", netloc="").geturl() if referer else ""
    # A plain 303 response (returned, not raised: handlers return it like any page).
    response = web.Response(status=303, headers={"Location": safe_next(to or came_from)})
    if notice or error:
        value = _notices(request).dumps({"notice": notice[:300], "error": error[:300]})
        response.set_cookie(NOTICE_COOKIE, value, path="/", httponly=True, samesite="Strict", max_age=60)
    return response


def _take_notice(request: web.Request) -> dict[str, str]:
    raw = request.cookies.get(NOTICE_COOKIE)
    if not raw:
        return {}
    try:
        value = _notices(request).loads(raw)
    except BadSignature:
        return {}
    return {k: str(v) for k, v in value.items() if v} if isinstance(value, dict) else {}


def _current_nav(path: str) -> str:
    """The nav entry a page belongs to: the longest nav path that is the page's path or a parent of it."""
    owners = [p for p, _label, _roles in NAV if path == p or path.startswith(p + "/")]
    return max(owners, key=len, default=path)


def render(
    request: web.Request,
    actor: Actor,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    title: str = "",
) -> web.StreamResponse:
    """Render a staff page inside the layout: nav for this role, CSRF token, notice of the last post."""
    token, new_cookie = csrf.STAFF.token(request)
    notice = _take_notice(request)
    base = {
        "actor": actor,
        "csrf_token": token,
        "nav": [(path, label) for path, label, roles in NAV if actor.role in roles],
        "current_path": _current_nav(request.path),
        "notice": notice.get("notice", ""),
        "error": notice.get("error", ""),
        "title": title,
        "lang": "en",
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    if new_cookie is not None:
        csrf.STAFF.set_cookie(request, response, new_cookie)
    if notice or NOTICE_COOKIE in request.cookies:
        response.del_cookie(NOTICE_COOKIE, path="/")
    return private(response)


def private(response: web.StreamResponse) -> web.StreamResponse:
    """Staff pages carry patients' data: never cached, never framed, no referrer leaks."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def message_page(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template(
        "error.html", request, {"status": status, "code": code, "message": message, "lang": "en"}, status=status
    )
    return private(response)


async def form_of(request: web.Request) -> dict[str, str]:
    """The posted form's text fields (files are ignored), storable: see :func:`gateway.forms.posted_form`."""
    return await posted_form(request)


def staff_page(roles: Iterable[str] = ALL, *, refused_to: str | None = None) -> Callable[[PageHandler], View]:
    """Sign-in (redirect to /login), role (403 page) and, for posts, CSRF (403 page, nothing done) for a page.

    A post refused by a service goes back to the page it came from (Referer), else to ``refused_to``, with the
    refusal as the notice.
    """
    allowed = frozenset(roles)

    def wrap(handler: PageHandler) -> View:
        @functools.wraps(handler)
        async def view(request: web.Request) -> web.StreamResponse:
            actor = await current_actor(request)
            if actor is None:
                if request.method in csrf.SAFE_METHODS and "text/event-stream" not in request.headers.get("Accept", ""):
                    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
                return message_page(request, 401, "unauthorized", "Your session has ended. Sign in again.")
            if actor.role not in allowed:
                return message_page(request, 403, "forbidden", f"A {actor.role} may not open this page.")
            if request.method not in csrf.SAFE_METHODS:
                submitted = request.headers.get(csrf.HEADER)
                if submitted is None and request.content_type in FORM_TYPES:
                    submitted = (await form_of(request)).get(csrf.FIELD)
                if not csrf.STAFF.ok(request, submitted):
                    return message_page(
                        request, 403, "csrf_failed", "This page has expired or the form was not sent from it. "
                        "Reload the page and try again."
                    )  # fmt: skip
                try:
                    return await handler(request, actor)
                except (ServiceError, AuthError) as exc:
                    return back(request, refused_to, error=exc.message)
            try:
                return await handler(request, actor)
            except ServiceError as exc:  # e.g. another branch's id in the URL: the same 404 as an unknown one
                return message_page(request, exc.status, exc.code, exc.message)

        return view

    return wrap
