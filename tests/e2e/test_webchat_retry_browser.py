"""The chat widget in a real browser keeps a message the gateway could not store yet and sends it again by itself,
and tells a new visitor refused by the new-visitor limit that the chat will connect by itself.

The gateway runs in this process (so the test can take every connection of its database pools, as a burst of
visitors would); the widget is Debian's Chromium through Playwright, on the demo page the gateway serves.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Message
from devtools import harness
from gateway.app import create_app
from gateway.keys import ENGINE, RAW_DB
from infra.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@contextlib.asynccontextmanager
async def serving(settings: Settings, **changes: Any) -> AsyncIterator[TestServer]:
    """The gateway in this process on a free port, which is also its PUBLIC_BASE_URL (the demo page may embed the
    widget), with a Redis prefix of its own (fresh limit counters)."""
    port = harness.free_port()
    changed = settings.model_copy(
        update={
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "FRONTDESK_REDIS_PREFIX": f"wcb{secrets.token_hex(4)}",
            **changes,
        }
    )
    server = TestServer(create_app(changed), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[TestServer]:
    async with serving(
        settings, FRONTDESK_WEBCHAT_STORE_WITHIN=1.0, FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=100_000
    ) as server:
        yield server


async def test_a_message_the_busy_gateway_cannot_store_yet_is_sent_again_and_kept_once(
    gateway: TestServer, browser: Browser, db: AsyncSession
) -> None:
    page = await browser.new_page()
    await page.goto(str(gateway.make_url("/webchat/demo?lang=en")))
    await page.get_by_role("button", name="Chat with the clinic").click()
    dialog = page.get_by_role("dialog", name="Chat with us")
    box = dialog.get_by_role("textbox")
    log = dialog.get_by_role("log")
    await box.fill("Hello")
    await box.press("Enter")
    await expect(log.locator(".msg.in", has_text="Hello")).to_have_attribute("data-state", "acked")

    app: Any = gateway.app
    engine, raw = app[ENGINE], app[RAW_DB]
    # Every connection of the gateway's pools is busy: the ORM pool's (its size again as overflow, see make_engine)
    # and the hot path's.
    taken = [await engine.connect() for _ in range(2 * engine.pool.size())]
    raw_taken = [await raw.acquire() for _ in range(raw.get_max_size())]
    text = f"Is the clinic open on Sunday? ({secrets.token_hex(3)})"
    try:
        await box.fill(text)
        await box.press("Enter")
        waiting = log.locator(".msg.in", has_text=text)
        # Told "not yet": still pending, says it will go again, and is not marked failed.
        await expect(waiting).to_contain_text("Sending again soon", timeout=20_000)
        await expect(waiting).to_have_attribute("data-state", "pending")
        await expect(waiting).not_to_have_class("msg in failed")
    finally:
        for conn in taken:
            await conn.close()
        for conn in raw_taken:
            await raw.release(conn)
    # The database is free again: the widget's own retry gets it stored and acknowledged.
    await expect(waiting).to_have_attribute("data-state", "acked", timeout=60_000)
    await expect(waiting).to_contain_text("Sent")
    copies = await db.execute(
        select(func.count()).select_from(Message).where(Message.channel == "webchat", Message.text == text)
    )
    assert copies.scalar_one() == 1
    await page.close()


async def test_a_new_visitor_over_the_limit_is_told_the_chat_will_connect_by_itself(
    settings: Settings, browser: Browser
) -> None:
    async with serving(settings, FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=1) as server:
        first = await browser.new_context()  # each context is a visitor of its own (its own localStorage)
        second = await browser.new_context()
        try:
            for context, status in ((first, ""), (second, "Many chats are starting right now")):
                page = await context.new_page()
                await page.goto(str(server.make_url("/webchat/demo?lang=en")))
                await page.get_by_role("button", name="Chat with the clinic").click()
                dialog = page.get_by_role("dialog", name="Chat with us")
                if status:
                    await expect(dialog.get_by_role("status")).to_contain_text(status)
                else:
                    await expect(dialog.get_by_role("status")).to_be_empty()
                    box = dialog.get_by_role("textbox")
                    await box.fill("Hello")
                    await box.press("Enter")
                    await expect(dialog.locator(".msg.in")).to_have_attribute("data-state", "acked")
        finally:
            await first.close()
            await second.close()
