"""Limits that stop someone guessing, never the clinic's staff: counted before deciding, per real client address.

The gateway here sits behind a trusted proxy (127.0.0.1, the test client), so each request can come from its own
client address through ``X-Forwarded-For`` — as it does in production behind a reverse proxy. Every test has its
own Redis prefix: the clinic-wide counters it fills must not leak into other tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from ipaddress import ip_network
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession

from devtools.builders import unique
from gateway import auth
from gateway.app import create_app
from infra.settings import Settings
from tests.integration.staff_pages import csrf_of, new_code

Client = TestClient[Any, Any]
WRONG = "ABCDE-FGHJK"


@pytest.fixture
async def behind_proxy(settings: Settings) -> AsyncIterator[Client]:
    """The gateway behind a reverse proxy at 127.0.0.1, with sign-in counters of its own."""
    app = create_app(
        settings.model_copy(
            update={
                "FRONTDESK_REDIS_PREFIX": unique("sec"),
                "FRONTDESK_TRUSTED_PROXIES": (ip_network("127.0.0.1/32"),),
            }
        )
    )
    async with TestClient(TestServer(app)) as http:
        yield http


def from_(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def api_login(http: Client, code: str, address: str) -> tuple[int, dict[str, Any], str | None]:
    response = await http.post("/api/v1/auth/login", json={"code": code}, headers=from_(address))
    return response.status, await response.json(), response.headers.get("Retry-After")


async def form_login(http: Client, code: str, address: str) -> tuple[int, str | None]:
    page = await http.get("/login", headers=from_(address))
    token = csrf_of(await page.text())
    response = await http.post(
        "/login", data={"code": code, "csrf_token": token}, headers=from_(address), allow_redirects=False
    )
    return response.status, response.headers.get("Retry-After")


async def test_a_flood_of_wrong_codes_from_everywhere_never_refuses_a_right_code(
    behind_proxy: Client, db: AsyncSession
) -> None:
    # More wrong codes than the clinic-wide limit, each from its own address, as a botnet would send them.
    addresses = [f"10.{n // 250}.{n % 250}.7" for n in range(auth.CLINIC_FAILURES + 20)]
    for start in range(0, len(addresses), 10):
        batch = addresses[start : start + 10]
        statuses = await asyncio.gather(*(api_login(behind_proxy, WRONG, a) for a in batch))
        assert {status for status, _body, _retry in statuses} <= {401, 429}

    # The clinic is over its limit: a wrong code now gets 429 with Retry-After, from anywhere ...
    status, body, retry = await api_login(behind_proxy, WRONG, "192.0.2.10")
    assert status == 429 and body["error"]["code"] == "too_many_attempts"
    assert retry is not None and 1 <= int(retry) <= auth.CLINIC_WINDOW
    # ... and staff with their right code still sign in, through the API and through the form.
    status, body, _retry = await api_login(behind_proxy, await new_code(db, "staff"), "192.0.2.11")
    assert status == 200 and body["role"] == "staff"
    assert (await form_login(behind_proxy, await new_code(db, "admin"), "192.0.2.12"))[0] == 303
    # Even from an address that was one of the guessers (it has not used up its own budget).
    status, _body, _retry = await api_login(behind_proxy, await new_code(db, "doctor"), addresses[0])
    assert status == 200


async def test_concurrent_wrong_codes_from_one_address_are_checked_at_most_ten_times(
    behind_proxy: Client,
) -> None:
    outcomes = await asyncio.gather(*(api_login(behind_proxy, WRONG, "198.51.100.20") for _ in range(60)))

    statuses = [status for status, _body, _retry in outcomes]
    assert statuses.count(401) == auth.ADDRESS_FAILURES
    assert statuses.count(429) == 60 - auth.ADDRESS_FAILURES
    assert all(retry is not None and int(retry) >= 1 for status, _body, retry in outcomes if status == 429)


async def test_an_address_that_used_its_budget_waits_even_with_a_right_code_and_others_do_not(
    behind_proxy: Client, db: AsyncSession
) -> None:
    for _ in range(auth.ADDRESS_FAILURES):
        assert (await api_login(behind_proxy, WRONG, "198.51.100.30"))[0] == 401
    right = await new_code(db)

    status, body, retry = await api_login(behind_proxy, right, "198.51.100.30")
    assert status == 429 and body["error"]["code"] == "too_many_attempts"
    assert retry is not None and 1 <= int(retry) <= auth.ADDRESS_WINDOW
    form_status, form_retry = await form_login(behind_proxy, right, "198.51.100.30")
    assert form_status == 429 and form_retry is not None and int(form_retry) >= 1
    # A colleague at another address is not affected, and the refused attempts did not use the code up.
    assert (await api_login(behind_proxy, right, "198.51.100.31"))[0] == 200


async def test_right_codes_do_not_use_up_an_addresses_budget(behind_proxy: Client, db: AsyncSession) -> None:
    for _ in range(auth.ADDRESS_FAILURES - 1):
        assert (await api_login(behind_proxy, WRONG, "198.51.100.40"))[0] == 401
    for _ in range(3):  # a shared front-desk computer: colleagues sign in one after another
        assert (await api_login(behind_proxy, await new_code(db), "198.51.100.40"))[0] == 200
    assert (await api_login(behind_proxy, WRONG, "198.51.100.40"))[0] == 401  # the tenth wrong code
    assert (await api_login(behind_proxy, WRONG, "198.51.100.40"))[0] == 429


async def test_one_ipv6_subscriber_gets_one_budget_whichever_address_of_its_64_it_uses(
    behind_proxy: Client,
) -> None:
    for n in range(auth.ADDRESS_FAILURES):
        assert (await api_login(behind_proxy, WRONG, f"2001:db8:7:1::{n + 1:x}"))[0] == 401

    assert (await api_login(behind_proxy, WRONG, "2001:db8:7:1:ffff:ffff:ffff:ffff"))[0] == 429
    assert (await api_login(behind_proxy, WRONG, "2001:db8:7:2::1"))[0] == 401  # the next /64 is someone else


async def test_the_public_pages_limit_each_client_behind_the_proxy_on_its_own(behind_proxy: Client) -> None:
    # Each page counts before it checks anything else, so posts without a form token are enough to fill a budget.
    for path, allowed in (("/book", 5), ("/queue", 10), ("/c/not-a-real-link", 30)):
        for _ in range(allowed):
            assert (await behind_proxy.post(path, data={}, headers=from_("203.0.113.5"))).status != 429
        blocked = await behind_proxy.post(path, data={}, headers=from_("203.0.113.5"))
        assert blocked.status == 429, path
        assert 1 <= int(blocked.headers["Retry-After"]) <= 601, path  # whole seconds, rounded up from 600.02
        other = await behind_proxy.post(path, data={}, headers=from_("203.0.113.6"))
        assert other.status != 429, path
