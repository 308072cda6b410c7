"""Who is calling: a bearer token (API) or the session cookie (staff web app), checked against staff sessions."""

from __future__ import annotations

import contextlib

from aiohttp import web
from redis.exceptions import RedisError

from booking_core.domain.actors import Actor
from booking_core.services import auth as auth_service
from gateway import csrf
from gateway.errors import ApiError
from gateway.keys import REDIS, SESSIONMAKER, SETTINGS

COOKIE = "fd_session"
ACTOR_KEY = web.RequestKey("actor", Actor)
#: Failed sign-in attempts allowed per client address, and for the whole clinic (a distributed guesser), per window.
#: Codes are 10 characters of a 31-letter alphabet and live 10 minutes, so guessing is hopeless within these limits,
#: while staff who mistype are never locked out by a colleague's successful sign-ins (only failures count).
LOGIN_FAILURES = {"client": (10, 10 * 60), "all": (300, 60)}


def _failure_keys(request: web.Request) -> dict[str, str]:
    prefix = request.app[SETTINGS].FRONTDESK_REDIS_PREFIX
    return {
        "client": f"{prefix}:login-failures:ip:{request.remote or 'unknown'}",
        "all": f"{prefix}:login-failures:all",
    }


#: ``login_wait`` when the attempt counters cannot be read: sign-in fails closed (already signed-in staff carry on).
UNAVAILABLE = -1


async def login_wait(request: web.Request) -> int:
    """Seconds until this client may try a login code again (0: go ahead; ``UNAVAILABLE``: Redis is down)."""
    redis = request.app[REDIS]
    wait = 0
    try:
        for scope, key in _failure_keys(request).items():
            limit, _window = LOGIN_FAILURES[scope]
            count = await redis.get(key)
            if count is not None and int(count) >= limit:
                wait = max(wait, int(await redis.ttl(key)), 1)
    except RedisError:
        return UNAVAILABLE
    return wait


async def login_failed(request: web.Request) -> None:
    """Count a refused code against this client and the clinic-wide budget."""
    with contextlib.suppress(RedisError):
        await _count_failure(request)


async def _count_failure(request: web.Request) -> None:
    async with request.app[REDIS].pipeline(transaction=False) as pipe:
        keys = _failure_keys(request)
        for key in keys.values():
            pipe.incr(key)
        counts = await pipe.execute()
        for (scope, key), count in zip(keys.items(), counts, strict=True):
            if int(count) == 1:
                pipe.expire(key, LOGIN_FAILURES[scope][1])
        await pipe.execute()


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
