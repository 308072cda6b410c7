"""Machinery for the fault tests: a fake Bot API that forgets a request whose caller died, the environment and
database of a test, and small waiting/reading helpers. The Redis they stop and the processes they kill come
from ``tests/servers.py``."""

from __future__ import annotations

import contextlib
import html
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.db.tables import OutboxMessage
from devtools.builders import Clinic
from devtools.fakes.control import Recorded
from devtools.fakes.telegram_api import FakeTelegram, running_fake_telegram

BOT_TOKEN = "424242:delivery-faults"
WEBHOOK_SECRET = "delivery-faults-secret"


# --- a fake Bot API that does not finish what a dead caller asked --------------------------------------------


@contextlib.asynccontextmanager
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API, served so that a request whose client goes away is cancelled before the fake answers it: a
    request cut off by a killed worker is never accepted, as by a provider that had not taken the message yet when
    the connection broke; it is recorded with status ``devtools.fakes.control.CUT_OFF``."""
    async with running_fake_telegram(cut_off=True) as fake:
        yield fake


def text_of(entry: Recorded) -> str:
    """The text of an accepted message: a sendMessage's text, a sendPhoto's caption."""
    return str(entry.params.get("text", entry.params.get("caption", "")))


def fault_env(env: dict[str, str], telegram: FakeTelegram, **extra: str) -> dict[str, str]:
    """The isolated database, Telegram pointed at the fake, a Redis prefix of this test's own."""
    return {
        **env,
        "FRONTDESK_REDIS_PREFIX": f"flt{secrets.token_hex(4)}",
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": telegram.base_url,
        **extra,
    }


# --- the database of a test ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(env: dict[str, str]) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine: AsyncEngine = make_engine(env["DATABASE_URL"], pool_size=2)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def outbox_rows(sessions: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with sessions() as db:
        return list((await db.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


# --- a patient on Telegram -----------------------------------------------------------------------------------

_update_ids = iter(range(800_000_000 + secrets.randbelow(10**8), 10**10))


async def patient_writes(http: aiohttp.ClientSession, base: str, chat_id: int, text: str, *, name: str) -> None:
    """Telegram delivers a private text message of ``chat_id`` to the webhook (the gateway answers 200)."""
    update_id = next(_update_ids)
    body = {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": chat_id, "is_bot": False, "first_name": name, "language_code": "en"},
            "chat": {"id": chat_id, "type": "private"},
            "date": int(datetime.now(UTC).timestamp()),
            "text": text,
        },
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    async with http.post(f"{base}/webhooks/telegram", json=body, headers=headers) as response:
        assert response.status == 200, await response.text()


def new_chat_id() -> int:
    return 900_000_000 + secrets.randbelow(10**8)


# --- a visitor on the website --------------------------------------------------------------------------------


def hidden(page: str, field: str) -> str:
    """The value of a hidden field of an HTML form."""
    match = re.search(rf'name="{field}" value="([^"]*)"', page)
    assert match, f"the page has no hidden field {field}"
    return html.unescape(match.group(1))


def booking_form(page: str, clinic: Clinic, *, name: str) -> dict[str, str]:
    """The public booking form as a visitor fills it in: a dental check-up at the clinic's branch in two days."""
    return {
        "csrf_token": hidden(page, "csrf_token"),
        "submission_id": hidden(page, "submission_id"),
        "lang": "en",
        "website": "",
        "name": name,
        "phone": f"0812{secrets.randbelow(10**8):08d}",
        "branch": str(clinic.branch.id),
        "examination": str(clinic.examinations["DENTAL"].id),
        "preferred_date": (datetime.now(UTC).date() + timedelta(days=2)).isoformat(),
        "preferred_time": "10:30",
    }
