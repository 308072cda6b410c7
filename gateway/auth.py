"""Who is calling: a bearer token (API) or the session cookie (staff web app), checked against staff sessions."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from aiohttp import web
from redis.exceptions import RedisError

from booking_core.domain.actors import Actor
from booking_core.services import auth as auth_service
from gateway import csrf
from gateway.errors import ApiError
from gateway.keys import REDIS, SESSIONMAKER, SETTINGS
from gateway.limits import limit_address

COOKIE = "fd_session"
ACTOR_KEY = web.RequestKey("actor", Actor)

# --- sign-in limits
#
# Codes are 10 characters of a 31-letter alphabet (49.5 bits, uniformly random, so no prefix says anything) and live
# 10 minutes: guessing one is hopeless within these limits. What the limits must never do is keep staff out.
#
# * Per address (IPv6: per /64, see gateway.limits): an attempt takes its place in the address's budget *before* its
#   code is checked (one atomic Lua call: count, then decide), so concurrent guesses cannot all slip under the limit.
#   A right code gives its place back; a wrong one keeps it. Once ADDRESS_FAILURES places are taken, that address is
#   refused (429, even with a right code: otherwise it could go on testing guesses) until its window ends.
# * Clinic-wide: wrong codes are counted for everyone. Above CLINIC_FAILURES per window the code is still checked —
#   a right code always signs in — and a wrong one is answered 429 with Retry-After instead of 401, and logged.

#: Wrong codes one address may try per window (a colleague's successful sign-ins never count).
ADDRESS_FAILURES = 10
ADDRESS_WINDOW = 10 * 60
#: Wrong codes from everyone per window above which wrong codes are answered 429 (right codes still sign in).
CLINIC_FAILURES = 300
CLINIC_WINDOW = 60

#: ``LoginAttempt.wait`` when the counters cannot be reached: sign-in fails closed (signed-in staff carry on).
UNAVAILABLE = -1

log = logging.getLogger(__name__)

# KEYS[1] the address's count. ARGV: limit, window (s). Returns {count after taking a place, 0} or {0, ttl} refused.
_TAKE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return {0, ttl}
end
return {count, 0}
"""
# KEYS[1] the address's count: a right code gives its place back (never below 0, never re-creating an expired key).
_GIVE_BACK = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""
# KEYS[1] the clinic-wide count. ARGV: window (s). Returns {count, ttl}.
_FAILED = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""


@dataclass(frozen=True)
class LoginAttempt:
    """One attempt's place in its address's budget, taken before the code is checked (see ``take_login_attempt``)."""

    address: str
    #: 0: check the code; > 0: refused, seconds until this address may try again; ``UNAVAILABLE``: Redis is away.
    wait: int
    #: The address's count including this attempt (``ADDRESS_FAILURES`` means this is its last try of the window).
    count: int = 0


def _key(request: web.Request, name: str) -> str:
    return f"{request.app[SETTINGS].FRONTDESK_REDIS_PREFIX}:login-failures:{name}"


async def take_login_attempt(request: web.Request) -> LoginAttempt:
    """Count this attempt against the client's address, then decide whether its code may be checked."""
    address = limit_address(request)
    try:
        count, ttl = await request.app[REDIS].eval(  # type: ignore[misc]
            _TAKE, 1, _key(request, f"ip:{address}"), ADDRESS_FAILURES, ADDRESS_WINDOW
        )
    except RedisError:
        return LoginAttempt(address, UNAVAILABLE)
    if int(count) == 0:
        return LoginAttempt(address, int(ttl))
    return LoginAttempt(address, 0, int(count))


async def give_back_login_attempt(request: web.Request, attempt: LoginAttempt) -> None:
    """The code was right (or never judged, e.g. the database was away): the attempt's place goes back."""
    with contextlib.suppress(RedisError):
        await request.app[REDIS].eval(_GIVE_BACK, 1, _key(request, f"ip:{attempt.address}"))  # type: ignore[misc]


async def login_failed(request: web.Request, attempt: LoginAttempt) -> int:
    """The code was wrong: the attempt keeps its place; count it clinic-wide.

    Returns 0 (answer 401), or the seconds until the clinic-wide window ends when it is over its limit (answer 429).
    """
    if attempt.count == ADDRESS_FAILURES:
        log.warning("sign-in: %s tried %d wrong login codes; refused for up to %d s", attempt.address,
                    ADDRESS_FAILURES, ADDRESS_WINDOW)  # fmt: skip
    try:
        count, ttl = await request.app[REDIS].eval(_FAILED, 1, _key(request, "all"), CLINIC_WINDOW)  # type: ignore[misc]
    except RedisError:
        return 0
    if int(count) == CLINIC_FAILURES + 1:
        log.warning("sign-in: more than %d wrong login codes in %d s from all addresses; wrong codes now get 429",
                    CLINIC_FAILURES, CLINIC_WINDOW)  # fmt: skip
    return max(1, int(ttl)) if int(count) > CLINIC_FAILURES else 0


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """The staff web app's session: HttpOnly (no script reads it), SameSite=Strict (no cross-site sends)."""
    response.set_cookie(
        COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="Strict",
        max_age=int(auth_service.SESSION_TTL.total_seconds()),
        secure=request.app[SETTINGS].PUBLIC_BASE_URL.startswith("https://"),
    )


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return (header[7:].strip() or None) if header[:7].lower() == "bearer " else None


def token_from(request: web.Request) -> str | None:
    return _bearer(request) or request.cookies.get(COOKIE) or None


async def current_actor(request: web.Request) -> Actor | None:
    cached = request.get(ACTOR_KEY)
    if cached is not None:
        return cached
    token = token_from(request)
    if token is None or len(token) > 200:
        return None
    async with request.app[SESSIONMAKER]() as db:
        actor = await auth_service.authenticate(db, token, secret=request.app[SETTINGS].SECRET_KEY)
    if actor is not None:
        request[ACTOR_KEY] = actor
    return actor


async def require_staff(request: web.Request, roles: frozenset[str]) -> None:
    """The API's authenticator: 401 without a valid session, 403 for a role that may not do this."""
    actor = await current_actor(request)
    if actor is None:
        raise ApiError(401, "unauthorized", "Sign in with a login code first (POST /api/v1/auth/login).")
    if actor.role not in roles:
        raise ApiError(403, "forbidden", f"A {actor.role} may not do this.")
    # Signed in by the staff app's cookie (not a bearer token): the page's fetch must prove it came from our page.
    cookie_post = request.method not in csrf.SAFE_METHODS and not _bearer(request)
    if cookie_post and not csrf.STAFF.ok(request, request.headers.get(csrf.HEADER)):
        raise ApiError(403, "csrf_failed", "Missing or stale X-CSRF-Token header; reload the page.")


def actor_of(request: web.Request) -> Actor:
    actor = request.get(ACTOR_KEY)
    if actor is None:  # only reachable if a route forgot auth=True
        raise ApiError(401, "unauthorized", "Sign in first.")
    return actor
