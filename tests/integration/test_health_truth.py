"""/health tells the truth: each way the clinic can silently stop working is produced for real, named, then fixed.

The gateway runs in-process against a database and a Redis prefix of this module's own (the health looks at the
whole database: other tests' leftovers, such as due outbox rows nobody sends, would be its business otherwise).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis as SyncRedis
from rq import Worker
from rq.utils import utcformat
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.db.tables import OutboxMessage
from channels.telegram.adapter import SECRET_HEADER
from devtools import harness
from devtools.fakes.telegram_api import FakeTelegram, running_fake_telegram
from gateway.app import create_app
from gateway.migrate import upgrade
from infra import job_names, queues
from infra.settings import Settings

Client = TestClient[Any, Any]
BOT_TOKEN = "123456:clinic-bot-token"
WEBHOOK_SECRET = "clinic-webhook-secret_0123456789"


@pytest.fixture(scope="module")
async def own(backing: harness.Backing, settings: Settings) -> AsyncIterator[Settings]:
    """``settings`` pointed at a fresh, migrated database and a Redis prefix of this module's own."""
    name = harness.new_name("frontdesk_health")
    await harness.create_database(backing.admin_url, name)
    url = backing.database_url(name)
    await asyncio.to_thread(upgrade, url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        yield settings.model_copy(update={"DATABASE_URL": url, "FRONTDESK_REDIS_PREFIX": f"fdh{secrets.token_hex(4)}"})
    finally:
        await harness.drop_database(backing.admin_url, name)


@pytest.fixture(scope="module")
async def own_db(own: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    assert own.async_database_url is not None
    engine = make_engine(own.async_database_url, pool_size=2)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def connect(own: Settings) -> AsyncIterator[Callable[[], Any]]:
    """Open plain connections to the module's database (closed after the test): another process's sessions."""
    opened: list[asyncpg.Connection] = []

    async def open_one() -> asyncpg.Connection:
        connection = await asyncpg.connect(own.DATABASE_URL, server_settings={"application_name": "dead-worker"})
        opened.append(connection)
        return connection

    yield open_one
    for connection in opened:
        await connection.close()


@pytest.fixture
def rq_redis(own: Settings) -> Iterator[SyncRedis]:
    client = SyncRedis.from_url(own.REDIS_URL or "")
    yield client
    client.close()


async def health_until(http: Client, wanted: Callable[[int, dict[str, str]], bool], *, seconds: float = 30.0) -> Any:
    """Ask /health until ``wanted(status, body)``; the body that satisfied it (bounded wait, never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while True:
        response = await http.get("/health")
        body = await response.json()
        if wanted(response.status, body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/health did not become what the test waits for; last {response.status}: {body}")
        await asyncio.sleep(0.2)


def healthy(status: int, body: dict[str, str]) -> bool:
    return status == 200 and body["status"] == "ok"


def failing(part: str, *words: str) -> Callable[[int, dict[str, str]], bool]:
    def check(status: int, body: dict[str, str]) -> bool:
        return status == 503 and body["status"] == "unavailable" and all(w in body.get(part, "") for w in words)

    return check


def telegram_update(chat: int, text: str) -> dict[str, Any]:
    person = {"id": chat, "is_bot": False, "first_name": "Siti", "language_code": "id"}
    return {
        "update_id": 10**9 + secrets.randbelow(10**9),
        "message": {
            "message_id": secrets.randbelow(10**6),
            "from": person,
            "chat": {"id": chat, "first_name": "Siti", "type": "private"},
            "date": int(time.time()),
            "text": text,
        },
    }


def register_worker(connection: SyncRedis, prefix: str) -> Worker:
    """A worker as RQ records it for our queues (its own registry entry and heartbeat, not a process)."""
    worker = Worker(queues.queues(connection, prefix), connection=connection, name=f"health-{secrets.token_hex(3)}")
    worker.register_birth()
    return worker


async def test_a_quiet_clinic_is_healthy_and_every_part_is_named(own: Settings) -> None:
    async with TestClient(TestServer(create_app(own))) as http:
        response = await http.get("/health")
        body = await response.json()
    assert response.status == 200, body
    assert body == {
        "status": "ok",
        "database": "ok",
        "redis": "ok",
        "ingest": "ok",
        "workers": "ok",  # just started: no worker can have been silent for a minute yet
        "outbox": "ok",
        "transactions": "ok",
    }


async def test_a_dead_transaction_holding_a_chat_blocks_its_messages_and_ingest_says_so(
    own: Settings, connect: Callable[[], Any]
) -> None:
    async with running_fake_telegram(tokens={BOT_TOKEN}) as telegram:
        await _dead_transaction_blocks_ingest(own, connect, telegram)


async def _dead_transaction_blocks_ingest(own: Settings, connect: Callable[[], Any], telegram: FakeTelegram) -> None:
    configured = own.model_copy(
        update={
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_API_URL": telegram.base_url,
            "FRONTDESK_HEALTH_INGEST_WITHIN": 0.5,
        }
    )
    chat = 10**10 + secrets.randbelow(10**9)
    signed = {SECRET_HEADER: WEBHOOK_SECRET}
    async with TestClient(TestServer(create_app(configured))) as http:
        first = await http.post("/webhooks/telegram", json=telegram_update(chat, "Halo"), headers=signed)
        assert first.status == 200
        await health_until(http, healthy)

        # A worker's transaction that touched the chat and then never ended (its process died, a child kept its
        # socket): the row lock stays, and every later message of that chat waits for it.
        holder = await connect()
        await holder.execute("BEGIN")
        await holder.execute(
            "UPDATE channel_identities SET display_name = display_name WHERE channel = 'telegram' AND external_id = $1",
            str(chat),
        )
        holder_pid = await holder.fetchval("SELECT pg_backend_pid()")
        second = asyncio.ensure_future(
            http.post("/webhooks/telegram", json=telegram_update(chat, "Masih ada slot?"), headers=signed)
        )
        body = await health_until(http, failing("ingest", "waiting for locks", f"pid {holder_pid} (dead-worker)"))
        assert "idle in transaction" in body["ingest"]
        assert body["database"] == "ok" and body["redis"] == "ok"
        assert not second.done(), "the patient's message is still waiting for the dead transaction"

        await holder.execute("ROLLBACK")  # the orphan is gone
        answered = await asyncio.wait_for(second, timeout=30)
        assert answered.status == 200
        await health_until(http, healthy)


async def test_a_database_that_takes_no_writes_fails_ingest(own: Settings, backing: harness.Backing) -> None:
    assert own.DATABASE_URL is not None
    name = own.DATABASE_URL.rsplit("/", 1)[1].split("?")[0]
    admin = await asyncpg.connect(backing.admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        try:
            async with TestClient(TestServer(create_app(own))) as http:
                body = await health_until(http, failing("ingest", "cannot commit", "read-only"))
                assert body["database"] == "ok"  # it answers; it just stores nothing
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        async with TestClient(TestServer(create_app(own))) as http:
            await health_until(http, healthy)
    finally:
        await admin.close()


async def test_workers_must_have_beaten_within_the_silence_limit(own: Settings, rq_redis: SyncRedis) -> None:
    watched = own.model_copy(update={"FRONTDESK_HEALTH_WORKER_SILENCE": 3.0})
    prefix = watched.FRONTDESK_REDIS_PREFIX
    async with TestClient(TestServer(create_app(watched))) as http:
        # Once the gateway has watched for longer than the limit, no worker at all is a failure.
        await health_until(http, failing("workers", "no worker registered"))

        worker = register_worker(rq_redis, prefix)
        try:
            await health_until(http, healthy)
            # Its heartbeat goes stale (a worker stuck, or killed before RQ could record its death).
            rq_redis.hset(worker.key, "last_heartbeat", utcformat(datetime.now(UTC) - timedelta(minutes=5)))
            body = await health_until(http, failing("workers", "no worker heartbeat for"))
            assert "1 registered" in body["workers"]
            worker.heartbeat()
            await health_until(http, healthy)
        finally:
            worker.register_death()
            rq_redis.delete(worker.key)

    unwatched = own.model_copy(update={"FRONTDESK_HEALTH_WORKER_SILENCE": 0.0})
    async with TestClient(TestServer(create_app(unwatched))) as http:
        body = await health_until(http, healthy)
        assert "workers" not in body  # a gateway told not to watch the workers does not pretend to


async def test_a_due_message_left_waiting_fails_the_outbox_until_it_goes(
    own: Settings, own_db: async_sessionmaker[AsyncSession]
) -> None:
    async with own_db() as db, db.begin():
        row = OutboxMessage(
            channel="telegram",
            recipient="5342492667",
            payload={"text": "Jadwal Anda besok 09:00"},
            next_attempt_at=datetime.now(UTC) - timedelta(minutes=10),
        )
        db.add(row)
    try:
        async with TestClient(TestServer(create_app(own))) as http:
            body = await health_until(http, failing("outbox", "oldest due message has waited", "limit 120 s"))
            assert body["ingest"] == "ok" and body["transactions"] == "ok"
            async with own_db() as db, db.begin():
                await db.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(status="sent"))
            await health_until(http, healthy)
    finally:
        async with own_db() as db, db.begin():
            await db.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(status="sent"))


async def test_a_transaction_left_idle_too_long_is_named_until_it_ends(
    own: Settings, connect: Callable[[], Any]
) -> None:
    strict = own.model_copy(update={"FRONTDESK_HEALTH_IDLE_IN_TRANSACTION": 0.5})
    async with TestClient(TestServer(create_app(strict))) as http:
        await health_until(http, healthy)
        holder = await connect()
        await holder.execute("BEGIN")
        await holder.fetchval("SELECT count(*) FROM conversations")
        pid = await holder.fetchval("SELECT pg_backend_pid()")
        body = await health_until(http, failing("transactions", f"pid {pid} (dead-worker)", "idle in a transaction"))
        assert body["ingest"] == "ok"  # nothing waits for it: only its age is wrong
        await holder.execute("ROLLBACK")
        await health_until(http, healthy)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def _deadlock(connect: Callable[[], Any], first: int, second: int) -> None:
    """Two transactions that each lock one row and then want the other's: PostgreSQL breaks it, one fails."""
    a, b = await connect(), await connect()
    for connection, row in ((a, first), (b, second)):
        await connection.execute("BEGIN")
        await connection.execute("UPDATE outbox SET attempts = attempts WHERE id = $1", row)
    outcomes = await asyncio.gather(
        a.execute("UPDATE outbox SET attempts = attempts WHERE id = $1", second),
        b.execute("UPDATE outbox SET attempts = attempts WHERE id = $1", first),
        return_exceptions=True,
    )
    assert any(isinstance(o, asyncpg.DeadlockDetectedError) for o in outcomes), outcomes
    for connection in (a, b):
        await connection.execute("ROLLBACK")


async def test_metrics_show_outbox_lag_rows_queues_workers_retries_deadlocks_and_idle_transactions(
    own: Settings, own_db: async_sessionmaker[AsyncSession], rq_redis: SyncRedis, connect: Callable[[], Any]
) -> None:
    now = datetime.now(UTC)
    async with own_db() as db, db.begin():
        rows = [
            OutboxMessage(channel="telegram", recipient="1", payload={}, next_attempt_at=now - timedelta(seconds=300)),
            OutboxMessage(channel="telegram", recipient="2", payload={}, next_attempt_at=now + timedelta(hours=1)),
            OutboxMessage(
                channel="telegram", recipient="3", payload={}, attempts=2, next_attempt_at=now + timedelta(minutes=2)
            ),
            OutboxMessage(channel="telegram", recipient="4", payload={}, status="failed", attempts=6),
        ]
        db.add_all(rows)
    prefix = own.FRONTDESK_REDIS_PREFIX
    for n in range(3):
        queues.enqueue(rq_redis, prefix, job_names.PING, f"queued {n}", queue=queues.OUTBOUND)
    queues.enqueue(rq_redis, prefix, job_names.PING, "later", at=now + timedelta(hours=1))
    worker = register_worker(rq_redis, prefix)
    holder = await connect()
    try:
        await _deadlock(connect, rows[0].id, rows[1].id)
        await holder.execute("BEGIN")
        await holder.fetchval("SELECT 1")
        async with TestClient(TestServer(create_app(own))) as http:
            deadline = time.monotonic() + 30
            while True:  # PostgreSQL counts a deadlock when the backend reports its statistics (within a second)
                response = await http.get("/metrics")
                assert response.status == 200
                samples = _samples(await response.text())
                if samples.get(("frontdesk_postgres_deadlocks_total", ()), 0) >= 1 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.3)
    finally:
        await holder.execute("ROLLBACK")
        worker.register_death()
        rq_redis.delete(worker.key)
        async with own_db() as db, db.begin():
            await db.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_([r.id for r in rows])).values(status="skipped")
            )

    assert samples[("frontdesk_postgres_deadlocks_total", ())] >= 1
    assert 299 <= samples[("frontdesk_outbox_lag_seconds", ())] < 3600
    assert samples[("frontdesk_outbox_due_rows", ())] == 1
    assert samples[("frontdesk_outbox_rows", (("status", "pending"),))] == 3
    assert samples[("frontdesk_outbox_rows", (("status", "failed"),))] >= 1
    assert ("frontdesk_outbox_rows", (("status", "sent"),)) in samples
    assert samples[("frontdesk_outbox_retrying_rows", ())] == 1
    assert samples[("frontdesk_queue_jobs", (("queue", "outbound"), ("state", "queued")))] == 3
    assert samples[("frontdesk_queue_jobs", (("queue", "default"), ("state", "scheduled")))] == 1
    assert samples[("frontdesk_queue_jobs", (("queue", "dialog"), ("state", "failed")))] == 0
    assert samples[("frontdesk_workers_registered", ())] == 1
    assert samples[("frontdesk_workers_live", ())] == 1
    assert 0 <= samples[("frontdesk_worker_heartbeat_age_seconds", ())] < 60
    assert samples[("frontdesk_postgres_idle_in_transaction_backends", ())] >= 1
    assert samples[("frontdesk_postgres_lock_waiting_backends", ())] == 0
    assert samples[("frontdesk_vitals_up", (("source", "database"),))] == 1
    assert samples[("frontdesk_vitals_up", (("source", "redis"),))] == 1
