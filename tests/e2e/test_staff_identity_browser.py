"""In a real browser: a login code made from a member's row signs in that member, and a page left open on a device
that was signed out everywhere goes to the sign-in page by itself (its live updates end with the session)."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.e2e.conftest import Stack, staff_page

pytestmark = pytest.mark.e2e


async def test_a_code_from_a_members_row_signs_in_that_member(browser: Browser, stack: Stack) -> None:
    desk = await staff_page(browser, stack, "staff", path="/inbox")
    me = await (await desk.request.get("/api/v1/auth/me")).json()
    owner = await staff_page(browser, stack, "owner", path="/inbox/staff")
    await owner.get_by_role("button", name=f"New login code for {me['name']}").click()
    await expect(owner.locator("#issued")).to_contain_text(me["name"])
    code = (await owner.locator("#issued-code").inner_text()).strip()

    phone = await (await browser.new_context(base_url=stack.base)).new_page()
    await phone.goto("/login?next=/inbox")
    await phone.get_by_label("Login code").fill(code)
    await phone.get_by_role("button", name="Sign in").click()
    await phone.wait_for_url("**/inbox")
    again = await (await phone.request.get("/api/v1/auth/me")).json()
    assert again["id"] == me["id"]


async def test_an_open_page_of_a_device_signed_out_everywhere_goes_to_sign_in(browser: Browser, stack: Stack) -> None:
    desk = await staff_page(browser, stack, "staff", path="/inbox")
    await expect(desk.locator("html")).to_have_attribute("data-live", "on")  # its live updates are connected
    me = await (await desk.request.get("/api/v1/auth/me")).json()
    owner = await staff_page(browser, stack, "owner", path="/inbox/staff")
    owner.on("dialog", lambda dialog: dialog.accept())  # "Sign … out on every device?"
    row = owner.get_by_role("row").filter(has_text=me["name"])
    await row.get_by_role("button", name="Sign out everywhere").click()
    await expect(owner.get_by_text("Signed out of 1 device")).to_be_visible()
    await expect(desk).to_have_url(f"{stack.base}/login?next=%2Finbox", timeout=30_000)
