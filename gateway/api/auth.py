"""Sign in with a login code, see who you are, sign out."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from booking_core.services import auth as auth_service
from gateway.api import api
from gateway.auth import UNAVAILABLE, actor_of, login_failed, login_wait, token_from
from gateway.errors import ApiError
from gateway.keys import SESSIONMAKER, SETTINGS


class LoginRequest(BaseModel):
    code: str = Field(min_length=1, max_length=40, description="The one-time login code, with or without the dash")


class LoginResponse(BaseModel):
    token: str
    role: str


class Me(BaseModel):
    id: int | None
    name: str
    role: str | None
    branch_id: int | None


class Ok(BaseModel):
    ok: bool = True


@api.route("POST", "/auth/login", summary="Exchange a one-time login code for a bearer token", tag="auth",
           body=LoginRequest, response=LoginResponse, auth=False, errors=(401, 429))  # fmt: skip
async def login(request: web.Request, body: LoginRequest) -> LoginResponse:
    settings = request.app[SETTINGS]
    wait = await login_wait(request)
    if wait == UNAVAILABLE:
        raise ApiError(503, "sign_in_unavailable", "Sign-in is unavailable for a moment; try again in a minute.")
    if wait > 0:
        raise ApiError(429, "too_many_attempts", f"Too many sign-in attempts; try again in {wait} seconds.")
    async with request.app[SESSIONMAKER]() as db, db.begin():
        try:
            token, actor = await auth_service.redeem_login_code(
                db,
                body.code,
                secret=settings.SECRET_KEY,
                user_agent=request.headers.get("User-Agent", ""),
                client_ip=request.remote,
            )
        except auth_service.AuthError as exc:
            await login_failed(request)
            raise ApiError(401, exc.code, exc.message) from None
    return LoginResponse(token=token, role=actor.role or "")


@api.route("GET", "/auth/me", summary="The signed-in staff member", tag="auth", response=Me)
async def me(request: web.Request) -> Me:
    actor = actor_of(request)
    return Me(id=actor.id, name=actor.name, role=actor.role, branch_id=actor.branch_id)


@api.route("POST", "/auth/logout", summary="Revoke this session token", tag="auth", response=Ok)
async def logout(request: web.Request) -> Ok:
    token = token_from(request)
    assert token is not None  # authenticated, so present
    async with request.app[SESSIONMAKER]() as db, db.begin():
        await auth_service.revoke(db, token, secret=request.app[SETTINGS].SECRET_KEY, actor=actor_of(request))
    return Ok()
