"""Test harness: real PostgreSQL and Redis for every test run, never mocks.

PostgreSQL: the machine's server at 127.0.0.1:5432 when it answers, else the embedded one (under a temp dir); each
run gets its own fresh database, migrated with Alembic, dropped at the end. Redis: the machine's server at
127.0.0.1:6379 when it answers, else an embedded one; each run takes a Redis database number nobody else holds (a
file lock per number) and a key prefix of its own, so parallel runs do not see each other's queues.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
MACHINE_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_REDIS = ("127.0.0.1", 6379)


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Backing:
    """Where this run's Postgres and Redis are, and how to give them back."""

    admin_url: str  # a plain postgresql:// URL to the maintenance database
    redis_host: str
    redis_port: int
    redis_db: int
    _closers: list[object]

    def database_url(self, name: str) -> str:
        base, _, query = self.admin_url.partition("?")
        base = base.rsplit("/", 1)[0] + "/" + name
        return base + ("?" + query if query else "")

    def redis_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"


async def create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _lock_redis_db() -> tuple[int, IO[str]]:
    """Take the first Redis database number 1-15 that no other test run on this machine holds."""
    for number in range(1, 16):
        handle = open(Path(tempfile.gettempdir()) / f"frontdesk-test-redis-db-{number}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return number, handle
    raise RuntimeError("all Redis databases 1-15 are held by other test runs")


@contextlib.contextmanager
def backing_services() -> Iterator[Backing]:
    closers: list[object] = []
    tmp = Path(tempfile.mkdtemp(prefix="frontdesk-test-"))
    if port_open("127.0.0.1", 5432):
        admin_url = MACHINE_PG
    else:
        from gateway.embedded import start_postgres

        url, stop = start_postgres(tmp)
        admin_url = url.replace("postgresql+asyncpg://", "postgresql://").replace("/frontdesk?", "/postgres?")
        if stop:
            closers.append(stop)
    if port_open(*MACHINE_REDIS):
        host, port = MACHINE_REDIS
    else:
        from gateway.embedded import start_redis

        url, stop = start_redis(tmp)
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])
        if stop:
            closers.append(stop)
    db_number, lock = _lock_redis_db()
    try:
        yield Backing(admin_url, host, port, db_number, closers)
    finally:
        lock.close()
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()  # type: ignore[operator]


def new_name(prefix: str = "frontdesk_test") -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


def wait_for_http(url: str, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own local server
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def frontdesk_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "frontdesk", *args]
