"""A Best Deal coupon at the front desk in a real browser against the running demo clinic: the receptionist types
the coupon's code, sees what it is and whose, picks the patient's visit, confirms, and the visit's invoice shows the
discount as a line saying how it was worked out."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import Branch, Examination
from booking_core.domain.actors import Actor
from booking_core.services import coupons
from tests.e2e.conftest import Stack, staff_page
from tests.e2e.test_queue_browser import book_today

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DESK = Actor(kind="staff", name="Reception", role="staff")


async def test_the_desk_checks_a_coupon_confirms_it_on_the_visit_and_the_invoice_shows_the_discount(
    browser: Browser, stack: Stack
) -> None:
    async with make_sessionmaker(stack.engine)() as db:
        visit = await book_today(
            db, "Lestari Wulandari", "dr. Andi Wijaya", "GP", "Consultation 1", time(16, 30), phone="+6281399990077"
        )
        branch = (await db.execute(select(Branch).where(Branch.id == visit.branch_id))).scalar_one()
        consultation = (await db.execute(select(Examination).where(Examination.code == "GP"))).scalar_one()
        today = datetime.now(ZoneInfo(branch.tz)).date()
    async with make_sessionmaker(stack.engine)() as db, db.begin():
        issued = await coupons.issue(
            db, actor=DESK, secret=stack.secret_key, patient_id=visit.patient_id,
            title="Best Deal: consultation", price_paid=Decimal("99000"), currency=branch.currency,
            valid_from=today - timedelta(days=1), valid_until=today + timedelta(days=30),
            examination_id=consultation.id, branch_id=branch.id,
        )  # fmt: skip

    page = await staff_page(browser, stack, "staff", path="/inbox/scanner")
    await page.get_by_label("Branch (this desk)").select_option(label=branch.name)
    await page.get_by_label("Check-in or coupon code").fill(issued.code.lower())
    await page.get_by_role("button", name="Check code").click()

    result = page.locator("[data-result]")
    await expect(result).to_have_attribute("data-result", "coupon_valid")
    await expect(result).to_contain_text("Best Deal: consultation")
    await expect(page.locator("#coupon-gives")).to_have_text("Pays one General consultation on the visit's invoice.")
    await expect(page.locator("#coupon-uses")).to_have_text("1 of 1")
    picker = page.get_by_label("Visit whose invoice gets the discount")
    await expect(picker).to_have_value(str(visit.id))  # her visit today, chosen for the desk
    await expect(picker.locator("option:checked")).to_contain_text("16:30 · dr. Andi Wijaya · General consultation")

    await page.get_by_role("button", name="Redeem on this visit").click()
    await expect(page.locator("[data-result]")).to_have_attribute("data-result", "coupon_redeemed")
    await expect(page.locator("#redeemed-on")).to_contain_text("Lestari Wulandari")
    await expect(page.locator("#coupon-uses")).to_have_text("0 of 1")

    await page.get_by_role("link", name="its invoice").click()
    await page.wait_for_url(f"**/inbox/sessions/{visit.id}**")
    invoice = page.locator("#invoice")
    coupon_line = invoice.locator(".inv-line", has_text="Coupon: Best Deal: consultation")
    await expect(coupon_line).to_contain_text("pays 1 × General consultation at")
    await expect(invoice.locator("tr", has_text="Coupons")).to_be_visible()
    await expect(page.locator("#invoice-total")).to_have_text("IDR 0")  # the consultation was all there was to pay
