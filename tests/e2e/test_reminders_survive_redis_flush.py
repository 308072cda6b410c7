"""A flushed Redis loses no reminder: real `frontdesk worker` processes, the real aiogram client, the fake Bot API.

The first worker puts the booked visits' reminders into Redis; then Redis is flushed (every schedule gone) and a
reminder falls due meanwhile. A new worker starts: it re-creates every missing schedule from the database and
sends the overdue reminder, exactly once.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from rq.job import Job
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import ChannelIdentity, OutboxMessage, Reminder
from booking_core.domain.actors import Actor
from booking_core.services import booking, reminders
from devtools.builders import build_clinic, insert_session, next_weekday
from devtools.fakes.telegram_api import FakeTelegram, running_fake_telegram
from infra import job_names
from tests import servers
from tests.waiting import eventually
from workers.reminders import job_id

pytestmark = pytest.mark.e2e

DESK = Actor(kind="staff", name="Reception", role="staff")
TOKEN = "123456:reminders-e2e"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram(0) as fake:
        yield fake


@pytest.fixture
def worker_env(child_env: dict[str, str], telegram: FakeTelegram) -> dict[str, str]:
    """The run's database and Redis, Telegram pointed at the fake, queues and job ids of this test's own prefix."""
    return dict(
        child_env,
        FRONTDESK_REDIS_PREFIX=f"e2erem{secrets.token_hex(3)}",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_WEBHOOK_SECRET="reminders-e2e-secret",
        TELEGRAM_API_URL=telegram.base_url,
    )


def scheduled_jobs(redis: Redis, ids: list[str]) -> bool:
    """Every job exists, waits in the scheduled state and runs the reminder job."""
    for one in ids:
        if not Job.exists(one, connection=redis):
            return False
        job = Job.fetch(one, connection=redis)
        if job.get_status() != "scheduled" or job.func_name != job_names.SEND_REMINDER:
            return False
    return True


async def test_a_flushed_redis_gets_every_reminder_back_and_the_overdue_one_is_sent_once(
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    sync_redis: Redis,
    worker_env: dict[str, str],
    telegram: FakeTelegram,
) -> None:
    prefix = worker_env["FRONTDESK_REDIS_PREFIX"]
    clinic = await build_clinic(db)
    siti = clinic.patients["siti"]
    chat_id = 500_000_000 + secrets.randbelow(10**8)
    db.add(ChannelIdentity(patient_id=siti.id, channel="telegram", external_id=str(chat_id), display_name="Siti",
                           last_inbound_at=datetime.now(UTC)))  # fmt: skip
    await db.commit()
    async with (
        sessionmaker() as desk,
        desk.begin(),
    ):  # booked at the desk, two weeks ahead: reminders a day and 2 h before
        later = await booking.book(
            desk, actor=DESK, branch_id=clinic.branch.id, patient_id=siti.id,
            examination_ids=[clinic.examinations["GP"].id], start=next_weekday(2, hour=10, weeks=2),
        )  # fmt: skip
    soon = await insert_session(db, clinic, starts_at=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3))
    async with sessionmaker() as desk, desk.begin():
        await reminders.sync_session(desk, soon.id)
    async with sessionmaker() as look:
        ahead = await reminders.scheduled_for_sessions(look, [later.id])
        [due_soon] = await reminders.scheduled_for_sessions(look, [soon.id])
    assert len(ahead) == 2
    future_jobs = [job_id(prefix, due) for due in ahead]

    first = servers.start(worker_env, "worker")
    try:
        await eventually(lambda: scheduled_jobs(sync_redis, [*future_jobs, job_id(prefix, due_soon)]))
    finally:
        await first.stop_async()

    sync_redis.flushdb()
    assert not any(Job.exists(one, connection=sync_redis) for one in future_jobs)
    async with sessionmaker() as clock, clock.begin():  # while Redis was empty, the 2-hour reminder fell due
        overdue = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        await clock.execute(update(Reminder).where(Reminder.id == due_soon.reminder_id).values(due_at=overdue))

    second = servers.start(worker_env, "worker")
    try:
        await eventually(lambda: scheduled_jobs(sync_redis, future_jobs))

        async def delivered() -> OutboxMessage | None:
            async with sessionmaker() as look:
                row = await look.get(Reminder, due_soon.reminder_id)
                if row is None or row.status != "sent" or row.outbox_id is None:
                    return None
                message = await look.get(OutboxMessage, row.outbox_id)
                return message if message is not None and message.status == "sent" else None

        message = await eventually(delivered)
    finally:
        await second.stop_async()

    [sent] = telegram.sent_messages(chat_id)
    assert soon.booking_code in sent.params["text"] and message.provider_id is not None
    async with sessionmaker() as look:
        rows = (await look.execute(select(Reminder).where(Reminder.session_id == later.id))).scalars().all()
    assert {(r.kind, r.status) for r in rows} == {("24h", "scheduled"), ("2h", "scheduled")}
