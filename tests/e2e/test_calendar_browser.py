"""The calendar and the session page in a real browser against the running demo clinic: the front desk books a
free slot from the calendar (another open calendar shows it by itself), then adds an examination on the session
page and watches the invoice change without the page reloading; a time that cannot be booked says why on hover,
and a booking refused because a colleague was quicker leaves the desk on the calendar, still live."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import Branch, Doctor
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


async def test_a_refused_booking_keeps_the_desk_on_a_live_calendar_and_blocked_times_say_why(
    browser: Browser, stack: Stack
) -> None:
    async with make_sessionmaker(stack.engine)() as db:
        kemang = (await db.execute(select(Branch).where(Branch.code == "KMG"))).scalar_one()
        andi = (await db.execute(select(Doctor).where(Doctor.name == "dr. Andi Wijaya"))).scalar_one()
    tuesday = next_weekday(1, hour=10).astimezone(ZoneInfo("Asia/Jakarta")).date()
    path = f"/inbox/calendar?branch={kemang.id}&day={tuesday.isoformat()}&view=doctors"
    desk = await staff_page(browser, stack, "staff", path="/inbox/calendar")
    await desk.goto(path)
    await expect(desk.locator("html[data-live=on]")).to_have_count(1)
    andi_column = desk.locator(f'#calendar-grid [data-column="doctor-{andi.id}"]')
    # dr. Andi leaves at 16:00: the cell is not a link and says why when pointed at.
    after_hours = andi_column.locator('.slot.off[data-time="16:00"]')
    await expect(after_hours).to_have_attribute("title", "16:00 · Not bookable: doctor not attending")
    await after_hours.hover()

    await desk.get_by_role("link", name="Book dr. Andi Wijaya at 11:00", exact=True).click()
    await desk.locator("#book").get_by_label("New patient's name").fill("Dewi Anggraini")
    await desk.locator("#book").get_by_label("Phone", exact=True).fill("081377788899")

    colleague = await staff_page(browser, stack, "owner", path="/inbox/calendar")  # quicker, at the other desk
    await colleague.goto(path)
    await colleague.get_by_role("link", name="Book dr. Andi Wijaya at 11:00", exact=True).click()
    await colleague.locator("#book").get_by_label("New patient's name").fill("Rudi Hartono")
    await colleague.locator("#book").get_by_label("Phone", exact=True).fill("081377788800")
    await colleague.locator("#book").get_by_role("button", name="Book", exact=True).click()
    await expect(colleague.locator("#flash")).to_contain_text("Booked Rudi Hartono on")

    await desk.locator("#book").get_by_role("button", name="Book", exact=True).click()
    await expect(desk.locator("#book-error")).to_contain_text("That time has just been taken")
    assert re.search(r"/inbox/calendar\?branch=\d+&day=", desk.url), desk.url  # the calendar, not the POST's URL
    await expect(desk.locator("#book").get_by_label("New patient's name")).to_have_value("Dewi Anggraini")
    await expect(desk.locator("#calendar-grid a.block.session", has_text="Rudi Hartono")).to_be_visible()

    # Still live: the colleague's next booking appears on this desk's calendar without a reload.
    await desk.evaluate("window.stillTheSamePage = true")
    await colleague.get_by_role("link", name="Book dr. Andi Wijaya at 14:00", exact=True).click()
    await colleague.locator("#book").get_by_label("New patient's name").fill("Agus Salim")
    await colleague.locator("#book").get_by_label("Phone", exact=True).fill("081377788811")
    await colleague.locator("#book").get_by_role("button", name="Book", exact=True).click()
    await expect(desk.locator("#calendar-grid a.block.session", has_text="Agus Salim")).to_be_visible()
    assert await desk.evaluate("window.stillTheSamePage === true"), "the calendar reloaded"

    # Taking one of the next free times books it and stays on the calendar.
    await desk.locator("#book .alternatives button").first.click()
    await expect(desk.locator("#flash")).to_contain_text("Booked Dewi Anggraini on")
    assert "/inbox/calendar?" in desk.url, desk.url
