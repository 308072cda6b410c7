"""Staff sign in to the web app with a one-time code (typed or from the QR), and nothing else gets them in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from booking_core.db.tables import Lead, StaffSession
from booking_core.domain.actors import SYSTEM
from booking_core.services import auth
from devtools import harness
from devtools.builders import Clinic, build_clinic, unique
from gateway.app import create_app
from infra.settings import Settings
from tests.conftest import TEST_SECRET
from tests.integration.staff_pages import csrf_of, new_code, sign_in_page


async def test_a_staff_page_sends_a_stranger_to_sign_in_and_back(client: TestClient[object, object]) -> None:
    response = await client.get("/inbox/staff?tab=1", allow_redirects=False)
    assert response.status == 303
    target = URL(response.headers["Location"])
    assert target.path == "/login" and target.query["next"] == "/inbox/staff?tab=1"


async def test_typing_a_code_signs_in_with_an_httponly_strict_cookie(
    client: TestClient[object, object], db: AsyncSession
) -> None:
    code = await new_code(db, "owner")
    page = await client.get("/login?next=/inbox/staff")
    html = await page.text()
    assert 'autocomplete="one-time-code"' in html
    response = await client.post(
        "/login",
        data={"code": code.lower(), "csrf_token": csrf_of(html), "next": "/inbox/staff"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/inbox/staff"
    cookie = response.cookies["fd_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    staff_page = await client.get("/inbox/staff")
    assert staff_page.status == 200
    assert "Staff &amp; login codes" in await staff_page.text()


async def test_a_scanned_qr_only_fills_in_the_code(client: TestClient[object, object], db: AsyncSession) -> None:
    code = await new_code(db)
    page = await client.get(f"/login?code={code}")  # what a phone's camera app opens
    assert f'value="{code}"' in await page.text()
    # A link preview fetching the URL did not use the code up: it still signs in.
    response = await client.post(
        "/login", data={"code": code, "csrf_token": csrf_of(await page.text())}, allow_redirects=False
    )
    assert response.status == 303


async def test_a_used_expired_or_forged_code_is_refused_with_a_clear_message(
    client: TestClient[object, object], db: AsyncSession
) -> None:
    used = await new_code(db)
    await sign_in_page(client, db)  # a different code; now sign out this client to try others
    client.session.cookie_jar.clear()
    token = csrf_of(await (await client.get("/login")).text())
    assert (await client.post("/login", data={"code": used, "csrf_token": token}, allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    token = csrf_of(await (await client.get("/login")).text())
    again = await client.post("/login", data={"code": used, "csrf_token": token}, allow_redirects=False)
    assert again.status == 401
    assert "Codes work once and expire" in await again.text()
    expired = await auth.issue_login_code(
        db, secret=TEST_SECRET, role="staff", name=unique("late"), created_by=SYSTEM, ttl=timedelta(seconds=-1)
    )
    await db.commit()
    for forged in (expired.code, "ZZZZZ-ZZZZZ", "<script>alert(1)</script>"):
        response = await client.post("/login", data={"code": forged, "csrf_token": token}, allow_redirects=False)
        assert response.status == 401
        assert "<script>alert(1)</script>" not in await response.text()
    assert "fd_session" not in {c.key for c in client.session.cookie_jar}


async def test_a_login_post_without_the_pages_token_uses_nothing_up(
    client: TestClient[object, object], db: AsyncSession
) -> None:
    code = await new_code(db)
    forged = await client.post("/login", data={"code": code, "csrf_token": "x"}, allow_redirects=False)
    assert forged.status == 403
    token = csrf_of(await (await client.get("/login")).text())
    assert (await client.post("/login", data={"code": code, "csrf_token": token}, allow_redirects=False)).status == 303


@pytest.fixture
async def own_limits_client(settings: Settings) -> AsyncIterator[TestClient[object, object]]:
    """A client whose failure counters live under their own Redis prefix (the limits are per address)."""
    app = create_app(settings.model_copy(update={"FRONTDESK_REDIS_PREFIX": unique("limits")}))
    async with TestClient(TestServer(app)) as http:
        yield http


async def test_guessing_codes_is_stopped_after_ten_failures_even_with_the_right_one(
    own_limits_client: TestClient[object, object], db: AsyncSession
) -> None:
    client = own_limits_client
    token = csrf_of(await (await client.get("/login")).text())
    for _ in range(10):
        wrong = await client.post("/login", data={"code": "ABCDE-FGHJK", "csrf_token": token}, allow_redirects=False)
        assert wrong.status == 401
    right = await new_code(db)
    blocked = await client.post("/login", data={"code": right, "csrf_token": token}, allow_redirects=False)
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) > 0
    api = await client.post("/api/v1/auth/login", json={"code": right})
    assert api.status == 429
    assert (await api.json())["error"]["code"] == "too_many_attempts"


async def test_signing_out_revokes_the_session(client: TestClient[object, object], db: AsyncSession) -> None:
    token = await sign_in_page(client, db, "admin")
    session_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["fd_session"].value
    response = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    # The old cookie, replayed, is dead.
    replay = await client.get("/inbox/staff", cookies={"fd_session": session_cookie}, allow_redirects=False)
    assert replay.status == 303
    revoked = (await db.execute(select(StaffSession).where(StaffSession.revoked_at.is_not(None)))).scalars().all()
    assert revoked


async def test_the_api_called_from_a_page_needs_the_pages_csrf_token(
    client: TestClient[object, object], db: AsyncSession
) -> None:
    token = await sign_in_page(client, db, "owner")
    without = await client.post("/api/v1/auth/logout")
    assert without.status == 403
    assert (await without.json())["error"]["code"] == "csrf_failed"
    assert (await client.get("/api/v1/auth/me")).status == 200  # reading needs no token
    with_token = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": token})
    assert with_token.status == 200


async def test_an_owner_creates_a_login_code_shown_once_as_qr_and_text(
    client: TestClient[object, object], db: AsyncSession, settings: Settings
) -> None:
    token = await sign_in_page(client, db, "owner")
    page = await client.post("/inbox/staff/codes", data={"csrf_token": token, "name": "Rina", "role": "staff"})
    html = await page.text()
    assert page.status == 200
    assert "Login Code for Clinic App" in html and "<svg" in html
    code = html.split('id="issued-code">', 1)[1].split("<", 1)[0]
    async with TestClient(TestServer(create_app(settings))) as other:
        login = await other.post("/api/v1/auth/login", json={"code": code})
        assert login.status == 200 and (await login.json())["role"] == "staff"


async def test_roles_limit_who_creates_which_codes(client: TestClient[object, object], db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    assert (await client.get("/inbox/staff")).status == 403
    refused = await client.post("/inbox/staff/codes", data={"csrf_token": token, "name": "x", "role": "owner"})
    assert refused.status == 403
    client.session.cookie_jar.clear()
    token = await sign_in_page(client, db, "admin")
    response = await client.post("/inbox/staff/codes", data={"csrf_token": token, "name": "Boss", "role": "owner"})
    assert "Only an owner may create" in await response.text()


async def test_an_owner_signs_a_lost_phone_out_everywhere(
    client: TestClient[object, object], db: AsyncSession, settings: Settings
) -> None:
    async with TestClient(TestServer(create_app(settings))) as phone:
        await sign_in_page(phone, db, "staff")
        assert (await phone.get("/api/v1/auth/me")).status == 200
        me = await (await phone.get("/api/v1/auth/me")).json()
        token = await sign_in_page(client, db, "owner")
        page = await client.get("/inbox/staff")
        assert f"/inbox/staff/{me['id']}/sign-out" in await page.text()
        done = await client.post(f"/inbox/staff/{me['id']}/sign-out", data={"csrf_token": token})
        assert "Signed out of 1 device" in await done.text()
        assert (await phone.get("/api/v1/auth/me")).status == 401


async def _next_change(response: object, table: str) -> dict[str, object]:
    content = response.content  # type: ignore[attr-defined]
    event = ""
    while True:
        line = (await content.readline()).decode()
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "change":
            change = json.loads(line.split(":", 1)[1])
            if change["table"] == table:
                return change  # type: ignore[no-any-return]


async def test_an_open_page_hears_of_a_new_lead_from_its_branch_only(
    client: TestClient[object, object], db: AsyncSession
) -> None:
    here: Clinic = await build_clinic(db)
    elsewhere: Clinic = await build_clinic(db)
    await sign_in_page(client, db, "staff", branch_id=here.branch.id)
    stream = await client.get("/inbox/events", headers={"Accept": "text/event-stream"})
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert (await stream.content.readline()).startswith(b"retry:")
    db.add(Lead(channel="webform", branch_id=elsewhere.branch.id, contact_name="Other branch"))
    await db.commit()
    mine = Lead(channel="telegram", branch_id=here.branch.id, contact_name="Ours")
    db.add(mine)
    await db.commit()
    change = await asyncio.wait_for(_next_change(stream, "leads"), 20)
    assert change == {"table": "leads", "op": "insert", "id": mine.id, "branch_id": here.branch.id}
    stream.close()


async def test_the_event_stream_needs_a_signed_in_staff_member(client: TestClient[object, object]) -> None:
    response = await client.get("/inbox/events", headers={"Accept": "text/event-stream"}, allow_redirects=False)
    assert response.status == 401


async def test_with_redis_down_sign_in_is_refused_clearly_and_keeps_the_code(
    settings: Settings, db: AsyncSession
) -> None:
    nowhere = settings.model_copy(update={"REDIS_URL": f"redis://127.0.0.1:{harness.free_port()}/0"})
    code = await new_code(db)
    async with TestClient(TestServer(create_app(nowhere))) as client:
        token = csrf_of(await (await client.get("/login")).text())
        page = await client.post("/login", data={"code": code, "csrf_token": token}, allow_redirects=False)
        assert page.status == 503
        assert "Sign-in is unavailable for a moment" in await page.text()
        api = await client.post("/api/v1/auth/login", json={"code": code})
        assert api.status == 503 and (await api.json())["error"]["code"] == "sign_in_unavailable"
    async with TestClient(TestServer(create_app(settings))) as client:  # Redis back: the code still works
        assert (await client.post("/api/v1/auth/login", json={"code": code})).status == 200
