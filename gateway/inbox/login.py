"""Signing in and out of the staff app, and the owner's "Login Code for Clinic App" with its QR.

``/login`` takes a typed code or one scanned from the QR (camera); ``POST /logout`` ends this device's session;
``/inbox/staff`` lets owners and admins create login codes (shown once, as QR and text) and sign a staff member out
on every device. A code names the one staff record it signs in: a new member (name, role, branch) or an existing one
picked from the list; the service refuses codes above the creator's role or outside their branch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import aiohttp_jinja2
import segno
from aiohttp import web

from booking_core.domain.actors import ROLES, Actor
from booking_core.services import auth as auth_service
from booking_core.services import catalog
from gateway import csrf
from gateway.auth import (
    COOKIE,
    UNAVAILABLE,
    current_actor,
    give_back_login_attempt,
    login_failed,
    set_session_cookie,
    take_login_attempt,
    token_from,
)
from gateway.client_address import client_address
from gateway.inbox.web import MANAGERS, back, form_of, message_page, private, render, safe_next, staff_page
from gateway.keys import SESSIONMAKER, SETTINGS
from gateway.limits import retry_after


def _login_page(request: web.Request, *, code: str = "", error: str = "", status: int = 200) -> web.StreamResponse:
    token, new_cookie = csrf.STAFF.token(request)
    context = {
        "lang": "en",
        "csrf_token": token,
        "code": code[:40],
        "error": error,
        "next": safe_next(request.query.get("next")),
    }
    response = aiohttp_jinja2.render_template("inbox/login.html", request, context, status=status)
    if new_cookie is not None:
        csrf.STAFF.set_cookie(request, response, new_cookie)
    return private(response)


async def show_login(request: web.Request) -> web.StreamResponse:
    if await current_actor(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    # A scanned QR opens /login?code=...: the code is filled in, never used until the person presses Sign in
    # (link previews and prefetchers must not burn a one-time code).
    return _login_page(request, code=request.query.get("code", ""))


async def submit_login(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    code = form.get("code", "")
    if not csrf.STAFF.ok(request, form.get(csrf.FIELD)):
        return _login_page(request, code=code, error="This page has expired. Please try again.", status=403)
    attempt = await take_login_attempt(request)
    if attempt.wait == UNAVAILABLE:
        return _login_page(request, code=code, error="Sign-in is unavailable for a moment; try again in a minute.",
                           status=503)  # fmt: skip
    if attempt.wait > 0:
        response = _login_page(
            request, error=f"Too many attempts. Wait {attempt.wait // 60 + 1} minutes and try again.", status=429
        )
        response.headers["Retry-After"] = retry_after(attempt.wait)
        return response
    settings = request.app[SETTINGS]
    try:
        async with request.app[SESSIONMAKER]() as db, db.begin():
            token, _actor = await auth_service.redeem_login_code(
                db, code, secret=settings.SECRET_KEY,
                user_agent=request.headers.get("User-Agent", ""), client_ip=client_address(request),
            )  # fmt: skip
    except auth_service.AuthError as exc:
        wait = await login_failed(request, attempt)
        if wait:  # over the clinic-wide limit: the code was checked, and it is wrong
            error = f"{exc.message} Many wrong codes are being tried; check yours and try again in a minute."
            response = _login_page(request, code=code, error=error, status=429)
            response.headers["Retry-After"] = retry_after(wait)
            return response
        return _login_page(request, code=code, error=exc.message, status=401)
    except BaseException:
        await give_back_login_attempt(request, attempt)  # not judged (an outage): not a wrong code
        raise
    await give_back_login_attempt(request, attempt)
    response = web.HTTPSeeOther(safe_next(form.get("next")))
    set_session_cookie(request, response, token)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    if not csrf.STAFF.ok(request, form.get(csrf.FIELD)):
        return message_page(request, 403, "csrf_failed", "This page has expired. Reload it and sign out again.")
    actor = await current_actor(request)
    token = token_from(request)
    if actor is not None and token is not None:
        async with request.app[SESSIONMAKER]() as db, db.begin():
            await auth_service.revoke(db, token, secret=request.app[SETTINGS].SECRET_KEY, actor=actor)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# --- staff and login codes (owners and admins)


async def _staff_context(request: web.Request, actor: Actor) -> dict[str, object]:
    async with request.app[SESSIONMAKER]() as db:
        members = await auth_service.staff_members(db, actor=actor)
        branches = await catalog.list_branches(db, actor=actor)
    roles = [r for r in ROLES if actor.role == "owner" or r != "owner"]
    return {"members": members, "branches": branches, "roles": roles, "issued": None,
            "branch_names": {b.id: b.name for b in branches}}  # fmt: skip


@staff_page(MANAGERS)
async def staff_list(request: web.Request, actor: Actor) -> web.StreamResponse:
    return render(request, actor, "inbox/staff.html", await _staff_context(request, actor), title="Staff & login codes")


#: Ids from a form are PostgreSQL integers: anything longer is no id of ours (and never reaches the database).
_MAX_ID = 2**31 - 1


def _form_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= _MAX_ID else None


@staff_page(MANAGERS, refused_to="/inbox/staff")
async def create_code(request: web.Request, actor: Actor) -> web.StreamResponse:
    """A code for a new member (name, role, branch) or for one existing member (``staff_id``, from their row)."""
    form = await form_of(request)
    staff_id = _form_id(form.get("staff_id", ""))
    if form.get("staff_id") and staff_id is None:
        return back(request, "/inbox/staff", error="No such staff member.")
    role = form.get("role", "")
    branch_id = _form_id(form.get("branch", ""))
    if actor.branch_id is not None:
        branch_id = actor.branch_id
    async with request.app[SESSIONMAKER]() as db, db.begin():
        if staff_id is not None:  # the member's own role and branch; the service checks them against the actor
            issued = await auth_service.issue_login_code(
                db, secret=request.app[SETTINGS].SECRET_KEY, staff_id=staff_id, created_by=actor
            )
        else:
            issued = await auth_service.issue_login_code(
                db, secret=request.app[SETTINGS].SECRET_KEY, role=role if role in ROLES else "staff",
                name=form.get("name", "")[:120], branch_id=branch_id, created_by=actor,
            )  # fmt: skip
    link = f"{request.app[SETTINGS].PUBLIC_BASE_URL}/login?code={quote(issued.code)}"
    context = await _staff_context(request, actor)
    context["issued"] = {
        "code": issued.code,
        "role": issued.role,
        "name": issued.name,
        "minutes": max(1, int((issued.expires_at - datetime.now(UTC)).total_seconds() // 60)),
        "qr_svg": segno.make(link, error="m").svg_inline(scale=5, dark="#14213d"),
        "link": link,
    }
    # Shown once, on this response only (the code is stored hashed): no redirect that would lose it.
    return render(request, actor, "inbox/staff.html", context, title="Login code created")


@staff_page(MANAGERS, refused_to="/inbox/staff")
async def sign_out_everywhere(request: web.Request, actor: Actor) -> web.StreamResponse:
    staff_id = _form_id(request.match_info["staff_id"])
    if staff_id is None:
        return message_page(request, 404, "not_found", "No such staff member.")
    try:
        async with request.app[SESSIONMAKER]() as db, db.begin():
            count = await auth_service.sign_out_everywhere(db, staff_id, actor=actor)
    except auth_service.AuthError as exc:  # refused outright (an owner's sessions), not a notice to dismiss
        return message_page(request, 403 if exc.code == "forbidden" else 404, exc.code, exc.message)
    return back(request, "/inbox/staff", notice=f"Signed out of {count} device(s).")


def setup(app: web.Application) -> None:
    app.router.add_get("/login", show_login)
    app.router.add_post("/login", submit_login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/inbox/staff", staff_list)
    app.router.add_post("/inbox/staff/codes", create_code)
    app.router.add_post(r"/inbox/staff/{staff_id:\d+}/sign-out", sign_out_everywhere)
