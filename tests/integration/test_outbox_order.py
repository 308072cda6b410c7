"""Messages to one patient arrive in the order they were written, even when the first one has to wait a long
time for its retry (a 429's ``retry_after``, a backoff after a 5xx)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import OutboxMessage
from booking_core.domain.messages import OutboundMessage
from booking_core.services import outbox
from channels.telegram.adapter import TelegramAdapter
from tests.integration.telegram_bot import Bot

Sessions = async_sessionmaker[AsyncSession]


async def _plan(sessions: Sessions, chat: int, text: str) -> int:
    async with sessions() as db, db.begin():
        outbox_id = await outbox.add(db, OutboundMessage(channel="telegram", recipient=str(chat), text=text))
    assert outbox_id is not None
    return outbox_id


async def _deliver(sessions: Sessions, outbox_id: int, adapter: TelegramAdapter, *, now: datetime) -> outbox.Outcome:
    async with sessions() as db:
        return await outbox.deliver(db, outbox_id, outbox.Sending({"telegram": adapter}), now=now)


async def test_a_reply_waits_behind_an_earlier_one_that_telegram_asked_to_retry_in_half_a_minute(
    sessionmaker: Sessions, bot: Bot
) -> None:
    fake, adapter = bot.fake, bot.adapter
    chat = 5_200_000_000 + secrets.randbelow(10**8)
    first = await _plan(sessionmaker, chat, "Which day suits you?")
    second = await _plan(sessionmaker, chat, "We are open Monday to Saturday, 08:00-20:00.")
    fake.throttle_next(1, retry_after=30, method="sendMessage")
    now = datetime.now(UTC)  # after planning: both are due

    throttled = await _deliver(sessionmaker, first, adapter, now=now)
    waiting = await _deliver(sessionmaker, second, adapter, now=now + timedelta(seconds=1))

    assert throttled.status == "retry" and throttled.retry_at is not None
    assert throttled.retry_at >= now + timedelta(seconds=30)
    assert waiting.status == "retry" and waiting.retry_at is not None and waiting.retry_at >= throttled.retry_at
    assert fake.sent_messages(chat) == []
    async with sessionmaker() as db:
        row = await db.get(OutboxMessage, second)
    assert row is not None and (row.status, row.attempts) == ("pending", 0)  # waiting in line is not an attempt

    later = throttled.retry_at + timedelta(seconds=1)
    assert (await _deliver(sessionmaker, second, adapter, now=later)).status == "retry"  # still behind the first
    assert (await _deliver(sessionmaker, first, adapter, now=later)).status == "sent"
    assert (await _deliver(sessionmaker, second, adapter, now=later + timedelta(seconds=1))).status == "sent"
    assert [r.params["text"] for r in fake.sent_messages(chat)] == [
        "Which day suits you?",
        "We are open Monday to Saturday, 08:00-20:00.",
    ]


async def test_a_message_planned_for_later_does_not_hold_up_the_ones_after_it(sessionmaker: Sessions, bot: Bot) -> None:
    fake, adapter = bot.fake, bot.adapter
    chat = 5_300_000_000 + secrets.randbelow(10**8)
    now = datetime.now(UTC)
    async with sessionmaker() as db, db.begin():
        later = await outbox.add(
            db,
            OutboundMessage(channel="telegram", recipient=str(chat), text="See you tomorrow!"),
            due_at=now + timedelta(hours=20),
        )
    assert later is not None
    reply = await _plan(sessionmaker, chat, "Your booking code is K7Q4M.")

    assert (await _deliver(sessionmaker, reply, adapter, now=datetime.now(UTC))).status == "sent"
    assert [r.params["text"] for r in fake.sent_messages(chat)] == ["Your booking code is K7Q4M."]
