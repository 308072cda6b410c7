"""What a failed send leaves, against the fake Bot API and the real aiogram client: throttling waits and never
fails, an uncertain send is repeated at most once and then shown to staff, a provider that keeps failing parks its
rows until the channel answers again, and a chat's retry_after holds for every later message to it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import OutboxMessage
from booking_core.domain.actors import SYSTEM
from booking_core.domain.messages import OutboundMessage
from booking_core.services import failures, outbox
from channels.telegram.adapter import TelegramAdapter
from infra.ratelimit import Limit, RateLimiter
from infra.settings import Settings
from tests.integration.telegram_bot import BOT_TOKEN, WEBHOOK_SECRET, Bot
from workers.delivery import SharedPacing

Sessions = async_sessionmaker[AsyncSession]


def new_chat() -> int:
    return 5_300_000_000 + secrets.randbelow(10**8)


async def plan(sessions: Sessions, chat: int, text: str) -> int:
    async with sessions() as db, db.begin():
        outbox_id = await outbox.add(db, OutboundMessage(channel="telegram", recipient=str(chat), text=text))
    assert outbox_id is not None
    return outbox_id


async def row(sessions: Sessions, outbox_id: int) -> OutboxMessage:
    async with sessions() as db:
        found = await db.get(OutboxMessage, outbox_id)
    assert found is not None
    return found


async def deliver(
    sessions: Sessions,
    outbox_id: int,
    adapter: TelegramAdapter,
    *,
    at: datetime | None = None,
    pacing: outbox.Pacing | None = None,
) -> outbox.Outcome:
    async with sessions() as db:
        return await outbox.deliver(db, outbox_id, outbox.Sending({"telegram": adapter}, pacing=pacing), now=at)


async def deliver_when_due(sessions: Sessions, outbox_id: int, adapter: TelegramAdapter) -> outbox.Outcome:
    """Deliver as the worker would when the row's retry comes (its clock moved to the row's next attempt)."""
    due = (await row(sessions, outbox_id)).next_attempt_at
    return await deliver(sessions, outbox_id, adapter, at=max(due, datetime.now(UTC)) + timedelta(milliseconds=1))


@pytest.fixture
async def limiter(settings: Settings) -> AsyncIterator[RateLimiter]:
    client = Redis.from_url(settings.REDIS_URL or "")
    yield RateLimiter(client, f"{settings.FRONTDESK_REDIS_PREFIX}:{secrets.token_hex(4)}")
    await client.aclose()


# --- throttling ---------------------------------------------------------------------------------------------


async def test_a_long_429_flood_delays_a_reply_but_never_uses_up_its_attempts(sessionmaker: Sessions, bot: Bot) -> None:
    chat = new_chat()
    outbox_id = await plan(sessionmaker, chat, "Your visit is confirmed for Saturday 10:30.")
    bot.fake.throttle_next(outbox.MAX_ATTEMPTS * 2, retry_after=7, method="sendMessage")

    for _ in range(outbox.MAX_ATTEMPTS * 2):
        waited = await deliver_when_due(sessionmaker, outbox_id, bot.adapter)
        assert waited.status == "retry" and waited.attempts == 0
        current = await row(sessionmaker, outbox_id)
        assert (current.status, current.attempts) == ("pending", 0)
        assert current.last_error is not None and current.last_error.startswith("rate_limited")

    assert (await deliver_when_due(sessionmaker, outbox_id, bot.adapter)).status == "sent"
    assert bot.texts(chat) == ["Your visit is confirmed for Saturday 10:30."]
    assert (await row(sessionmaker, outbox_id)).attempts == 1


async def test_a_chats_retry_after_holds_for_the_next_message_to_that_chat(
    sessionmaker: Sessions, bot: Bot, limiter: RateLimiter
) -> None:
    chat, other_chat = new_chat(), new_chat()
    first = await plan(sessionmaker, chat, "Which day suits you?")
    bot.fake.throttle_next(1, retry_after=30, method="sendMessage")
    senders = {"telegram": bot.adapter}

    throttled = await deliver(sessionmaker, first, bot.adapter, pacing=SharedPacing(limiter, senders))
    assert throttled.status == "retry"

    # Even with the first one out of the way (staff cancelled it, say), a later message to the same chat waits out
    # the 30 s Telegram asked for, and so does a message to another chat: the pause holds the bot's windows too.
    async with sessionmaker() as db, db.begin():
        cancelled = await db.get(OutboxMessage, first)
        assert cancelled is not None
        cancelled.status = "failed"
    later = await plan(sessionmaker, chat, "We are open Monday to Saturday.")
    held = await deliver(sessionmaker, later, bot.adapter, pacing=SharedPacing(limiter, senders))
    assert held.status == "retry" and held.retry_at is not None
    assert held.retry_at >= datetime.now(UTC) + timedelta(seconds=25)
    assert (await row(sessionmaker, later)).attempts == 0  # waiting is not an attempt

    elsewhere = await plan(sessionmaker, other_chat, "Hello from the clinic")
    other = await deliver(sessionmaker, elsewhere, bot.adapter, pacing=SharedPacing(limiter, senders))
    assert other.status == "retry"
    assert bot.texts(chat) == [] and bot.texts(other_chat) == []


async def test_a_pause_keeps_a_longer_pause_and_ends_by_itself(limiter: RateLimiter) -> None:
    chat = [Limit(f"telegram:chat:{new_chat()}", 1, 1.0)]
    await limiter.pause(chat, 3.0)
    await limiter.pause(chat, 0.5)  # a shorter one does not shorten it
    assert await limiter.try_acquire(chat) > 2.0
    await limiter.pause([Limit(f"telegram:chat:{new_chat()}", 1, 1.0)], 0.05)
    fresh = [Limit(f"telegram:chat:{new_chat()}", 1, 1.0)]
    assert await limiter.try_acquire(fresh) == 0.0


# --- uncertain sends ----------------------------------------------------------------------------------------


@pytest.fixture
async def impatient(bot: Bot) -> AsyncIterator[TelegramAdapter]:
    """The clinic's bot with a one-second patience, so that "the provider answered too late" is quick to stage."""
    adapter = TelegramAdapter(token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET, api_url=bot.fake.base_url)
    adapter.bot.session.timeout = 1
    yield adapter
    await adapter.close()


async def test_a_provider_answering_within_the_timeout_never_gets_a_message_twice(
    sessionmaker: Sessions, bot: Bot, impatient: TelegramAdapter
) -> None:
    chat = new_chat()
    outbox_id = await plan(sessionmaker, chat, "See you tomorrow at 09:00")
    bot.fake.delay_next(1, seconds=0.5, method="sendMessage")
    assert (await deliver(sessionmaker, outbox_id, impatient)).status == "sent"
    assert bot.texts(chat) == ["See you tomorrow at 09:00"]
    assert (await row(sessionmaker, outbox_id)).uncertain_at is None


async def test_an_uncertain_send_is_repeated_once_and_then_shown_to_staff_as_maybe_delivered(
    sessionmaker: Sessions, bot: Bot, impatient: TelegramAdapter
) -> None:
    chat = new_chat()
    outbox_id = await plan(sessionmaker, chat, "Your results are ready")
    bot.fake.delay_next(2, seconds=2.0, method="sendMessage")  # the provider takes it, but answers too late

    first = await deliver(sessionmaker, outbox_id, impatient)
    assert first.status == "retry"
    assert (await row(sessionmaker, outbox_id)).uncertain_at is not None
    second = await deliver_when_due(sessionmaker, outbox_id, impatient)
    assert second.status == "failed" and (second.error or "").startswith(outbox.UNCERTAIN)

    # No third copy, whatever the sweep does: the row is not due again, and it is listed for staff as what it is.
    async with sessionmaker() as db:
        assert outbox_id not in await outbox.due(db, now=datetime.now(UTC) + timedelta(hours=1))
        listed = await failures.list_failures(db, actor=SYSTEM)
    [mine] = [item for item in listed if item.outbox_id == outbox_id]
    assert mine.maybe_delivered and mine.error.startswith(outbox.UNCERTAIN)

    # The fake took both requests, answering each after the client had stopped waiting: one extra copy, no more.
    for _ in range(100):
        if len(bot.fake.sent_messages(chat)) >= 2:
            break
        await asyncio.sleep(0.1)
    assert bot.texts(chat) == ["Your results are ready"] * 2


async def test_a_request_that_never_reached_the_provider_is_not_uncertain(sessionmaker: Sessions) -> None:
    chat = new_chat()
    outbox_id = await plan(sessionmaker, chat, "Reminder: your visit is tomorrow")
    closed = TelegramAdapter(
        token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET, api_url="http://127.0.0.1:9"
    )  # discard port
    try:
        outcome = await deliver(sessionmaker, outbox_id, closed)
    finally:
        await closed.close()
    assert outcome.status == "retry" and (outcome.error or "").startswith("network")
    assert (await row(sessionmaker, outbox_id)).uncertain_at is None


# --- parked rows --------------------------------------------------------------------------------------------


async def test_rows_given_up_while_telegram_was_failing_go_out_once_it_answers_again(
    sessionmaker: Sessions, bot: Bot
) -> None:
    chat = new_chat()
    outbox_id = await plan(sessionmaker, chat, "Your place in the queue: 3")
    bot.fake.fail_next(outbox.MAX_ATTEMPTS, status=502, method="sendMessage")
    outcomes = [await deliver_when_due(sessionmaker, outbox_id, bot.adapter) for _ in range(outbox.MAX_ATTEMPTS)]
    assert [o.status for o in outcomes] == ["retry"] * (outbox.MAX_ATTEMPTS - 1) + ["failed"]
    parked = await row(sessionmaker, outbox_id)
    assert parked.status == "failed" and parked.parked_at is not None

    async with sessionmaker() as db, db.begin():
        assert outbox_id not in await outbox.unpark(db)  # nothing got through on Telegram since: still parked

    recovered = await plan(sessionmaker, new_chat(), "Hello")
    assert (await deliver(sessionmaker, recovered, bot.adapter)).status == "sent"  # Telegram answers again
    async with sessionmaker() as db, db.begin():
        assert outbox_id in await outbox.unpark(db)
    again = await row(sessionmaker, outbox_id)
    assert (again.status, again.attempts, again.parked_at) == ("pending", 0, None)
    assert (await deliver(sessionmaker, outbox_id, bot.adapter)).status == "sent"
    assert bot.texts(chat) == ["Your place in the queue: 3"]


async def test_a_parked_row_is_probed_again_after_a_while_even_if_nothing_else_was_sent(
    sessionmaker: Sessions, bot: Bot
) -> None:
    chat = new_chat()
    outbox_id = await plan(sessionmaker, chat, "Your invoice is ready")
    bot.fake.fail_next(outbox.MAX_ATTEMPTS, status=503, method="sendMessage")
    for _ in range(outbox.MAX_ATTEMPTS):
        await deliver_when_due(sessionmaker, outbox_id, bot.adapter)
    async with sessionmaker() as db, db.begin():
        later = datetime.now(UTC) + outbox.PARKED_PROBE_AFTER + timedelta(seconds=1)
        assert outbox_id in await outbox.unpark(db, now=later)
