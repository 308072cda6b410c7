"""The owner changes the clinic's settings in a real browser, and the running clinic follows at once."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import Branch, Examination
from tests.e2e.conftest import Stack, staff_page

pytestmark = pytest.mark.e2e
JAKARTA = ZoneInfo("Asia/Jakarta")


async def _free_times(page: Page, branch_id: int, exam_id: int, day: datetime) -> list[str]:
    """The free GP times on ``day`` from the staff API (the same call the booking screens make)."""
    query = urlencode({"branch_id": branch_id, "examination_id": exam_id,
                       "from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat()})  # fmt: skip
    response = await page.request.get(f"/api/v1/availability?{query}")
    assert response.ok, await response.text()
    return [slot["start"] for slot in (await response.json())["slots"]]


async def test_closing_a_branch_on_saturdays_empties_its_saturdays(browser: Browser, stack: Stack) -> None:
    async with make_sessionmaker(stack.engine)() as db:
        kemang = (await db.execute(select(Branch).where(Branch.code == "KMG"))).scalar_one()
        gp = (await db.execute(select(Examination).where(Examination.code == "GP"))).scalar_one()
    today = datetime.now(JAKARTA).date()
    saturday = datetime.combine(today + timedelta(days=(5 - today.weekday()) % 7 or 7), time(0), JAKARTA)

    page = await staff_page(browser, stack, "owner", path=f"/inbox/settings/hours?branch={kemang.id}")
    await expect(page.get_by_role("heading", name="Branch hours")).to_be_visible()
    assert await _free_times(page, kemang.id, gp.id, saturday)  # dr. Andi sees patients on Saturday mornings

    saturday_open = page.locator("#open-5")
    await expect(saturday_open).to_be_checked()
    await saturday_open.uncheck()
    await page.get_by_role("button", name="Save opening hours").click()
    await expect(page.locator("#flash")).to_contain_text("Opening hours saved")
    await expect(page.locator("#open-5")).not_to_be_checked()
    assert await _free_times(page, kemang.id, gp.id, saturday) == []

    # A mistake is named next to its day and changes nothing.
    await page.locator("#starts-0-0").fill("21:00")
    await page.get_by_role("button", name="Save opening hours").click()
    await expect(page.locator("#err-day-0")).to_have_text("Monday: 21:00 is not before 20:00.")
    await page.goto(f"/inbox/settings/hours?branch={kemang.id}")
    await expect(page.locator("#starts-0-0")).to_have_value("08:00")


async def test_rewording_the_reminder_with_a_preview_and_going_back(browser: Browser, stack: Stack) -> None:
    page = await staff_page(browser, stack, "owner", path="/inbox/settings/messages")
    await page.get_by_role("link", name="Visit reminder (see Reminders for when)").click()
    await expect(page.get_by_role("heading", name="Visit reminder")).to_be_visible()

    text = page.get_by_label("Your text")
    await text.fill("Hi {{ name }}! {{ examination }} with {{ doctor }} on {{ start|when }}. Code {{ code }}.")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#preview")).to_have_text(
        "Hi Siti! Dental check-up with drg. Sari Lestari on Tue 1 Dec, 09:30. Code K7MX2PQA."
    )
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.locator("#flash")).to_contain_text("Saved: the next messages use this text.")
    await expect(page.get_by_text("Clinic's own text")).to_be_visible()

    # A value the reminder does not have is refused with the ones it does.
    await page.get_by_label("Your text").fill("Hi {{ patient }}")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("This message has no value {{ patient }}")

    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Reset to default").click()
    await expect(page.locator("#flash")).to_contain_text("Back to the standard text.")
    await expect(page.get_by_label("Your text")).to_have_value(
        "Hello{% if name %} {{ name }}{% endif %}, a reminder of your visit"
        '{% if hours %} in about {{ hours }} {{ "hour" if hours == 1 else "hours" }}{% endif %}: '
        "{{ examination }} with {{ doctor }}, {{ start|when }} at {{ branch }}. Your booking code is {{ code }}.\n"
        "Need another time? Use the options below."
    )
