"""B6: a real delivery job's throughput on one worker vs an empty RQ job, in the same run of the same worker.

One `SimpleWorker` process (the project's worker: :func:`workers.runtime.run_worker`, in burst mode) runs N empty
jobs (:func:`nothing`) and N ``deliver`` jobs, each sending one outbox row to its own chat at the fake Bot API
(which enforces no limit here), in alternating blocks of 100 from one queue, so that a stretch of the machine being
slow (it is a shared VM) falls on both kinds alike; a few of each kind run first to warm the worker up and are not
counted. Throughput is taken from RQ's own start and end stamps of the counted blocks. Goal: deliveries ≥ 0.5× the
empty jobs' rate, every row sent once and recorded as sent in the database.

Proof that no database connection is opened per job: the worker's runtime counts every connection its engine opens
(the ``ping`` job run last returns the count), and PostgreSQL's own ``pg_stat_database.sessions`` for the bench
database is read before and after the worker's life.

Telegram's 30 messages/s per bot would cap the deliveries at 30 jobs/s: the worker this bench starts
(``python -m bench.b6_delivery_job``) raises the bot's limit to one no test would reach (the per-chat one stays),
so every shared-limit check still runs, in Redis, as in production.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

from redis import Redis
from rq.job import Job
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import Report
from bench.processes import bench_env
from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import ChannelIdentity
from booking_core.domain.messages import Button, OutboundMessage
from booking_core.services import outbox
from devtools import harness
from devtools.fakes.telegram_api import running_fake_telegram
from infra import job_names, queues

JOBS = 2_000
QUICK_JOBS = 300
WARM_UP = 20  # of each kind, not counted: imports, templates, pools and the Bot's session come with the first ones
BLOCK = 100  # jobs of one kind in a row; the two kinds alternate
TOKEN = "555000222:bench-delivery-job"
SECRET = "bench-webhook-secret"
FIRST_CHAT = 800_000_000
#: The empty jobs go first into the deliveries' own queue, so both kinds are dequeued alike (in burst mode RQ asks
#: each queue in turn: both find the chatbot's queue empty first) and nothing else (the sweep a worker start
#: schedules, in the default queue) runs between two of them; the deliveries run next, the ``ping`` last.
EMPTY_QUEUE = queues.OUTBOUND
LIFTED_BOT_LIMIT = 1_000_000  # messages per second: never reached


def nothing() -> None:
    """The empty job: what RQ and the worker cost on their own."""


async def seed(engine: AsyncEngine, count: int) -> tuple[list[int], dict[int, str]]:
    """``count`` Telegram chats, each with one planned reply in the outbox (through the outbox service); the rows'
    ids and where they go (``outbox.take_planned``, as whoever plans messages hands them to the workers)."""
    maker = make_sessionmaker(engine)
    async with maker() as db, db.begin():
        identity_ids = list(
            (
                await db.execute(
                    insert(ChannelIdentity).returning(ChannelIdentity.id, sort_by_parameter_order=True),
                    [
                        {"channel": "telegram", "external_id": str(FIRST_CHAT + n), "display_name": f"Pasien {n}"}
                        for n in range(count)
                    ],
                )
            ).scalars()
        )
        outbox_ids = []
        for n, identity_id in enumerate(identity_ids):
            message = OutboundMessage(
                channel="telegram",
                recipient=str(FIRST_CHAT + n),
                text="Your visit is confirmed: tomorrow 09:30 with dr. Andi at Kemang.",
                buttons=(Button("Reschedule", "menu:resched"), Button("Cancel visit", "menu:cancel")),
            )
            outbox_id = await outbox.add(db, message, kind="confirmation", identity_id=identity_id)
            assert outbox_id is not None
            outbox_ids.append(outbox_id)
    return outbox_ids, outbox.take_planned(db).routes


def _fetched(ids: list[str], redis: Redis) -> list[Job]:
    jobs = Job.fetch_many(ids, connection=redis)
    assert all(job is not None for job in jobs), "a job's record expired before the bench read it"
    return [job for job in jobs if job is not None]


def rate(blocks: list[list[Job]]) -> tuple[float, float]:
    """Jobs per second over the blocks (each from its first job's start to its last one's end, the time between
    blocks left out); and the mean time inside a job."""
    jobs = [job for block in blocks for job in block]
    spans = 0.0
    for block in blocks:
        started = min(job.started_at for job in block if job.started_at is not None)
        ended = max(job.ended_at for job in block if job.ended_at is not None)
        spans += (ended - started).total_seconds()
    busy = sum((job.ended_at - job.started_at).total_seconds() for job in jobs if job.started_at and job.ended_at)
    return len(jobs) / spans, busy / len(jobs)


async def postgres_sessions(engine: AsyncEngine) -> int:
    """Sessions ever established to this database, as PostgreSQL counts them (``pg_stat_database``)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        found = await conn.execute(text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"))
        return int(found.scalar_one())


async def sent_rows(engine: AsyncEngine) -> int:
    """Outbox rows the database holds as sent with the provider's id (each job's record, committed)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM outbox WHERE status = 'sent' AND provider_id IS NOT NULL")
        )
        return int(found.scalar_one())


async def run(engine: AsyncEngine, backing: harness.Backing, *, quick: bool = False) -> Report:
    count = QUICK_JOBS if quick else JOBS
    report = Report(f"B6  delivery job throughput on one worker vs an empty RQ job ({count:,} of each)")
    database_url = engine.url.render_as_string(hide_password=False)
    prefix = f"fdb{harness.new_name('')[-6:]}"
    outbox_ids, routes = await seed(engine, WARM_UP + count)
    redis = Redis.from_url(backing.redis_url())

    def empty_jobs(n: int) -> list[str]:
        return [queues.enqueue(redis, prefix, f"{__name__}.nothing", queue=EMPTY_QUEUE).id for _ in range(n)]

    def delivery_jobs(ids: list[int]) -> list[str]:  # as a request or a job hands its committed rows over
        queues.enqueue_deliveries(redis, prefix, ids, routes)
        return [f"deliver-{outbox_id}" for outbox_id in ids]

    # Warm-up first, then the two kinds in alternating blocks: a stretch of the machine being slow falls on both.
    empty, deliveries = [empty_jobs(WARM_UP)], [delivery_jobs(outbox_ids[:WARM_UP])]
    for start in range(WARM_UP, WARM_UP + count, BLOCK):
        empty.append(empty_jobs(min(BLOCK, WARM_UP + count - start)))
        deliveries.append(delivery_jobs(outbox_ids[start : start + BLOCK]))
    ping = queues.enqueue(redis, prefix, job_names.PING, "b6").id
    async with running_fake_telegram(0) as telegram:
        env = bench_env(
            database_url,
            backing.redis_url(),
            prefix,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_WEBHOOK_SECRET=SECRET,
            TELEGRAM_API_URL=telegram.base_url,
        )
        sessions_before = await postgres_sessions(engine)
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, env=env, cwd=harness.ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.wait_for(worker.wait(), timeout=600)
        await asyncio.sleep(1)  # PostgreSQL reports a session's statistics when it ends
        sessions_after = await postgres_sessions(engine)
        delivered = {m.params.get("chat_id") for m in telegram.sent_messages()}
    recorded = await sent_rows(engine)
    empty_blocks = [_fetched(block, redis) for block in empty]
    delivery_blocks = [_fetched(block, redis) for block in deliveries]
    ping_job = Job.fetch(ping, connection=redis)
    redis.close()
    every_job = [job for block in empty_blocks + delivery_blocks for job in block]
    done = [j for j in every_job if j.get_status() == "finished"]
    sent = sum(1 for block in delivery_blocks for j in block if j.return_value() == "sent")
    empty_rate, empty_mean = rate(empty_blocks[1:])
    delivery_rate, delivery_mean = rate(delivery_blocks[1:])
    pinged: dict[str, Any] = (ping_job.return_value() if ping_job is not None else None) or {}
    ratio = delivery_rate / empty_rate
    connections = int(pinged.get("connections_opened", -1))
    jobs_run = int(pinged.get("jobs_run", 0))
    opened = sessions_after - sessions_before
    all_sent = sent == len(outbox_ids) == recorded and len(delivered) == len(outbox_ids)
    report.ok = ratio >= 0.5 and all_sent and len(done) == len(every_job) and 0 < connections <= 4 and opened <= 4
    report.add("empty job", f"{empty_rate:,.0f} jobs/s ({empty_mean * 1000:.2f} ms inside the job)")
    report.add(
        "deliver job",
        f"{delivery_rate:,.0f} jobs/s ({delivery_mean * 1000:.2f} ms inside the job: claim, shared limits in Redis, "
        f"sendMessage; the record ends while RQ files the job); {sent:,} of {len(outbox_ids):,} sent, to "
        f"{len(delivered):,} chats, {recorded:,} recorded as sent",
    )
    report.add("ratio", f"{ratio:.2f}× (goal ≥ 0.5×)")
    report.add(
        "connections opened",
        f"{connections} by the worker (its engine and its delivery pool) over its {len(every_job) + 1:,} jobs "
        f"({jobs_run:,} of them went through its runtime: the deliveries and the ping; its own count); PostgreSQL "
        f"counted {opened} new session(s) for the bench database while the worker lived",
    )
    return report


def serve_lifted() -> bool:
    """The B6 worker: :func:`workers.runtime.run_worker` in burst mode, Telegram's per-bot limit raised."""
    from channels.base import RateLimit
    from channels.telegram.adapter import TelegramAdapter
    from infra.settings import load_settings
    from workers.runtime import run_worker

    def lifted(self: TelegramAdapter, message: OutboundMessage) -> list[RateLimit]:
        return [
            RateLimit(f"telegram:bot:{self.bot.id}", LIFTED_BOT_LIMIT, 1.0),
            RateLimit(f"telegram:chat:{self.bot.id}:{message.recipient}", 1, 1.0),
        ]

    TelegramAdapter.rate_limits = lifted  # type: ignore[method-assign]
    return run_worker(load_settings(), burst=True, name=f"bench-b6-{os.getpid()}")


if __name__ == "__main__":
    serve_lifted()
