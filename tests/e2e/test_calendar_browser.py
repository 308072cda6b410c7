"""The calendar and the session page in a real browser against the running demo clinic: the front desk books a
free slot from the calendar (another open calendar shows it by itself), then adds an examination on the session
page and watches the invoice change without the page reloading."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import Branch
from devtools.builders import next_weekday
from tests.e2e.conftest import Stack, staff_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_booking_a_free_slot_then_adding_an_examination_updates_the_invoice_in_place(
    browser: Browser, stack: Stack
) -> None:
    async with make_sessionmaker(stack.engine)() as db:
        kemang = (await db.execute(select(Branch).where(Branch.code == "KMG"))).scalar_one()
    monday = next_weekday(0, hour=10).astimezone(ZoneInfo("Asia/Jakarta")).date()
    path = f"/inbox/calendar?branch={kemang.id}&day={monday.isoformat()}&view=doctors"

    watcher = await staff_page(browser, stack, "staff", path="/inbox/calendar")  # a colleague's screen
    await watcher.goto(path)
    await expect(watcher.locator("html[data-live=on]")).to_have_count(1)
    page = await staff_page(browser, stack, "owner", path="/inbox/calendar")
    await page.goto(path)
    await expect(page.get_by_role("heading", name="Calendar — Klinik Sehat Kemang")).to_be_visible()

    await page.get_by_role("link", name="Book dr. Andi Wijaya at 10:00", exact=True).click()
    panel = page.locator("#book")
    await expect(panel.get_by_role("heading", level=2)).to_contain_text("Book dr. Andi Wijaya")
    await panel.get_by_label("Find a patient (name or phone)").fill("Siti")
    await panel.get_by_role("button", name="Search").click()
    await expect(page.locator("#book").get_by_label("Siti Rahmawati")).to_be_checked()
    await (
        page.locator("#book")
        .get_by_label("Examination")
        .select_option(label="General consultation (30 min, IDR 150,000)")
    )
    await page.locator("#book").get_by_role("button", name="Book", exact=True).click()

    await expect(page.locator("#flash")).to_contain_text("Booked Siti Rahmawati on")
    block = page.locator("#calendar-grid a.block.session", has_text="Siti Rahmawati")
    await expect(block).to_contain_text("10:00–10:30")
    await expect(page.get_by_role("link", name="Book dr. Andi Wijaya at 10:00", exact=True)).to_have_count(0)
    # The other desk's calendar redrew itself (live region), no reload.
    await expect(watcher.locator("#calendar-grid a.block.session", has_text="Siti Rahmawati")).to_be_visible()

    await block.click()
    await expect(page.locator("#invoice-total")).to_have_text("IDR 150,000")
    await page.evaluate("window.stillTheSamePage = true")
    await page.get_by_label("Add an examination").select_option(label="Vaccination (IDR 400,000)")
    preview = page.locator("#bill-preview")
    await expect(preview).to_be_visible()
    await expect(preview.locator("#preview-total")).to_have_text("IDR 550,000")
    await expect(preview).to_contain_text("now IDR 150,000")
    await page.get_by_label("Quantity", exact=True).fill("2")
    await expect(preview.locator("#preview-total")).to_have_text("IDR 950,000")

    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator("#invoice-total")).to_have_text("IDR 950,000")
    await expect(page.locator("#flash")).to_contain_text("Added 2 × Vaccination")
    await expect(page.locator("#invoice")).to_contain_text("Vaccination")
    assert await page.evaluate("window.stillTheSamePage === true"), "the page reloaded"
