"""Double-submit CSRF protection: a random value in an HttpOnly cookie, and the same value signed in each form.

A forged cross-site post carries neither the cookie (SameSite) nor a token signed with our secret that matches it;
a token lifted from another browser does not match this browser's cookie.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from gateway.keys import SETTINGS

#: Where a token may arrive: a form field, or (for fetch/XHR) a header.
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Csrf:
    cookie: str
    salt: str
    path: str = "/"
    max_age: int = 12 * 3600
    samesite: str = "Lax"

    def _serializer(self, request: web.Request) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(request.app[SETTINGS].SECRET_KEY, salt=self.salt)

    def _cookie_value(self, request: web.Request) -> str | None:
        value = request.cookies.get(self.cookie, "")
        return value if 20 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum() else None

    def token(self, request: web.Request) -> tuple[str, str | None]:
        """The token for this browser's forms, and a new cookie value to set when it has none yet."""
        existing = self._cookie_value(request)
        value = existing or secrets.token_urlsafe(24)
        return self._serializer(request).dumps(value), (None if existing else value)

    def ok(self, request: web.Request, submitted: object) -> bool:
        cookie = self._cookie_value(request)
        if cookie is None or not isinstance(submitted, str) or len(submitted) > 200:
            return False
        try:
            signed = self._serializer(request).loads(submitted, max_age=self.max_age)
        except BadSignature:
            return False
        return isinstance(signed, str) and hmac.compare_digest(signed, cookie)

    def set_cookie(self, request: web.Request, response: web.StreamResponse, value: str) -> None:
        response.set_cookie(
            self.cookie,
            value,
            path=self.path,
            httponly=True,
            samesite=self.samesite,
            secure=request.app[SETTINGS].PUBLIC_BASE_URL.startswith("https://"),
        )


#: The staff web app's forms and its fetch calls to /api/v1 (when signed in by cookie rather than bearer token).
STAFF = Csrf(cookie="fd_csrf", salt="frontdesk.staff.csrf", samesite="Strict")
