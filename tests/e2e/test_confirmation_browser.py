"""The confirmation link in a real browser (Debian's Chromium through Playwright) against a running `frontdesk serve`.

A patient opens the link from their message on a phone-sized screen, reads the visit, confirms with the keyboard
and sees the confirmed state with the check-in QR code.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, expect
from redis import Redis as SyncRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import Session
from booking_core.domain.links import link_expires_at
from booking_core.services import visit_link
from devtools.builders import Clinic, build_clinic, insert_session, next_weekday
from infra.settings import Settings
from tests.conftest import TEST_SECRET
from tests.servers import serving

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def gateway_url(child_env: dict[str, str], sync_redis: SyncRedis, settings: Settings) -> Iterator[str]:
    """`frontdesk serve` as a real process (the browser comes from 127.0.0.1: its rate limits start afresh)."""
    prefix = settings.FRONTDESK_REDIS_PREFIX
    sync_redis.delete(*(f"{prefix}:rate:confirm:{kind}:ip:127.0.0.1" for kind in ("view", "post")))
    with serving(child_env) as base:
        yield base


@pytest.fixture
async def clinic(db: AsyncSession) -> Clinic:
    return await build_clinic(db)


async def test_a_patient_opens_the_link_on_a_phone_confirms_and_sees_the_confirmed_visit(
    gateway_url: str, browser: Browser, db: AsyncSession, clinic: Clinic
) -> None:
    visit = await insert_session(db, clinic, starts_at=next_weekday(1, hour=10))
    token = visit_link.link_token(TEST_SECRET, visit.id, visit.booking_code, expires_at=link_expires_at(visit.ends_at))
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, locale="en-US")
    page = await context.new_page()
    await page.goto(f"{gateway_url}/c/{token}?lang=en")

    await expect(page.get_by_role("heading", name="Your visit")).to_be_visible()
    await expect(page.locator("[data-state]")).to_have_text("Waiting for your confirmation")
    await expect(page.locator("dl.visit")).to_contain_text("dr. Andi Wijaya")
    await expect(page.locator("dl.visit")).to_contain_text(visit.booking_code)
    await expect(page.locator("dl.visit")).to_contain_text("10:00")
    await expect(page.locator("dl.visit")).not_to_contain_text("Siti Rahmawati")  # the name is masked

    confirm = page.get_by_role("button", name="Confirm my visit")
    await expect(confirm).to_be_visible()
    box = await confirm.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] >= 44  # a full-width, thumb-sized button
    await confirm.focus()
    await page.keyboard.press("Enter")

    await expect(page.get_by_role("status")).to_contain_text("Your visit is confirmed")
    await expect(page.locator("[data-state]")).to_have_text("Confirmed")
    await expect(page.get_by_role("img", name=f"Check-in QR code for booking {visit.booking_code}")).to_be_visible()
    await expect(page.get_by_role("button", name="Confirm my visit")).to_have_count(0)
    await context.close()

    stored = (
        await db.execute(select(Session).where(Session.id == visit.id).execution_options(populate_existing=True))
    ).scalar_one()
    assert stored.accepted and stored.confirmed_at is not None
