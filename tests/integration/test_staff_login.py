"""Passwordless staff sign-in through the API: a code works once, then the bearer token does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import AuditEntry, LoginCode
from booking_core.domain.actors import SYSTEM
from booking_core.services import auth
from tests.conftest import TEST_SECRET


async def _code(db: AsyncSession, role: str = "staff", *, ttl: timedelta = auth.LOGIN_CODE_TTL) -> str:
    issued = await auth.issue_login_code(
        db,
        secret=TEST_SECRET,
        role=role,
        name=f"Reception {role}",
        created_by=SYSTEM,
        ttl=ttl,  # type: ignore[arg-type]
    )
    await db.commit()
    return issued.code


async def test_a_receptionist_signs_in_with_a_code_and_uses_the_token(
    client: TestClient[object, object], db: AsyncSession
) -> None:
    code = await _code(db)
    response = await client.post("/api/v1/auth/login", json={"code": code.lower().replace("-", " ")})
    assert response.status == 200
    body = await response.json()
    assert body["role"] == "staff"
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status == 200
    assert (await me.json())["name"] == "Reception staff"


async def test_a_login_code_works_only_once(client: TestClient[object, object], db: AsyncSession) -> None:
    code = await _code(db)
    assert (await client.post("/api/v1/auth/login", json={"code": code})).status == 200
    again = await client.post("/api/v1/auth/login", json={"code": code})
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "invalid_code"


async def test_an_expired_or_forged_code_is_refused(client: TestClient[object, object], db: AsyncSession) -> None:
    expired = await _code(db, ttl=timedelta(seconds=-1))
    assert (await client.post("/api/v1/auth/login", json={"code": expired})).status == 401
    assert (await client.post("/api/v1/auth/login", json={"code": "ZZZZZ-ZZZZZ"})).status == 401
    assert (await client.post("/api/v1/auth/login", json={"code": "'; drop table staff; --"})).status == 401


async def test_codes_are_stored_hashed_and_sign_in_is_audited(
    client: TestClient[object, object], db: AsyncSession
) -> None:
    code = await _code(db, "admin")
    stored = (await db.execute(select(LoginCode.code_hash).order_by(LoginCode.id.desc()).limit(1))).scalar_one()
    assert code not in stored and code.replace("-", "") not in stored
    assert (await client.post("/api/v1/auth/login", json={"code": code})).status == 200
    entry = (
        await db.execute(select(AuditEntry).where(AuditEntry.action == "login").order_by(AuditEntry.id.desc()).limit(1))
    ).scalar_one()
    assert entry.actor_kind == "staff" and entry.at > datetime.now(UTC) - timedelta(minutes=1)


async def test_a_revoked_token_no_longer_works(client: TestClient[object, object], db: AsyncSession) -> None:
    code = await _code(db)
    token = (await (await client.post("/api/v1/auth/login", json={"code": code})).json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status == 200
    assert (await client.get("/api/v1/auth/me", headers=headers)).status == 401


async def test_the_api_refuses_callers_without_a_token(client: TestClient[object, object]) -> None:
    response = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer not-a-real-token"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
