"""Staff retrying a failed message give it a fresh set of attempts: a provider still having a bad minute gets the
whole backoff again instead of failing the message at once, and the last error stays on record."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, JobFailure, OutboxMessage
from booking_core.domain.messages import OutboundMessage
from booking_core.services import outbox
from channels.telegram.adapter import TelegramAdapter
from tests.integration.telegram_bot import Bot

SignIn = Callable[..., Awaitable[dict[str, str]]]
Sessions = async_sessionmaker[AsyncSession]


async def _deliver_when_due(sessions: Sessions, outbox_id: int, adapter: TelegramAdapter) -> outbox.Outcome:
    """One delivery attempt as the worker makes it once the row's retry time has come (without waiting for it)."""
    async with sessions() as db:
        row = await db.get(OutboxMessage, outbox_id)
        assert row is not None
        due = max(datetime.now(UTC), row.next_attempt_at) + timedelta(milliseconds=1)
    async with sessions() as db:
        return await outbox.deliver(db, outbox_id, outbox.Sending({"telegram": adapter}), now=due)


async def test_a_retried_message_gets_a_fresh_set_of_attempts_and_survives_one_more_provider_error(
    client: TestClient[object, object],
    sessionmaker: Sessions,
    sign_in: SignIn,
    bot: Bot,
) -> None:
    fake, adapter = bot.fake, bot.adapter
    chat = 5_100_000_000 + secrets.randbelow(10**8)
    text = f"Your visit on Tuesday at 10:00 is confirmed (ref {secrets.token_hex(3)})"
    async with sessionmaker() as db, db.begin():
        outbox_id = await outbox.add(db, OutboundMessage(channel="telegram", recipient=str(chat), text=text))
    assert outbox_id is not None
    fake.fail_next(None, status=502, method="sendMessage")  # Telegram is down for a good while
    outcomes = [await _deliver_when_due(sessionmaker, outbox_id, adapter) for _ in range(outbox.MAX_ATTEMPTS)]
    assert [o.status for o in outcomes] == ["retry"] * (outbox.MAX_ATTEMPTS - 1) + ["failed"]
    headers = await sign_in("owner")

    response = await client.post(f"/api/v1/failures/{outbox_id}/retry", headers=headers)

    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["status"], body["attempts"], body["retry"]) == ("pending", outbox.MAX_ATTEMPTS, 1)
    async with sessionmaker() as db:
        row = await db.get(OutboxMessage, outbox_id)
        audit = (
            await db.execute(select(AuditEntry).where(AuditEntry.entity == "outbox", AuditEntry.entity_id == outbox_id))
        ).scalar_one()
        failures = list((await db.execute(select(JobFailure).where(JobFailure.outbox_id == outbox_id))).scalars())
    assert row is not None and (row.status, row.attempts) == ("pending", 0)
    assert row.last_error is not None and row.last_error.startswith("server_error")  # kept until it is sent
    assert audit.action == "outbox.retried" and audit.data["attempts"] == outbox.MAX_ATTEMPTS
    assert audit.data["last_error"] == row.last_error
    assert [f.retried_at is not None for f in failures] == [True]

    fake.clear_faults()
    fake.fail_next(1, status=503, method="sendMessage")  # still one hiccup left: not the end of it any more
    again = await _deliver_when_due(sessionmaker, outbox_id, adapter)
    assert (again.status, again.attempts) == ("retry", 1)
    sent = await _deliver_when_due(sessionmaker, outbox_id, adapter)

    assert sent.status == "sent"
    [accepted] = fake.sent_messages(chat)
    assert accepted.params["text"] == text
    async with sessionmaker() as db:
        row = await db.get(OutboxMessage, outbox_id)
    assert row is not None and (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert row.provider_id == str(accepted.response["result"]["message_id"])
