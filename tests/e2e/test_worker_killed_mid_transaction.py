"""A worker killed with SIGKILL in the middle of a transaction: nothing of it lives on, nothing stays locked.

The worker alone is killed (not its process group), as `kill -9 PID` by an operator or the OOM killer does. Before,
RQ's scheduler was a forked child that inherited the worker's PostgreSQL sockets: it outlived the kill, kept the
dead worker's transaction open with its row locks, and every ingest of those rows waited behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from pathlib import Path

import aiohttp
import pytest
from redis import Redis
from sqlalchemy import text

from devtools.builders import build_clinic
from infra import queues
from tests import servers
from tests.e2e import faults_support as faults
from tests.e2e.faults_support import new_chat_id, patient_writes
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, their children, ...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie holds no sockets
    return True


async def test_a_worker_killed_holding_a_row_lock_leaves_no_process_and_no_lock_behind(
    isolated_env: dict[str, str],
) -> None:
    async with faults.fake_telegram() as telegram, faults.database(isolated_env) as sessions:
        env = faults.fault_env(isolated_env, telegram, FRONTDESK_SWEEP_EVERY="2")
        async with sessions() as db:
            clinic = await build_clinic(db)
        patient_id = clinic.patients["siti"].id
        prefix = env["FRONTDESK_REDIS_PREFIX"]
        redis = Redis.from_url(env["REDIS_URL"])
        marker = f"{prefix}:test:locked:{secrets.token_hex(4)}"

        doomed = servers.start(env, "worker")
        try:
            queues.enqueue(redis, prefix, "tests.e2e.fault_jobs.hold_a_row_lock", patient_id, marker)
            await eventually(lambda: redis.get(marker), seconds=60, what="the worker to lock the row")
            below = descendants(doomed.popen.pid)
            os.kill(doomed.popen.pid, signal.SIGKILL)  # the worker alone, mid-transaction
            await asyncio.to_thread(doomed.popen.wait, 20)

            # Nothing that was the worker's lives on.
            await eventually(lambda: not any(alive(pid) for pid in below), seconds=30, what="the worker's children")

            # Its transaction is gone: no backend idle in transaction, and the row can be locked at once.
            async def released() -> bool:
                async with sessions() as db, db.begin():
                    stuck = (
                        await db.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                            )
                        )
                    ).scalar_one()
                    await db.execute(text("SET LOCAL lock_timeout = '200ms'"))
                    try:
                        await db.execute(text("SELECT id FROM patients WHERE id = :id FOR UPDATE"), {"id": patient_id})
                    except Exception:
                        return False
                    return stuck == 0

            await eventually(released, seconds=30, what="the dead worker's transaction to end")
        finally:
            doomed.kill()

        # Ingest and delivery go on: a new patient writes, a new worker answers.
        async with servers.serving_async(env) as base, servers.running(env, "worker"), aiohttp.ClientSession() as http:
            chat = new_chat_id()
            await patient_writes(http, base, chat, "/start", name="Rina")

            await eventually(lambda: telegram.sent_messages(chat), seconds=90, what="the new worker to answer")
