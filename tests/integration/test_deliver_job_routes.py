"""A deliver job that knows where its row goes asks for the channel's rate limits while it claims the row.

Whoever commits outbox rows (a request, the chatbot's job) hands them over with their routes
(``outbox.take_planned``); the job then takes the chat's place in Telegram's limits once, in Redis, at the same time
as it claims the row in PostgreSQL. The jobs run as a worker runs them (a runtime of their own), against the fake
Bot API.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
from redis import Redis as SyncRedis
from rq.job import Job
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import OutboxMessage
from booking_core.domain.messages import OutboundMessage
from booking_core.services import outbox
from devtools.fakes.telegram_api import FakeTelegram
from infra import job_names, queues
from infra.settings import Settings
from tests.integration.telegram_bot import BOT_TOKEN, WEBHOOK_SECRET, Bot
from workers import jobs, runtime

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def telegram(bot: Bot) -> FakeTelegram:
    return bot.fake


@pytest.fixture
def worker_settings(settings: Settings, telegram: FakeTelegram) -> Settings:
    """This run's database and Redis, a prefix of the test's own, Telegram at the fake."""
    return settings.model_copy(
        update={
            "FRONTDESK_REDIS_PREFIX": f"rt{secrets.token_hex(4)}",
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_API_URL": telegram.base_url,
        }
    )


@pytest.fixture
def redis(worker_settings: Settings) -> Iterator[SyncRedis]:
    client = SyncRedis.from_url(worker_settings.REDIS_URL or "")
    yield client
    for key in client.scan_iter(f"{worker_settings.FRONTDESK_REDIS_PREFIX}:*"):
        client.delete(key)
    client.close()


async def plan_reply(sessionmaker: Sessions, chat_id: str, text: str) -> tuple[int, dict[int, str]]:
    """A reply planned and committed as a request or the chatbot plans one; its id and its route."""
    async with sessionmaker() as db:
        async with db.begin():
            outbox_id = await outbox.add(db, OutboundMessage(channel="telegram", recipient=chat_id, text=text))
        assert outbox_id is not None
        return outbox_id, outbox.take_planned(db).routes


def _run_deliver(settings: Settings, outbox_id: int, route: str | None) -> str:
    rt = runtime.build(settings)
    runtime.install(rt)
    try:
        return jobs.deliver(outbox_id, route)
    finally:
        rt.close()


async def run_deliver(settings: Settings, outbox_id: int, route: str | None) -> str:
    """The deliver job as a worker runs it (in a thread: the test's loop stays free for the fake API)."""
    return await asyncio.to_thread(_run_deliver, settings, outbox_id, route)


def chat_window(redis: SyncRedis, settings: Settings, chat_id: str) -> int:
    """Places taken in the chat's one-message-a-second window."""
    bot_id = BOT_TOKEN.split(":")[0]
    return int(redis.zcard(f"{settings.FRONTDESK_REDIS_PREFIX}:rate:telegram:chat:{bot_id}:{chat_id}"))


async def test_committed_replies_are_handed_over_with_where_they_go(
    sessionmaker: Sessions, worker_settings: Settings, redis: SyncRedis
) -> None:
    chat = str(700_000_000 + secrets.randbelow(10**6))
    outbox_id, routes = await plan_reply(sessionmaker, chat, "Your visit is confirmed: Tuesday 10:00, dr. Andi.")

    queues.enqueue_deliveries(redis, worker_settings.FRONTDESK_REDIS_PREFIX, [outbox_id], routes)

    job = Job.fetch(f"deliver-{outbox_id}", connection=redis)
    assert routes == {outbox_id: f"telegram:{chat}"}
    assert job.func_name == job_names.DELIVER and job.args == (outbox_id, f"telegram:{chat}")
    job.delete()


async def test_a_job_with_its_route_sends_once_and_takes_the_chats_place_once(
    sessionmaker: Sessions, worker_settings: Settings, redis: SyncRedis, telegram: FakeTelegram
) -> None:
    chat = str(700_000_000 + secrets.randbelow(10**6))
    outbox_id, routes = await plan_reply(sessionmaker, chat, "Pak Budi, your visit is tomorrow at 09:30.")

    assert await run_deliver(worker_settings, outbox_id, routes[outbox_id]) == "sent"

    [sent] = telegram.sent_messages(int(chat))
    assert sent.params["text"] == "Pak Budi, your visit is tomorrow at 09:30."
    assert chat_window(redis, worker_settings, chat) == 1  # asked for early, and not a second time before sending
    async with sessionmaker() as db:
        row = await db.get(OutboxMessage, outbox_id)
        assert (
            row is not None and row.status == "sent" and row.provider_id == str(sent.response["result"]["message_id"])
        )


async def test_a_repeated_job_sends_nothing_more(
    sessionmaker: Sessions, worker_settings: Settings, telegram: FakeTelegram
) -> None:
    chat = str(700_000_000 + secrets.randbelow(10**6))
    outbox_id, routes = await plan_reply(sessionmaker, chat, "Ibu Sari, your results are ready.")

    first = await run_deliver(worker_settings, outbox_id, routes[outbox_id])
    again = await run_deliver(worker_settings, outbox_id, routes[outbox_id])

    assert (first, again) == ("sent", "skipped") and len(telegram.sent_messages(int(chat))) == 1


async def test_a_route_that_names_another_chat_is_not_used_for_this_one(
    sessionmaker: Sessions, worker_settings: Settings, redis: SyncRedis, telegram: FakeTelegram
) -> None:
    """Job arguments are data: a route that does not match the claimed row only costs a place in another window."""
    chat, other = (str(700_000_000 + secrets.randbelow(10**6)) for _ in range(2))
    outbox_id, _routes = await plan_reply(sessionmaker, chat, "Your queue number is A-014.")

    assert await run_deliver(worker_settings, outbox_id, f"telegram:{other}") == "sent"

    assert len(telegram.sent_messages(int(chat))) == 1 and not telegram.sent_messages(int(other))
    assert chat_window(redis, worker_settings, chat) == 1  # the row's own chat was asked for, as without a route
    assert chat_window(redis, worker_settings, other) == 0  # the other chat's place, taken early, was given back


async def test_a_reply_waiting_behind_an_earlier_one_gives_back_the_place_it_took_for_its_chat(
    sessionmaker: Sessions, worker_settings: Settings, redis: SyncRedis, telegram: FakeTelegram
) -> None:
    """Replies that wait their turn must not use up their chat's one place a second: the reply at the head of the
    line would then never find it free while the patient keeps writing (a freeze the chaos suite found)."""
    chat = str(700_000_000 + secrets.randbelow(10**6))
    first, _ = await plan_reply(sessionmaker, chat, "Which day suits you?")
    second, routes = await plan_reply(sessionmaker, chat, "We are open Monday to Saturday.")

    assert await run_deliver(worker_settings, second, routes[second]) == "retry"  # behind the first

    assert chat_window(redis, worker_settings, chat) == 0
    assert await run_deliver(worker_settings, first, None) == "sent"  # the head of the line goes at once
    assert [m.params["text"] for m in telegram.sent_messages(int(chat))] == ["Which day suits you?"]
