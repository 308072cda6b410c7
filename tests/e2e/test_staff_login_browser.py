"""Staff sign in to the web app in a real browser: by typing the owner's login code, and never with a used one."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.e2e.conftest import Stack, login_code, staff_page

pytestmark = pytest.mark.e2e


async def test_a_receptionist_signs_in_by_typing_the_login_code(browser: Browser, stack: Stack) -> None:
    page = await staff_page(browser, stack, "owner", path="/inbox/staff")
    await expect(page.get_by_role("heading", name="Staff & login codes")).to_be_visible()
    # The owner makes a code for a new receptionist; it is shown once, as a QR and as text.
    await page.get_by_label("Name").fill("Rina <b>front desk</b>")
    await page.get_by_label("Role").select_option("staff")
    await page.get_by_role("button", name="Create code").click()
    await expect(page.get_by_role("heading", name="Login Code for Clinic App")).to_be_visible()
    await expect(page.locator("#issued svg")).to_be_visible()
    code = (await page.locator("#issued-code").inner_text()).strip()
    await expect(page.locator("#issued")).to_contain_text("Rina <b>front desk</b>")  # escaped, shown as typed

    desk = await (await browser.new_context(base_url=stack.base)).new_page()
    await desk.goto("/inbox/staff")
    await expect(desk).to_have_url(f"{stack.base}/login?next=/inbox/staff")
    await desk.get_by_label("Login code").fill(code.lower().replace("-", ""))
    await desk.get_by_role("button", name="Sign in").click()
    await expect(desk.get_by_text("A staff may not open this page.")).to_be_visible()  # signed in, but not a manager
    me = await (await desk.request.get("/api/v1/auth/me")).json()
    assert me["name"] == "Rina <b>front desk</b>" and me["role"] == "staff"

    # The same code a second time, elsewhere: refused with a clear message.
    other = await (await browser.new_context(base_url=stack.base)).new_page()
    await other.goto("/login")
    await other.get_by_label("Login code").fill(code)
    await other.get_by_role("button", name="Sign in").click()
    await expect(other.get_by_role("alert")).to_contain_text("Codes work once and expire")

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page).to_have_url(f"{stack.base}/login")
    assert (await page.request.get("/api/v1/auth/me")).status == 401


async def test_signing_in_from_a_scanned_link_needs_a_press(browser: Browser, stack: Stack) -> None:
    code = await login_code(stack.engine, stack.secret_key, "admin")
    page = await (await browser.new_context(base_url=stack.base)).new_page()
    await page.goto(f"/login?code={code}&next=/inbox/staff")
    await expect(page.get_by_label("Login code")).to_have_value(code)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Staff & login codes")).to_be_visible()
