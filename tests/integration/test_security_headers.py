"""Every page says what it may run and who may frame it; no answer names our software; /metrics is not public."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.app import create_app
from infra.settings import Settings
from tests.integration.staff_pages import sign_in_page

Client = TestClient[Any, Any]
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
PUBLIC_PAGES = ("/book", "/queue", "/login", "/webchat/demo", "/no-such-page")
STAFF_PAGES = ("/inbox", "/inbox/queue", "/inbox/scanner", "/inbox/appointments", "/inbox/calendar",
               "/inbox/staff", "/inbox/settings")  # fmt: skip
METRICS_TOKEN = "prometheus-scrape-token-0123456789"


def directives(csp: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in csp.split(";") if part.strip())}


def assert_page_headers(response: Any) -> dict[str, list[str]]:
    headers = response.headers
    assert "text/html" in headers["Content-Type"]
    policy = directives(headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["'none'"] and headers["X-Frame-Options"] == "DENY"
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin-when-cross-origin")
    assert_no_version(response)
    return policy


def assert_no_version(response: Any) -> None:
    server = response.headers.get("Server", "")
    assert "aiohttp" not in server.lower() and "python" not in server.lower() and not re.search(r"\d", server)


async def test_public_pages_are_never_framed_and_run_only_our_scripts(client: Client) -> None:
    for path in PUBLIC_PAGES:
        response = await client.get(path)
        assert_page_headers(response)
        assert "Strict-Transport-Security" not in response.headers  # plain http: HSTS would mean nothing


async def test_staff_pages_are_never_framed_and_inline_scripts_carry_this_responses_nonce(
    client: Client, db: AsyncSession
) -> None:
    await sign_in_page(client, db, "owner")
    nonces: list[str] = []
    for path in STAFF_PAGES:
        response = await client.get(path)
        assert response.status == 200, path
        policy = assert_page_headers(response)
        html = await response.text()
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
        allowed = [value.strip("'").removeprefix("nonce-") for value in policy["script-src"] if "nonce-" in value]
        for attributes in inline:
            nonce = re.search(r'nonce="([^"]+)"', attributes)
            assert nonce is not None and [nonce.group(1)] == allowed, path
        nonces += allowed
    assert len(nonces) >= 3 and len(set(nonces)) == len(nonces)  # pages with inline scripts: a fresh nonce each


async def test_redirects_errors_and_json_answers_carry_the_headers_too(client: Client) -> None:
    redirect = await client.get("/inbox", allow_redirects=False)
    assert redirect.status == 303
    assert_no_version(redirect)
    api = await client.get("/api/v1/auth/me")
    assert api.status == 401
    assert directives(api.headers["Content-Security-Policy"]) == {"default-src": ["'none'"],
                                                                  "frame-ancestors": ["'none'"]}  # fmt: skip
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert_no_version(api)
    widget = await client.get("/webchat/widget.js")
    assert widget.status == 200 and widget.headers["Access-Control-Allow-Origin"] == "*"
    assert widget.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_confirmation_page_keeps_its_own_stricter_policy(client: Client) -> None:
    response = await client.get("/c/not-a-real-link")
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert_no_version(response)


async def test_on_https_every_answer_asks_browsers_to_stay_on_https(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"PUBLIC_BASE_URL": "https://clinic.example"}))
    async with TestClient(TestServer(app)) as http:
        for path in ("/book", "/health", "/api/v1/auth/me"):
            response = await http.get(path)
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000", path
        policy = directives((await http.get("/webchat/demo")).headers["Content-Security-Policy"])
        assert "wss://clinic.example" in policy["connect-src"]  # the chat widget's socket


def test_no_template_has_an_inline_handler_or_an_unnonced_inline_script() -> None:
    for template in TEMPLATES.rglob("*.html"):
        html = template.read_text(encoding="utf-8")
        assert not re.search(r"\son[a-z]+\s*=", html), f"{template}: inline event handler (the CSP blocks it)"
        assert not re.search(r"javascript:", html, re.IGNORECASE), template
        for attributes in re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html):
            assert 'nonce="{{ csp_nonce }}"' in attributes, f"{template}: inline <script> without the nonce"


async def test_a_429_that_forgot_its_retry_after_still_gets_one(settings: Settings) -> None:
    async def busy(request: web.Request) -> web.Response:
        raise web.HTTPTooManyRequests()

    app = create_app(settings)
    app.router.add_get("/busy-for-a-test", busy)
    async with TestClient(TestServer(app)) as http:
        response = await http.get("/busy-for-a-test")
        assert response.status == 429 and int(response.headers["Retry-After"]) >= 1


# --- /metrics


@pytest.fixture
async def behind_proxy(settings: Settings) -> AsyncIterator[Client]:
    app = create_app(settings.model_copy(update={"FRONTDESK_TRUSTED_PROXIES": (ip_network("127.0.0.1/32"),)}))
    async with TestClient(TestServer(app)) as http:
        yield http


async def test_metrics_are_for_this_machine_only_by_default(client: Client, behind_proxy: Client) -> None:
    assert (await client.get("/metrics")).status == 200  # a Prometheus or `curl` on the gateway's machine
    # A visitor relayed by a reverse proxy on this machine is not local, whatever the connection's address says.
    relayed = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status == 403
    assert (await client.get("/metrics", headers={"Forwarded": "for=203.0.113.9"})).status == 403
    assert (await behind_proxy.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})).status == 403
    assert (await behind_proxy.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})).status == 200
    assert "frontdesk_http_requests_total" not in await relayed.text()


async def test_with_a_token_metrics_need_it_from_anywhere(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"FRONTDESK_METRICS_TOKEN": METRICS_TOKEN}))
    async with TestClient(TestServer(app)) as http:
        missing = await http.get("/metrics")
        assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status == 401
        right = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert right.status == 200 and "frontdesk_http_requests_total" in await right.text()
