"""Helpers for tests of the staff web app: sign a browser-like client in with a real login code, read CSRF tokens."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.domain.actors import SYSTEM
from booking_core.services import auth
from devtools.builders import unique
from tests.conftest import TEST_SECRET

_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a rendered page carries (in its <meta> or a form's hidden field)."""
    found = _CSRF.search(html)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1) or found.group(2)


async def new_code(db: AsyncSession, role: str = "staff", *, branch_id: int | None = None, name: str = "") -> str:
    issued = await auth.issue_login_code(
        db, secret=TEST_SECRET, role=role, name=name or unique(role),  # type: ignore[arg-type]
        branch_id=branch_id, created_by=SYSTEM,
    )  # fmt: skip
    await db.commit()
    return issued.code


async def sign_in_page(
    client: TestClient[object, object], db: AsyncSession, role: str = "staff", *, branch_id: int | None = None
) -> str:
    """Sign ``client`` in through the /login form (cookie session); returns the CSRF token for later posts."""
    code = await new_code(db, role, branch_id=branch_id)
    page = await client.get("/login")
    token = csrf_of(await page.text())
    response = await client.post(
        "/login", data={"code": code, "csrf_token": token, "next": "/inbox/queue"}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    return token
