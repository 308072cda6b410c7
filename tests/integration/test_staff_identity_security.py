"""Who a login code signs in, who may mint it, who may sign whom out, what a doctor's token reads, and how long an
open live-update stream outlives its session (issue 11: "no way up", "revocation is immediate")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Lead, Staff, StaffSession
from booking_core.domain.actors import SYSTEM, Actor
from booking_core.services import auth
from devtools.builders import Clinic, add_staff, build_clinic, unique
from gateway.app import create_app
from infra.settings import Settings
from tests.conftest import TEST_SECRET
from tests.integration.staff_pages import csrf_of, new_code, sign_in_page

Client = TestClient[object, object]


@pytest.fixture
def own_settings(settings: Settings) -> Settings:
    """This module's apps count sign-in attempts under their own Redis prefix: the refused codes here must not use
    up the address's budget of other tests (all from 127.0.0.1), nor theirs ours."""
    return settings.model_copy(update={"FRONTDESK_REDIS_PREFIX": unique("identity")})


@pytest.fixture
async def client(own_settings: Settings) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(own_settings))) as http:
        yield http


def _issued_code(html: str) -> str | None:
    if 'id="issued-code">' not in html:
        return None
    return html.split('id="issued-code">', 1)[1].split("<", 1)[0]


async def _who_redeems(client: Client, code: str) -> dict[str, Any]:
    """Redeem ``code`` through the API and ask who that made us."""
    login = await client.post("/api/v1/auth/login", json={"code": code})
    assert login.status == 200, await login.text()
    token = (await login.json())["token"]
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    return await me.json()  # type: ignore[no-any-return]


async def _mint_on_page(client: Client, csrf: str, **fields: str) -> tuple[str | None, str]:
    """Post the staff page's "create a login code" form; the code shown (None: refused) and the page's text."""
    page = await client.post("/inbox/staff/codes", data={"csrf_token": csrf, **fields})
    html = await page.text()
    return _issued_code(html), html


async def _doctor(db: AsyncSession, clinic: Clinic) -> Staff:
    doctor = Staff(name=unique("dr"), role="doctor", branch_id=clinic.branch.id, doctor_id=clinic.doctors["andi"].id)
    db.add(doctor)
    await db.commit()
    return doctor


# --- a code names its staff record; nobody mints above their role or outside their branch


async def test_a_branch_admin_naming_a_clinic_wide_admin_gets_a_new_colleague_not_that_admin(
    client: Client, db: AsyncSession
) -> None:
    here = await build_clinic(db)
    clinic_wide = await add_staff(db, "admin")
    csrf = await sign_in_page(client, db, "admin", branch_id=here.branch.id)
    code, _html = await _mint_on_page(client, csrf, name=clinic_wide.name, role="admin", branch="")
    assert code is not None  # a new admin of their own branch, which a branch admin may create
    me = await _who_redeems(client, code)
    assert me["id"] != clinic_wide.id
    assert me["branch_id"] == here.branch.id and me["role"] == "admin"


async def test_a_branch_admin_cannot_become_someone_of_another_branch(client: Client, db: AsyncSession) -> None:
    here = await build_clinic(db)
    elsewhere = await build_clinic(db)
    their_staff = await add_staff(db, "staff", branch_id=elsewhere.branch.id)
    their_doctor = await _doctor(db, elsewhere)
    csrf = await sign_in_page(client, db, "admin", branch_id=here.branch.id)
    for person in (their_staff, their_doctor):
        by_name, _html = await _mint_on_page(
            client, csrf, name=person.name, role=person.role, branch=str(elsewhere.branch.id)
        )
        assert by_name is not None
        me = await _who_redeems(client, by_name)
        assert me["id"] != person.id and me["branch_id"] == here.branch.id
        by_record, html = await _mint_on_page(client, csrf, staff_id=str(person.id))
        assert by_record is None
        assert "No such staff member" in html
    clinic_wide = await add_staff(db, "staff")
    refused, html = await _mint_on_page(client, csrf, staff_id=str(clinic_wide.id))
    assert refused is None and "No such staff member" in html


async def test_nobody_mints_a_code_above_their_role_or_for_a_peer(db: AsyncSession) -> None:
    here = await build_clinic(db)
    elsewhere = await build_clinic(db)
    branch_admin_row = await add_staff(db, "admin", branch_id=here.branch.id)
    peer_admin = await add_staff(db, "admin", branch_id=here.branch.id)
    clinic_admin_row = await add_staff(db, "admin")
    owner_row = await add_staff(db, "owner")
    other_owner = await add_staff(db, "owner")
    desk = await add_staff(db, "staff", branch_id=here.branch.id)

    def actor(row: Staff) -> Actor:
        return Actor(kind="staff", id=row.id, name=row.name, role=row.role, branch_id=row.branch_id)  # type: ignore[arg-type]

    branch_admin, clinic_admin, owner = actor(branch_admin_row), actor(clinic_admin_row), actor(owner_row)
    # Plain ids: a refused attempt rolls back, which expires the rows above.
    peer_id, clinic_admin_id, owner_id, other_owner_id, desk_id = (
        peer_admin.id, clinic_admin_row.id, owner_row.id, other_owner.id, desk.id
    )  # fmt: skip
    staff_actor = actor(desk)
    branch_id, elsewhere_id = here.branch.id, elsewhere.branch.id

    async def refused(creator: Actor, **kwargs: Any) -> str:
        with pytest.raises(auth.AuthError) as caught:
            await auth.issue_login_code(db, secret=TEST_SECRET, created_by=creator, **kwargs)
        await db.rollback()
        return caught.value.code

    assert await refused(branch_admin, role="owner", name="Boss") == "forbidden"
    assert await refused(clinic_admin, role="owner", name="Boss") == "forbidden"
    assert await refused(branch_admin, role="staff", name="x", branch_id=elsewhere_id) == "forbidden"
    assert await refused(branch_admin, staff_id=peer_id) == "forbidden"  # becoming a peer
    assert await refused(branch_admin, staff_id=clinic_admin_id) == "not_found"  # outside their branch
    assert await refused(clinic_admin, staff_id=owner_id) == "forbidden"
    assert await refused(owner, staff_id=other_owner_id) == "forbidden"
    assert await refused(owner, staff_id=desk_id, role="admin") == "role_mismatch"
    assert await refused(staff_actor, role="staff", name="x", branch_id=branch_id) == "forbidden"

    # What they may: a new colleague in their own branch, someone below them, their own new phone.
    mine = await auth.issue_login_code(db, secret=TEST_SECRET, created_by=branch_admin, role="admin", name="New")
    assert mine.branch_id == branch_id and mine.role == "admin"
    assert mine.staff_id not in (branch_admin.id, peer_id, clinic_admin_id)
    below = await auth.issue_login_code(db, secret=TEST_SECRET, created_by=branch_admin, staff_id=desk_id)
    own = await auth.issue_login_code(db, secret=TEST_SECRET, created_by=clinic_admin, staff_id=clinic_admin_id)
    boss = await auth.issue_login_code(db, secret=TEST_SECRET, created_by=owner, staff_id=clinic_admin_id)
    assert (below.staff_id, own.staff_id, boss.staff_id) == (desk_id, clinic_admin_id, clinic_admin_id)
    await db.rollback()


async def test_a_code_signs_in_exactly_the_record_it_was_made_for(client: Client, db: AsyncSession) -> None:
    here = await build_clinic(db)
    elsewhere = await build_clinic(db)
    first = Staff(name="Rina", role="staff", branch_id=elsewhere.branch.id)
    second = Staff(name="Rina", role="staff", branch_id=here.branch.id)
    db.add_all([first, second])
    await db.commit()
    csrf = await sign_in_page(client, db, "owner")
    code, _html = await _mint_on_page(client, csrf, staff_id=str(second.id))
    assert code is not None
    me = await _who_redeems(client, code)
    assert me["id"] == second.id and me["branch_id"] == here.branch.id


async def test_a_code_whose_member_changed_role_branch_or_left_is_refused(client: Client, db: AsyncSession) -> None:
    here = await build_clinic(db)
    elsewhere = await build_clinic(db)
    changes: list[dict[str, Any]] = [{"role": "admin"}, {"branch_id": elsewhere.branch.id}, {"active": False}]
    for change in changes:
        member = await add_staff(db, "staff", branch_id=here.branch.id)
        issued = await auth.issue_login_code(db, secret=TEST_SECRET, staff_id=member.id, created_by=SYSTEM)
        await db.execute(update(Staff).where(Staff.id == member.id).values(**change))
        await db.commit()
        refused = await client.post("/api/v1/auth/login", json={"code": issued.code})
        assert refused.status == 401, change
        assert (await refused.json())["error"]["code"] == "invalid_code"


async def test_the_operator_cli_continues_the_named_member(db: AsyncSession) -> None:
    name = unique("Owner")
    first = await auth.issue_login_code(db, secret=TEST_SECRET, role="owner", name=name, created_by=SYSTEM)
    again = await auth.issue_login_code(db, secret=TEST_SECRET, role="owner", name=name, created_by=SYSTEM)
    await db.commit()
    _token, actor = await auth.redeem_login_code(db, again.code, secret=TEST_SECRET)
    await db.commit()
    assert first.staff_id == again.staff_id == actor.id


# --- the owner's sessions are the owner's


async def test_an_admin_cannot_sign_the_owner_out_everywhere(
    client: Client, db: AsyncSession, own_settings: Settings
) -> None:
    async with TestClient(TestServer(create_app(own_settings))) as owners_phone:
        await sign_in_page(owners_phone, db, "owner")
        owner = await (await owners_phone.get("/api/v1/auth/me")).json()
        csrf = await sign_in_page(client, db, "admin")
        page = await (await client.get("/inbox/staff")).text()
        assert f"/inbox/staff/{owner['id']}/sign-out" not in page
        refused = await client.post(f"/inbox/staff/{owner['id']}/sign-out", data={"csrf_token": csrf})
        assert refused.status == 403
        assert "Only an owner may sign an owner out" in await refused.text()
        assert (await owners_phone.get("/api/v1/auth/me")).status == 200
        # The owner may (a lost phone of their own).
        client.session.cookie_jar.clear()
        csrf = await sign_in_page(client, db, "owner")
        done = await client.post(f"/inbox/staff/{owner['id']}/sign-out", data={"csrf_token": csrf})
        assert done.status == 200 and "Signed out of 1 device" in await done.text()
        assert (await owners_phone.get("/api/v1/auth/me")).status == 401


# --- a doctor's token reads what the doctor's pages show


async def test_a_doctors_token_is_refused_the_leads_and_conversations_like_the_pages(
    client: Client, db: AsyncSession, sign_in: Callable[..., Awaitable[dict[str, str]]]
) -> None:
    clinic = await build_clinic(db)
    lead = Lead(channel="webform", branch_id=clinic.branch.id, contact_name="Siti")
    db.add(lead)
    await db.commit()
    doctor = await sign_in("doctor", branch_id=clinic.branch.id)
    for path in ("/api/v1/leads", f"/api/v1/leads/{lead.id}"):
        refused = await client.get(path, headers=doctor)
        assert refused.status == 403, path
        assert (await refused.json())["error"]["code"] == "forbidden"
    await sign_in_page(client, db, "doctor", branch_id=clinic.branch.id)
    assert (await client.get(f"/inbox/leads/{lead.id}")).status == 403
    desk = await sign_in("staff", branch_id=clinic.branch.id)
    assert (await client.get(f"/api/v1/leads/{lead.id}", headers=desk)).status == 200


# --- an open live-update stream ends with its session


async def _open_stream(client: Client) -> ClientResponse:
    stream = await client.get("/inbox/events", headers={"Accept": "text/event-stream"})
    assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
    assert (await stream.content.readline()).startswith(b"retry:")
    return stream


async def _rest_of(stream: ClientResponse) -> str:
    """Everything the stream sends until the server ends it (bounded: a stream left open fails the test)."""

    async def read() -> str:
        return (await stream.content.read()).decode()

    try:
        return await asyncio.wait_for(read(), 60)
    finally:
        stream.close()


async def test_signing_a_member_out_everywhere_ends_their_open_stream_before_the_next_change(
    client: Client, db: AsyncSession, own_settings: Settings
) -> None:
    clinic = await build_clinic(db)
    await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    me = await (await client.get("/api/v1/auth/me")).json()
    stream = await _open_stream(client)
    async with TestClient(TestServer(create_app(own_settings))) as owner:
        csrf = await sign_in_page(owner, db, "owner")
        done = await owner.post(f"/inbox/staff/{me['id']}/sign-out", data={"csrf_token": csrf})
        assert "Signed out of 1 device" in await done.text()
    after = Lead(channel="webform", branch_id=clinic.branch.id, contact_name="After the sign-out")
    db.add(after)
    await db.commit()
    rest = await _rest_of(stream)
    assert f'"id": {after.id}' not in rest
    assert rest.rstrip().endswith("event: signed-out\ndata: {}")  # the page goes to sign in, not reconnecting


async def test_an_open_stream_ends_when_its_member_leaves_or_its_session_expires(
    client: Client, db: AsyncSession
) -> None:
    await sign_in_page(client, db, "staff")
    me = await (await client.get("/api/v1/auth/me")).json()
    stream = await _open_stream(client)
    await db.execute(update(Staff).where(Staff.id == me["id"]).values(active=False))
    await db.commit()
    assert "event: signed-out" in await _rest_of(stream)

    client.session.cookie_jar.clear()
    await sign_in_page(client, db, "staff")
    me = await (await client.get("/api/v1/auth/me")).json()
    soon = datetime.now(UTC) + timedelta(seconds=10)
    await db.execute(update(StaffSession).where(StaffSession.staff_id == me["id"]).values(expires_at=soon))
    await db.commit()
    stream = await _open_stream(client)
    assert "event: signed-out" in await _rest_of(stream)
    assert datetime.now(UTC) >= soon - timedelta(seconds=1)


async def test_revocation_is_never_sent_to_pages(client: Client, db: AsyncSession, own_settings: Settings) -> None:
    await sign_in_page(client, db, "owner")
    watcher = await _open_stream(client)
    code = await new_code(db, "staff")
    async with TestClient(TestServer(create_app(own_settings))) as other:
        token = csrf_of(await (await other.get("/login")).text())
        await other.post("/login", data={"code": code, "csrf_token": token}, allow_redirects=False)
        await other.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    revoked = (
        await db.execute(select(StaffSession.id).where(StaffSession.revoked_at.is_not(None)).order_by(StaffSession.id))
    ).scalars()
    assert list(revoked)
    marker = Lead(channel="webform", contact_name="marker")
    db.add(marker)
    await db.commit()

    async def until_the_marker() -> str:
        seen = ""
        while f'"id": {marker.id}' not in seen:
            line = await watcher.content.readline()
            assert line, "the owner's stream ended"
            seen += line.decode()
        return seen

    try:
        seen = await asyncio.wait_for(until_the_marker(), 60)
    finally:
        watcher.close()
    assert "staff_sessions" not in seen and '"table": "staff"' not in seen


# --- the same rules through the API


async def test_the_api_mints_codes_by_the_same_rules_as_the_staff_page(
    client: Client, db: AsyncSession, sign_in: Callable[..., Awaitable[dict[str, str]]]
) -> None:
    here = await build_clinic(db)
    elsewhere = await build_clinic(db)
    clinic_wide = await add_staff(db, "admin")
    their_doctor = await _doctor(db, elsewhere)
    desk = await add_staff(db, "staff", branch_id=here.branch.id)
    branch_admin = await sign_in("admin", branch_id=here.branch.id)

    listed = await (await client.get("/api/v1/staff", headers=branch_admin)).json()
    assert {m["branch_id"] for m in listed["staff"]} == {here.branch.id}
    for body, status in (
        ({"staff_id": clinic_wide.id}, 404),
        ({"staff_id": their_doctor.id}, 404),
        ({"role": "owner", "name": "Boss"}, 403),
        ({"role": "staff", "name": "x", "branch_id": elsewhere.branch.id}, 403),
        ({"staff_id": desk.id, "role": "admin"}, 422),
        ({"name": "nobody"}, 422),
        ({"staff_id": 2**40}, 422),
    ):
        refused = await client.post("/api/v1/login-codes", json=body, headers=branch_admin)
        assert refused.status == status, (body, await refused.text())
    made = await client.post("/api/v1/login-codes", json={"staff_id": desk.id}, headers=branch_admin)
    assert made.status == 201
    issued = await made.json()
    assert issued["staff_id"] == desk.id and issued["link"].endswith(issued["code"])
    me = await _who_redeems(client, issued["code"])
    assert me["id"] == desk.id


async def test_through_the_api_too_only_an_owner_signs_an_owner_out(
    client: Client, db: AsyncSession, sign_in: Callable[..., Awaitable[dict[str, str]]]
) -> None:
    owner = await sign_in("owner")
    owner_id = (await (await client.get("/api/v1/auth/me", headers=owner)).json())["id"]
    admin = await sign_in("admin")
    refused = await client.post(f"/api/v1/staff/{owner_id}/sign-out", headers=admin)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "forbidden"
    assert (await client.get("/api/v1/auth/me", headers=owner)).status == 200
    doctor = await sign_in("doctor")
    assert (await client.post(f"/api/v1/staff/{owner_id}/sign-out", headers=doctor)).status == 403
    done = await client.post(f"/api/v1/staff/{owner_id}/sign-out", headers=owner)
    assert done.status == 200 and (await done.json())["sessions"] == 1
    assert (await client.get("/api/v1/auth/me", headers=owner)).status == 401
