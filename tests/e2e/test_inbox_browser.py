"""The front desk's inbox in a real browser: a patient's Telegram message appears in the open inbox by itself and is
converted into a session with the slot picker; a website visitor books through the chat widget and staff see the
request next to the Telegram and WhatsApp ones. Real gateway and worker processes, the fake provider APIs, the
demo clinic, Debian's Chromium.

With ``FRONTDESK_SCREENSHOTS=1`` the tests also save the README's screenshots under docs/screenshots/.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import Lead, Session
from tests.e2e.conftest import (
    AUTH,
    SECRET,
    SENDER,
    SID,
    Stack,
    last_reply,
    lead_with_hold,
    staff_page,
)
from tests.e2e.webchat_steps import book_a_check_up_by_chat
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
UPDATE = json.loads((ROOT / "tests/fixtures/telegram/text_message.json").read_text())


async def _shoot(page: Page, name: str) -> None:
    if os.environ.get("FRONTDESK_SCREENSHOTS"):
        folder = ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(folder / f"{name}.png"), full_page=False)


async def _front_desk(browser: Browser, stack: Stack, name: str) -> Page:
    """The receptionist's browser, signed in with a login code made for them by name, at the inbox."""
    from booking_core.domain.actors import SYSTEM
    from booking_core.services import auth

    async with make_sessionmaker(stack.engine)() as db, db.begin():
        issued = await auth.issue_login_code(db, secret=stack.secret_key, role="staff", name=name, created_by=SYSTEM)
    context = await browser.new_context(base_url=stack.base, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto("/login?next=/inbox")
    await page.get_by_label("Login code").fill(issued.code)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/inbox")
    return page


async def _live(page: Page) -> None:
    """The page's live-update stream is connected (changes from now on reach it)."""
    await page.wait_for_function("document.documentElement.dataset.live === 'on'")


async def _telegram(stack: Stack, text: str, *, first: str, last: str) -> int:
    """A patient writes to the clinic's bot: the real Update shape, posted with the webhook's secret header."""
    chat_id = 6_100_000_000 + secrets.randbelow(10**8)
    update: dict[str, Any] = copy.deepcopy(UPDATE)
    update["update_id"] = 800_000_000 + secrets.randbelow(10**8)
    message = update["message"]
    message["message_id"] = secrets.randbelow(10**6)
    message["date"] = int(datetime.now(UTC).timestamp())
    message["text"] = text
    for who in (message["from"], message["chat"]):
        who.update(id=chat_id, first_name=first, last_name=last, username=f"{first.lower()}_{chat_id % 10000}")
    message["from"]["language_code"] = "en"
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    url = f"{stack.base}/webhooks/telegram"
    async with aiohttp.ClientSession() as http, http.post(url, json=update, headers=headers) as response:
        assert response.status == 200, await response.text()
    return chat_id


async def _whatsapp(stack: Stack, text: str, *, name: str) -> str:
    phone = f"+62813{secrets.randbelow(10**8):08d}"
    form = {
        "MessageSid": f"SM{secrets.token_hex(16)}",
        "AccountSid": SID,
        "From": f"whatsapp:{phone}",
        "To": SENDER,
        "Body": text,
        "ProfileName": name,
        "WaId": phone.lstrip("+"),
        "NumMedia": "0",
    }
    url = f"{stack.base}/webhooks/whatsapp"
    headers = {"X-Twilio-Signature": RequestValidator(AUTH).compute_signature(url, form)}
    async with aiohttp.ClientSession() as http, http.post(url, data=form, headers=headers) as response:
        assert response.status == 200, await response.text()
    return phone


async def _lead_of_chat(stack: Stack, channel: str, name: str) -> Lead:
    async def found() -> Lead | None:
        async with make_sessionmaker(stack.engine)() as db:
            rows = await db.execute(select(Lead).where(Lead.channel == channel, Lead.contact_name.contains(name)))
            return rows.scalars().first()

    return await eventually(found)  # type: ignore[no-any-return]


async def test_a_telegram_message_appears_in_the_open_inbox_and_is_converted_with_the_slot_picker(
    browser: Browser, stack: Stack
) -> None:
    inbox = await staff_page(browser, stack, "staff", path="/inbox")
    await expect(inbox.get_by_role("heading", name="Inbox")).to_be_visible()
    await _live(inbox)
    chat_id = await _telegram(stack, "Hi, I'd like a dental check-up this week", first="Ayu", last="Kartika")

    row = inbox.locator("#lead-list .lead-row", has_text="Ayu")  # no reload: the live region brought it
    await expect(row).to_contain_text("Telegram")
    await expect(row).to_contain_text("New")
    lead = await _lead_of_chat(stack, "telegram", "Ayu")
    await row.get_by_role("link").click()
    await inbox.wait_for_url(f"**/inbox/leads/{lead.id}")
    await expect(inbox.locator("#thread")).to_contain_text("Hi, I'd like a dental check-up this week")
    answer = await last_reply(stack, str(chat_id), 0)  # the bot answers; the open page shows it by itself
    await expect(inbox.locator("#thread .msg.by-bot").first).to_contain_text(answer.payload["text"].splitlines()[0])

    # The slot picker: choose the examination; the free times come from live availability.
    await inbox.get_by_label("Examination").select_option(label="Dental check-up")
    await inbox.wait_for_url("**exam=**")
    first_time = inbox.locator("#convert-form .slot-grid label").first
    await expect(first_time).to_be_visible()
    await first_time.click()
    await inbox.get_by_role("button", name="Convert to session").click()
    await expect(inbox.locator("#flash")).to_contain_text("Booked:")
    await expect(inbox.locator("#status-badge")).to_have_text("Booked")
    session_link = inbox.get_by_role("link", name="Open the session")
    await expect(session_link).to_be_visible()
    async with make_sessionmaker(stack.engine)() as db:
        session = (await db.execute(select(Session).where(Session.lead_id == lead.id))).scalar_one()
    assert await session_link.get_attribute("href") == f"/inbox/sessions/{session.id}"
    await expect(inbox.locator("#session-card")).to_contain_text(session.booking_code)


async def test_a_web_chat_booking_reaches_the_inbox_next_to_telegram_and_whatsapp(
    browser: Browser, stack: Stack
) -> None:
    inbox = await _front_desk(browser, stack, "Rina (front desk)")
    await _live(inbox)
    await _telegram(stack, "Halo, saya mau periksa gigi hari Selasa pagi", first="Siti", last="Rahmawati")
    await _whatsapp(stack, "Apakah dr. Maya praktik hari Sabtu?", name="Budi Hartono")
    await expect(inbox.locator("#lead-list .lead-row")).to_have_count(2)

    visitor = await browser.new_page()

    async def shoot_the_third_reply(step: int) -> None:
        if step == 2:
            await _shoot(visitor, "webchat")

    await book_a_check_up_by_chat(stack, visitor, after_reply=shoot_the_third_reply)
    lead = await lead_with_hold(stack, "webchat")

    row = inbox.locator("#lead-list .lead-row", has_text="Dewi Lestari")
    await expect(row).to_contain_text("Web chat")
    await expect(row).to_contain_text("Dental check-up")
    await expect(inbox.locator("#lead-list .lead-row")).to_have_count(3)
    await expect(inbox.locator("#lead-list")).to_contain_text("WhatsApp")
    await _shoot(inbox, "inbox")

    await row.get_by_role("link").click()
    await inbox.wait_for_url(f"**/inbox/leads/{lead.id}")
    await expect(inbox.locator("#thread")).to_contain_text("I need a dental check-up")
    await expect(inbox.get_by_text("Held for this lead")).to_be_visible()
    await _shoot(inbox, "lead")
    await visitor.close()
