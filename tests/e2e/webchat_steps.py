"""A website visitor chatting a dental check-up booking through the demo page's widget, as the e2e tests need it."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from playwright.async_api import Page, expect

from channels.webchat.token import VisitorTokens
from tests.e2e.conftest import Stack, choose, last_reply


async def book_a_check_up_by_chat(
    stack: Stack, page: Page, *, after_reply: Callable[[int], Awaitable[None]] | None = None
) -> None:
    """Open the chat widget on ``page``, ask for a dental check-up and answer the bot (its buttons, a name, a phone
    number) until it says staff will confirm the request. ``after_reply(step)`` runs once each reply is shown."""
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
    for step in range(12):
        reply = await last_reply(stack, visitor, last)
        last = reply.id
        text, buttons = reply.payload["text"], reply.payload["buttons"]
        await expect(log).to_contain_text(text.splitlines()[0][:40])  # the reply reached the page (pub/sub)
        if after_reply is not None:
            await after_reply(step)
        if "Our staff will confirm it" in text:
            return
        if not buttons and ("phone" in text.lower() or "name" in text.lower()):
            answer = f"0812{secrets.randbelow(10**8):08d}" if "phone" in text.lower() else "Dewi Lestari"
            await box.fill(answer)
            await box.press("Enter")
            continue
        index = choose(buttons)
        assert index is not None, f"unexpected question: {text!r}"
        await dialog.get_by_role("button", name=buttons[index]["label"], exact=True).last.click()
    raise AssertionError("the booking did not finish in 12 steps")
