"""A website visitor books a dental check-up through the chat widget in a real browser, and the lead is in the inbox.

Debian's Chromium through Playwright, a running gateway and worker (real processes), the demo clinic.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.e2e.conftest import Stack, lead_with_hold
from tests.e2e.webchat_steps import book_a_check_up_by_chat

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_a_visitor_books_through_the_chat_widget(stack: Stack, browser: Browser) -> None:
    page = await browser.new_page()
    await book_a_check_up_by_chat(stack, page)

    lead = await lead_with_hold(stack, "webchat")
    assert lead.status == "new" and lead.requested_start is not None
    await page.close()
