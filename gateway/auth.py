"""Who is calling: a bearer token (API) or the session cookie (staff web app), checked against staff sessions."""

from __future__ import annotations

from aiohttp import web

from booking_core.domain.actors import Actor
from booking_core.services import auth as auth_service
from gateway.errors import ApiError
from gateway.keys import SESSIONMAKER, SETTINGS

COOKIE = "fd_session"
ACTOR_KEY = web.RequestKey("actor", Actor)


def token_from(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.cookies.get(COOKIE) or None


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


def actor_of(request: web.Request) -> Actor:
    actor = request.get(ACTOR_KEY)
    if actor is None:  # only reachable if a route forgot auth=True
        raise ApiError(401, "unauthorized", "Sign in first.")
    return actor
