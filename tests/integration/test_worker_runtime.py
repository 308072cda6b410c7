"""The worker path: a real `frontdesk worker` process runs jobs on one loop, one engine and one connection pool."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from redis import Redis
from rq.job import Job, JobStatus

from devtools import harness
from infra import job_names, queues


@pytest.fixture
def worker(isolated_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker on a database of its own (its sweep must not answer other tests' messages)."""
    process = subprocess.Popen(harness.frontdesk_command("worker"), env=isolated_env, cwd=harness.ROOT)
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def _wait(job: Job, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.get_status(refresh=True)
        if status == JobStatus.FINISHED:
            return job.return_value()
        if status == JobStatus.FAILED:
            raise AssertionError(f"job failed: {job.latest_result()}")
        time.sleep(0.05)
    raise AssertionError("job did not finish in time")


def test_jobs_share_one_loop_engine_and_connection_in_the_worker_process(
    worker: subprocess.Popen[bytes], isolated_env: dict[str, str], sync_redis: Redis
) -> None:
    prefix = isolated_env["FRONTDESK_REDIS_PREFIX"]
    results = [_wait(queues.enqueue(sync_redis, prefix, job_names.PING, f"ping {n}")) for n in range(5)]
    assert all(isinstance(r, dict) for r in results)
    first = results[0]
    assert isinstance(first, dict)
    assert first["database"] == isolated_env["DATABASE_URL"].rsplit("/", 1)[1]
    assert first["pid"] == worker.pid
    assert {r["pid"] for r in results} == {worker.pid}  # type: ignore[index]
    assert len({r["loop_id"] for r in results}) == 1  # type: ignore[index]
    assert len({r["engine_id"] for r in results}) == 1  # type: ignore[index]
    # No connection set-up per job: the pool's one connection serves them all (and the worker's own sweep).
    assert len({r["connections_opened"] for r in results}) == 1  # type: ignore[index]
    assert results[0]["connections_opened"] == 1  # type: ignore[index]
    runs = [r["jobs_run"] for r in results]  # type: ignore[index]
    assert runs == sorted(runs) and len(set(runs)) == 5


def test_a_job_enqueued_for_later_is_run_by_the_scheduler(
    worker: subprocess.Popen[bytes], isolated_env: dict[str, str], sync_redis: Redis
) -> None:
    from datetime import UTC, datetime, timedelta

    prefix = isolated_env["FRONTDESK_REDIS_PREFIX"]
    job = queues.enqueue(
        sync_redis,
        prefix,
        job_names.PING,
        "later",
        at=datetime.now(UTC) + timedelta(seconds=1),
        job_id=f"{prefix}-later-ping",
    )
    assert job.get_status() == JobStatus.SCHEDULED
    result = _wait(job, timeout=60)
    assert isinstance(result, dict) and result["note"] == "later"
