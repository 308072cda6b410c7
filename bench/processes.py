"""Real processes for the channel benches: `frontdesk serve`, `frontdesk worker`, the raw baseline server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from devtools import harness


def bench_env(database_url: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TWILIO_"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        FRONTDESK_REDIS_PREFIX=prefix,
        SECRET_KEY="bench-secret-key-0123456789",
        PYTHONPATH=str(harness.ROOT),
        **extra,
    )
    return env


@contextlib.contextmanager
def running(
    args: list[str], env: dict[str, str], *, wait_url: str | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process (our interpreter), wait until ``wait_url`` answers, stop it (SIGTERM, then SIGKILL).

    Its output is dropped, or appended to ``log`` (e.g. to see what a bench's workers did)."""
    output = log.open("ab") if log is not None else None
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
        [sys.executable, *args],
        env=env,
        cwd=harness.ROOT,
        stdout=output or subprocess.DEVNULL,
        stderr=output or subprocess.DEVNULL,
    )
    try:
        if wait_url:
            harness.wait_for_http(wait_url, timeout=60, process=process)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if output is not None:
            output.close()
