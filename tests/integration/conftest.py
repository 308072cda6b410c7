"""Integration fixtures: the gateway app in-process over a real socket, against real Postgres and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.domain.actors import SYSTEM
from booking_core.services import auth
from devtools.builders import Clinic, build_clinic, unique
from gateway.app import create_app
from infra.settings import Settings
from tests.conftest import TEST_SECRET
from tests.integration.telegram_bot import Bot, running_bot


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[object, object]]:
    """An HTTP client talking to a freshly created app (its own engine and Redis client, as in production)."""
    server = TestServer(create_app(settings))
    async with TestClient(server) as http:
        yield http


@pytest.fixture
async def clinic(db: AsyncSession) -> Clinic:
    """A fresh branch with rooms, two doctors, three examinations and a patient (see devtools/builders.py)."""
    return await build_clinic(db)


@pytest.fixture
def sign_in(client: TestClient[object, object], db: AsyncSession) -> Callable[..., Awaitable[dict[str, str]]]:
    """``headers = await sign_in("staff", branch_id=...)``: a real login code redeemed through the API."""

    async def sign_in(role: str = "owner", *, branch_id: int | None = None, name: str | None = None) -> dict[str, str]:
        issued = await auth.issue_login_code(
            db,
            secret=TEST_SECRET,
            role=role,
            name=name or unique(role),  # type: ignore[arg-type]
            branch_id=branch_id,
            created_by=SYSTEM,
        )
        await db.commit()
        response = await client.post("/api/v1/auth/login", json={"code": issued.code})
        assert response.status == 200, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}

    return sign_in


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    """The clinic's Telegram bot: the fake Bot API and the real adapter pointed at it."""
    async with running_bot() as telegram:
        yield telegram
