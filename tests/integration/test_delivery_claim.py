"""Claiming a message for sending: one worker has it, a person's messages go in the order they were planned, a
message a dead worker left behind is sent again once its claim has gone stale; and a job that plans a message sends
it itself when it can."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from rq import Queue
from rq.job import Job
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from booking_core.db.tables import ChannelIdentity, OutboxMessage
from booking_core.domain.messages import OutboundMessage
from booking_core.services import outbox
from infra import job_names, queues
from infra.settings import Settings
from tests.integration.telegram_bot import BOT_TOKEN, WEBHOOK_SECRET, Bot
from workers import delivery
from workers.runtime import Runtime

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def telegram_worker(
    settings: Settings, engine: AsyncEngine, sessionmaker: Sessions, bot: Bot
) -> AsyncIterator[Runtime]:
    """A worker's runtime that sends on Telegram (to the fake Bot API) and on nothing else."""
    own = settings.model_copy(
        update={
            "FRONTDESK_REDIS_PREFIX": f"dlv{secrets.token_hex(3)}",
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_API_URL": bot.fake.base_url,
        }
    )
    assert own.REDIS_URL is not None
    runtime = Runtime(own, asyncio.get_running_loop(), engine, sessionmaker, Redis.from_url(own.REDIS_URL))
    yield runtime
    for adapter in runtime.extras.pop("senders", {}).values():
        await adapter.close()
    await runtime.redis.aclose()
    if "sync_redis" in runtime.extras:
        runtime.extras["sync_redis"].close()


async def plan(sessionmaker: Sessions, chat: str, *texts: str, channel: str = "telegram") -> list[int]:
    """Messages to one chat (or number), planned in this order."""
    async with sessionmaker() as db, db.begin():
        identity = ChannelIdentity(channel=channel, external_id=chat, display_name="Dewi")
        db.add(identity)
        await db.flush()
        ids = []
        for text in texts:
            outbox_id = await outbox.add(
                db,
                OutboundMessage(channel=channel, recipient=chat, text=text),
                identity_id=identity.id,
            )
            assert outbox_id is not None
            ids.append(outbox_id)
    return ids


async def row(sessionmaker: Sessions, outbox_id: int) -> OutboxMessage:
    async with sessionmaker() as db:
        found = await db.get(OutboxMessage, outbox_id)
    assert found is not None
    return found


def new_chat() -> str:
    return str(6_000_000_000 + secrets.randbelow(10**9))


async def test_a_second_message_waits_for_the_first_and_the_patient_reads_them_in_order(
    sessionmaker: Sessions, bot: Bot
) -> None:
    chat = new_chat()
    first, second = await plan(sessionmaker, chat, "Your visit is booked.", "Here is your check-in code.")
    now = datetime.now(UTC)

    async with sessionmaker() as db:
        waited = await outbox.deliver(db, second, outbox.Sending({"telegram": bot.adapter}), now=now)
    assert (waited.status, waited.attempts) == ("retry", 0)
    assert waited.retry_at is not None and waited.retry_at >= now + outbox.IN_ORDER_WAIT
    held = await row(sessionmaker, second)
    assert (held.status, held.attempts, held.locked_at, held.next_attempt_at) == ("pending", 0, None, waited.retry_at)
    assert bot.texts(chat) == []

    async with sessionmaker() as db:
        assert (await outbox.deliver(db, first, outbox.Sending({"telegram": bot.adapter}))).status == "sent"
        assert (
            await outbox.deliver(db, second, outbox.Sending({"telegram": bot.adapter}), now=waited.retry_at)
        ).status == "sent"

    assert bot.texts(chat) == ["Your visit is booked.", "Here is your check-in code."]
    sent = await row(sessionmaker, second)
    assert (sent.status, sent.attempts, sent.locked_at) == ("sent", 1, None) and sent.provider_id


async def test_a_message_waits_as_long_as_an_earlier_one_waits_for_its_retry(sessionmaker: Sessions, bot: Bot) -> None:
    chat = new_chat()
    first, second = await plan(sessionmaker, chat, "Your visit is booked.", "See you tomorrow.")
    retry_at = datetime.now(UTC) + timedelta(seconds=30)  # Telegram asked us to come back later with the first
    async with sessionmaker() as db, db.begin():
        await db.execute(
            update(OutboxMessage).where(OutboxMessage.id == first).values(attempts=1, next_attempt_at=retry_at)
        )

    async with sessionmaker() as db:
        waited = await outbox.deliver(db, second, outbox.Sending({"telegram": bot.adapter}))

    assert (waited.status, waited.retry_at) == ("retry", retry_at)
    assert bot.texts(chat) == []


async def test_a_message_another_worker_is_sending_is_left_to_it_until_its_claim_goes_stale(
    sessionmaker: Sessions, bot: Bot
) -> None:
    chat = new_chat()
    (only,) = await plan(sessionmaker, chat, "Your visit is booked.")
    claimed_at = datetime.now(UTC)
    async with sessionmaker() as db, db.begin():
        await db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == only)
            .values(status="sending", locked_at=claimed_at, attempts=1)
        )

    async with sessionmaker() as db:
        assert (await outbox.deliver(db, only, outbox.Sending({"telegram": bot.adapter}))).status == "skipped"
        later = claimed_at + outbox.STALE_AFTER + timedelta(seconds=1)  # that worker died
        again = await outbox.deliver(db, only, outbox.Sending({"telegram": bot.adapter}), now=later)
        repeated = await outbox.deliver(db, only, outbox.Sending({"telegram": bot.adapter}), now=later)

    assert (again.status, again.attempts, repeated.status) == ("sent", 2, "skipped")
    assert bot.texts(chat) == ["Your visit is booked."]


async def test_the_job_that_plans_a_message_sends_it_without_a_job_of_its_own(
    sessionmaker: Sessions, bot: Bot, telegram_worker: Runtime, sync_redis: SyncRedis
) -> None:
    ayu, budi = new_chat(), new_chat()
    planned = [
        *await plan(sessionmaker, ayu, "Reminder: your visit is tomorrow at 09:30."),
        *await plan(sessionmaker, budi, "Reminder: your visit is tomorrow at 10:00."),
    ]

    await delivery.deliver_planned(telegram_worker, planned)

    assert bot.texts(ayu) == ["Reminder: your visit is tomorrow at 09:30."]
    assert bot.texts(budi) == ["Reminder: your visit is tomorrow at 10:00."]
    for outbox_id in planned:
        sent = await row(sessionmaker, outbox_id)
        assert (sent.status, sent.attempts) == ("sent", 1) and sent.provider_id
    # No deliver job was queued for them on this worker's queues (RQ's job ids are not prefixed, so another test's
    # database can have a job of the same id in the same Redis: its own queue is what tells).
    outbound = Queue(
        queues.queue_name(telegram_worker.settings.FRONTDESK_REDIS_PREFIX, queues.OUTBOUND), connection=sync_redis
    )
    assert not {f"deliver-{outbox_id}" for outbox_id in planned} & set(outbound.job_ids)


async def test_a_message_on_a_channel_the_worker_cannot_send_on_is_left_to_a_deliver_job(
    sessionmaker: Sessions, telegram_worker: Runtime, sync_redis: SyncRedis
) -> None:
    number = f"+62857{secrets.randbelow(10**8):08d}"
    (planned,) = await plan(sessionmaker, number, "Reminder: your visit is tomorrow.", channel="whatsapp")

    await delivery.deliver_planned(telegram_worker, [planned])

    untouched = await row(sessionmaker, planned)
    assert (untouched.status, untouched.attempts, untouched.last_error) == ("pending", 0, None)
    job = Job.fetch(f"deliver-{planned}", connection=sync_redis)
    assert (job.func_name, job.args) == (job_names.DELIVER, (planned,))
