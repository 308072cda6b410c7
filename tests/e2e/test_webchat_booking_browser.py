"""A website visitor books a dental check-up through the chat widget in a real browser, and the lead is in the inbox.

Debian's Chromium through Playwright, a running gateway and worker (real processes), the demo clinic.
"""

from __future__ import annotations

import secrets

import pytest
from playwright.async_api import Browser, expect

from channels.webchat.token import VisitorTokens
from tests.e2e.conftest import Stack, choose, last_reply, lead_with_hold

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_a_visitor_books_through_the_chat_widget(stack: Stack, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(f"{stack.base}/webchat/demo?lang=en")
    await page.get_by_role("button", name="Chat with the clinic").click()
    dialog = page.get_by_role("dialog", name="Chat with us")
    await expect(dialog).to_be_visible()
    box = dialog.get_by_role("textbox")
    await box.fill("I need a dental check-up")
    await box.press("Enter")
    log = dialog.get_by_role("log")
    await expect(log.locator(".msg.in", has_text="I need a dental check-up")).to_have_attribute("data-state", "acked")

    host = stack.base.removeprefix("http://")
    token = await page.evaluate(f"() => localStorage.getItem('frontdesk.webchat.token:{host}')")
    visitor = VisitorTokens(stack.secret_key).read(token)
    assert visitor is not None
    last = 0
    for _ in range(12):
        reply = await last_reply(stack, visitor, last)
        last = reply.id
        text, buttons = reply.payload["text"], reply.payload["buttons"]
        await expect(log).to_contain_text(text.splitlines()[0][:40])  # the reply reached the page (pub/sub)
        if "Our staff will confirm it" in text:
            break
        if not buttons and ("phone" in text.lower() or "name" in text.lower()):
            answer = f"0812{secrets.randbelow(10**8):08d}" if "phone" in text.lower() else "Dewi Lestari"
            await box.fill(answer)
            await box.press("Enter")
            continue
        index = choose(buttons)
        assert index is not None, f"unexpected question: {text!r}"
        await dialog.get_by_role("button", name=buttons[index]["label"], exact=True).last.click()
    else:
        raise AssertionError("the booking did not finish in 12 steps")

    lead = await lead_with_hold(stack, "webchat")
    assert lead.status == "new" and lead.requested_start is not None
    await page.close()
