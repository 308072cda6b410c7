"""The Content-Security-Policy blocks nothing of our own: every page's scripts, styles, camera, event stream and the
chat widget's websocket still work in a real browser, and the browser reports no violation anywhere."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from tests.e2e.conftest import Stack, staff_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

STAFF_PAGES = ("/inbox", "/inbox/queue", "/inbox/scanner", "/inbox/calendar", "/inbox/settings", "/inbox/staff")


def watch(page: Page, problems: list[str]) -> None:
    """Collect what the browser refused (CSP) and any script error on ``page``."""

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            problems.append(f"{page.url}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))


async def test_no_page_trips_its_own_policy(browser: Browser, stack: Stack) -> None:
    problems: list[str] = []

    visitor = await (await browser.new_context(base_url=stack.base)).new_page()
    watch(visitor, problems)
    # The chat widget: its script builds the window in the page and talks over the websocket.
    await visitor.goto("/webchat/demo?lang=en")
    await visitor.get_by_role("button", name="Chat with the clinic").click()
    dialog = visitor.get_by_role("dialog", name="Chat with us")
    await dialog.get_by_role("textbox").fill("Halo, ada dokter gigi?")
    await visitor.keyboard.press("Enter")
    await expect(dialog.locator(".msg.in", has_text="Halo, ada dokter gigi?")).to_have_attribute("data-state", "acked")
    for path in ("/book", "/queue"):
        await visitor.goto(path)
        await visitor.wait_for_load_state("load")

    owner = await staff_page(browser, stack, "owner", path="/inbox")
    watch(owner, problems)
    for path in STAFF_PAGES:
        await owner.goto(path)
        await owner.wait_for_load_state("load")
    # The live inbox: its event stream connects (inbox.js marks the page once it does).
    await owner.goto("/inbox")
    await expect(owner.locator("html")).to_have_attribute("data-live", "on")
    # The appointments' doctor switch applies at once (a listener in inbox.js, no inline handler).
    await owner.goto("/inbox/appointments")
    await owner.get_by_role("switch").check()
    await owner.wait_for_url("**/inbox/appointments?*view=doctors*")

    assert problems == []
