"""The chat widget in a real browser (Debian's Chromium through Playwright) against a running `frontdesk serve`.

A visitor opens the demo clinic page, opens the bubble with the keyboard, writes, sees the message acknowledged,
gets a reply delivered through the outbox and ``WebchatAdapter.send`` (Redis pub/sub), answers with a reply button,
closes with Escape, reloads and finds the conversation again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import ChannelIdentity, Conversation, Message
from booking_core.domain.messages import Button, OutboundMessage
from booking_core.services import outbox
from channels.webchat.adapter import WebchatAdapter
from channels.webchat.token import VisitorTokens
from tests.conftest import TEST_SECRET
from tests.servers import serving

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def gateway_url(child_env: dict[str, str]) -> Iterator[str]:
    """`frontdesk serve` as a real process; its PUBLIC_BASE_URL is where it listens (the widget's allowed origin)."""
    with serving(child_env) as base:
        yield base


async def _focused_in_widget(page: Page) -> dict[str, Any]:
    """What has focus inside the widget's shadow root (class, tag, aria-label), or {} if focus is elsewhere."""
    return await page.evaluate(  # type: ignore[no-any-return]
        """() => {
            const host = document.querySelector('[data-frontdesk-webchat]');
            const active = host && host.shadowRoot && host.shadowRoot.activeElement;
            return active ? {cls: active.className, tag: active.tagName, label: active.getAttribute('aria-label')} : {};
        }"""
    )


async def _tab_to_the_bubble(page: Page) -> None:
    for _ in range(15):
        await page.keyboard.press("Tab")
        if (await _focused_in_widget(page)).get("cls") == "bubble":
            return
    raise AssertionError("the chat bubble cannot be reached with Tab")


async def _deliver_reply(db: AsyncSession, redis: Redis, prefix: str, visitor_id: str) -> None:
    """A reply as the system sends one: an outbox row for the conversation, delivered by the web-chat adapter."""
    conversation = (
        await db.execute(
            select(Conversation)
            .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
            .where(ChannelIdentity.channel == "webchat", ChannelIdentity.external_id == visitor_id)
        )
    ).scalar_one()
    await db.commit()
    reply = OutboundMessage(
        channel="webchat",
        recipient=visitor_id,
        text="Hello from Klinik Sehat! When would you like to come?",
        buttons=(Button("Tomorrow morning", "when:tomorrow-am"), Button("Next week", "when:next-week")),
    )
    async with db.begin():
        outbox_id = await outbox.add(
            db, reply, conversation_id=conversation.id, identity_id=conversation.identity_id, author="staff"
        )
    assert outbox_id is not None
    outcome = await outbox.deliver(
        db, outbox_id, outbox.Sending({"webchat": WebchatAdapter(redis=redis, prefix=prefix)})
    )
    assert outcome.status == "sent", outcome


async def test_a_visitor_chats_with_the_keyboard_alone_and_finds_the_conversation_after_a_reload(
    gateway_url: str, browser: Browser, db: AsyncSession, child_env: dict[str, str]
) -> None:
    page = await browser.new_page()
    await page.goto(f"{gateway_url}/webchat/demo?lang=en")

    # Open the bubble with the keyboard: the dialog opens and the message box has focus.
    await _tab_to_the_bubble(page)
    bubble = page.get_by_role("button", name="Chat with the clinic")
    await expect(bubble).to_have_attribute("aria-expanded", "false")
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Chat with us")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_have_attribute("aria-modal", "true")
    await expect(bubble).to_have_attribute("aria-expanded", "true")
    assert (await _focused_in_widget(page))["tag"] == "INPUT"

    # Type and send with Enter: the message shows, then is acknowledged by the server.
    await page.keyboard.type("Hi, can I see a dentist this week?")
    await page.keyboard.press("Enter")
    log = dialog.get_by_role("log")
    mine = log.locator(".msg.in", has_text="Hi, can I see a dentist this week?")
    await expect(mine).to_have_attribute("data-state", "acked")
    await expect(mine).to_contain_text("Sent")

    # The visitor's token is in localStorage; the reply goes to that visitor through Redis pub/sub.
    host = gateway_url.removeprefix("http://")
    token = await page.evaluate(f"() => localStorage.getItem('frontdesk.webchat.token:{host}')")
    visitor_id = VisitorTokens(TEST_SECRET).read(token)
    assert visitor_id is not None
    redis = Redis.from_url(child_env["REDIS_URL"])
    try:
        await _deliver_reply(db, redis, child_env["FRONTDESK_REDIS_PREFIX"], visitor_id)
    finally:
        await redis.aclose()
    await expect(log).to_contain_text("Hello from Klinik Sehat! When would you like to come?")

    # Reply options are real buttons: focus one and press Space.
    choice = dialog.get_by_role("button", name="Tomorrow morning")
    await expect(choice).to_be_enabled()
    await choice.focus()
    await page.keyboard.press("Space")
    answer = log.locator(".msg.in", has_text="Tomorrow morning")
    await expect(answer).to_have_attribute("data-state", "acked")
    await expect(choice).to_be_disabled()
    stored = (
        await db.execute(
            select(Message).where(Message.channel == "webchat", Message.text == "Tomorrow morning").order_by(Message.id)
        )
    ).scalars()
    assert [m.payload["button_data"] for m in stored][-1:] == ["when:tomorrow-am"]

    # Tab stays inside the open dialog; Escape closes it and gives focus back to the bubble.
    for _ in range(8):
        await page.keyboard.press("Tab")
        assert (await _focused_in_widget(page)).get("cls") != "bubble"
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    assert (await _focused_in_widget(page)).get("cls") == "bubble"

    # After a reload, the same visitor sees the whole conversation again.
    await page.reload()
    await _tab_to_the_bubble(page)
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Chat with us")
    log = dialog.get_by_role("log")
    await expect(log.locator(".msg")).to_have_count(3)
    await expect(log.locator(".msg").nth(0)).to_contain_text("Hi, can I see a dentist this week?")
    await expect(log.locator(".msg").nth(1)).to_contain_text("Hello from Klinik Sehat!")
    await expect(log.locator(".msg").nth(2)).to_contain_text("Tomorrow morning")
    reloaded_token = await page.evaluate(f"() => localStorage.getItem('frontdesk.webchat.token:{host}')")
    assert VisitorTokens(TEST_SECRET).read(reloaded_token) == visitor_id
    await page.close()
