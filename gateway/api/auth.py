"""Sign in with a login code, see who you are, sign out."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from booking_core.services import auth as auth_service
from gateway.api import api
from gateway.auth import (
    UNAVAILABLE,
    actor_of,
    give_back_login_attempt,
    login_failed,
    take_login_attempt,
    token_from,
)
from gateway.client_address import client_address
from gateway.errors import ApiError
from gateway.keys import SESSIONMAKER, SETTINGS
from gateway.limits import retry_after


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
    attempt = await take_login_attempt(request)
    if attempt.wait == UNAVAILABLE:
        raise ApiError(503, "sign_in_unavailable", "Sign-in is unavailable for a moment; try again in a minute.")
    if attempt.wait > 0:
        raise ApiError(429, "too_many_attempts", f"Too many wrong codes; try again in {attempt.wait} seconds.",
                       headers={"Retry-After": retry_after(attempt.wait)})  # fmt: skip
    try:
        async with request.app[SESSIONMAKER]() as db, db.begin():
            token, actor = await auth_service.redeem_login_code(
                db,
                body.code,
                secret=settings.SECRET_KEY,
                user_agent=request.headers.get("User-Agent", ""),
                client_ip=client_address(request),
            )
    except auth_service.AuthError as exc:
        wait = await login_failed(request, attempt)
        if wait:  # over the clinic-wide limit: the code was checked, and it is wrong
            message = f"{exc.message} Many wrong codes are being tried; check yours and try again in {wait} seconds."
            raise ApiError(429, "too_many_attempts", message, headers={"Retry-After": retry_after(wait)}) from None
        raise ApiError(401, exc.code, exc.message) from None
    except BaseException:
        await give_back_login_attempt(request, attempt)  # not judged (an outage): not a wrong code
        raise
    await give_back_login_attempt(request, attempt)
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
