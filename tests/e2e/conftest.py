"""A running Frontdesk for end-to-end chat tests: a fresh database with the demo clinic, `frontdesk serve` and
`frontdesk worker` as real processes, the fake Telegram and Twilio APIs, and helpers that chat like a patient."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.db.tables import Lead, OutboxMessage, SlotHold
from booking_core.services.demo import seed_demo
from devtools import harness
from devtools.fakes.telegram_api import running_fake_telegram
from devtools.fakes.twilio_api import running_fake_twilio
from gateway.migrate import upgrade
from tests import servers
from tests.waiting import eventually

CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by `make test`; never `playwright install`
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "424242:e2e-chat-booking"
SECRET = "e2e-webhook-secret"
SID, AUTH = "AC" + "1" * 32, "e2e-auth-token"
SENDER = "whatsapp:+14155238886"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@dataclass
class Stack:
    base: str
    engine: AsyncEngine
    telegram: Any
    twilio: Any
    secret_key: str


@pytest.fixture
async def stack(backing: harness.Backing, child_env: dict[str, str]) -> AsyncIterator[Stack]:
    name = harness.new_name("frontdesk_e2e_chat")
    await harness.create_database(backing.admin_url, name)
    url = backing.database_url(name).replace("postgresql://", "postgresql+asyncpg://")
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url, pool_size=2)
    async with make_sessionmaker(engine)() as db, db.begin():
        await seed_demo(db)
    port = harness.free_port()
    async with running_fake_telegram(0) as telegram, running_fake_twilio(0, accounts={SID: AUTH}) as twilio:
        env = dict(
            child_env,
            DATABASE_URL=url,
            PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            FRONTDESK_REDIS_PREFIX=f"e2e{secrets.token_hex(3)}",
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_WEBHOOK_SECRET=SECRET,
            TELEGRAM_API_URL=telegram.base_url,
            TWILIO_ACCOUNT_SID=SID,
            TWILIO_AUTH_TOKEN=AUTH,
            TWILIO_WHATSAPP_FROM=SENDER,
            TWILIO_API_URL=twilio.base_url,
        )
        gateway, worker = servers.start(env, "serve", "--port", str(port)), servers.start(env, "worker")
        try:
            await asyncio.to_thread(
                harness.wait_for_http, f"http://127.0.0.1:{port}/health", timeout=60, process=gateway.popen
            )
            yield Stack(f"http://127.0.0.1:{port}", engine, telegram, twilio, env["SECRET_KEY"])
        finally:
            await asyncio.gather(gateway.stop_async(), worker.stop_async())
            await engine.dispose()
            await harness.drop_database(backing.admin_url, name)


async def last_reply(stack: Stack, recipient: str, after: int) -> OutboxMessage:
    """The bot's newest planned reply to ``recipient`` once it is sent (and so reached the fake API)."""

    async def sent() -> OutboxMessage | None:
        async with make_sessionmaker(stack.engine)() as db:
            rows = (
                (
                    await db.execute(
                        select(OutboxMessage)
                        .where(OutboxMessage.recipient == recipient, OutboxMessage.id > after)
                        .order_by(OutboxMessage.id)
                    )
                )
                .scalars()
                .all()
            )
        if rows and all(r.status == "sent" for r in rows):
            return rows[-1]
        return None

    return await eventually(sent)  # type: ignore[no-any-return]


def choose(buttons: list[dict[str, str]]) -> int | None:
    """Which offered button a patient who takes the first free option presses (index), if any."""
    for prefix in ("menu:book", "cf:yes", "br:", "dr:", "day:", "t:"):
        for index, button in enumerate(buttons):
            if button["data"].startswith(prefix):
                return index
    return None


async def converse(stack: Stack, recipient: str, say: Callable[[str | None, dict[str, str] | None, int], Any]) -> None:
    """Book the first free dental check-up: answer every question the way a hurried patient would."""
    last = 0
    await say("I need a dental check-up", None, 0)
    for _ in range(12):
        reply = await last_reply(stack, recipient, last)
        last = reply.id
        text, buttons = reply.payload["text"], reply.payload["buttons"]
        if "Our staff will confirm it" in text or "Kami akan" in text:
            return
        if "phone" in text.lower() and not buttons:
            await say("0812-3456-7890", None, 0)
            continue
        if "name" in text.lower() and not buttons:
            await say("Dewi Lestari", None, 0)
            continue
        index = choose(buttons)
        assert index is not None, f"the bot asked something unexpected: {text!r} {buttons}"
        await say(None, buttons[index], index + 1)
    raise AssertionError("the booking did not finish in 12 steps")


async def lead_with_hold(stack: Stack, channel: str) -> Lead:
    async def found() -> Lead | None:
        async with make_sessionmaker(stack.engine)() as db:
            lead = (
                await db.execute(select(Lead).where(Lead.channel == channel, Lead.hold_id.is_not(None)))
            ).scalar_one_or_none()
            if lead is not None:
                hold = await db.get(SlotHold, lead.hold_id)
                assert hold is not None and hold.status == "active"
            return lead

    return await eventually(found)  # type: ignore[no-any-return]


async def login_code(engine: AsyncEngine, secret_key: str, role: str = "staff", *, branch_id: int | None = None) -> str:
    """A fresh one-time login code in the stack's database (what the owner's "Login Code" page would show)."""
    from booking_core.domain.actors import SYSTEM
    from booking_core.services import auth

    async with make_sessionmaker(engine)() as db, db.begin():
        issued = await auth.issue_login_code(
            db, secret=secret_key, role=role, name=f"E2E {role} {secrets.token_hex(2)}",  # type: ignore[arg-type]
            branch_id=branch_id, created_by=SYSTEM,
        )  # fmt: skip
    return issued.code


async def staff_page(browser: Browser, stack: Stack, role: str = "staff", *, path: str = "/inbox") -> Page:
    """A browser tab signed in to the staff app by typing a login code at /login, then opened at ``path``."""
    context = await browser.new_context(base_url=stack.base, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"/login?next={path}")
    await page.get_by_label("Login code").fill(await login_code(stack.engine, stack.secret_key, role))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**{path}")
    return page
