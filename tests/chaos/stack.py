"""One scenario's Frontdesk: gateways and workers as real processes on the suite's own PostgreSQL and Redis, the fake
Telegram and Twilio APIs in this process, and what a scenario needs to kill, restart and look inside them.

Every process is started in a process group of its own and remembered; :meth:`Stack.close` (run by the fixture's
teardown, also when the scenario failed) kills every group that is left, so nothing outlives the scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

from channels.network import SEND_TIMEOUT
from devtools import harness
from devtools.fakes.telegram_api import FakeTelegram, running_fake_telegram
from devtools.fakes.twilio_api import FakeTwilio, running_fake_twilio
from tests.servers import Child, PrivatePostgres, PrivateRedis, start

BOT_TOKEN = "424242:chaos-suite"
WEBHOOK_SECRET = "chaos-webhook-secret"
TWILIO_SID, TWILIO_TOKEN = "AC" + "7" * 32, "chaos-twilio-auth-token"
CLINIC_WHATSAPP = "whatsapp:+14155238886"
SECRET_KEY = "chaos-secret-key-0123456789abcdef"
#: Sweep every 5 s and take back a dead worker's claim 10 s after the sender's own timeout (so a slow but live send
#: is never taken back): scenarios wait for what a killed worker left, not the production defaults' two minutes.
FAST_RECLAIM = {"FRONTDESK_SWEEP_EVERY": "5", "FRONTDESK_OUTBOX_RECLAIM_AFTER": str(int(SEND_TIMEOUT) + 10)}
# --- the fake providers ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_providers(*, cut_off: bool) -> AsyncIterator[tuple[FakeTelegram, FakeTwilio]]:
    """Both fakes. ``cut_off``: a request whose client goes away is cancelled before the fake accepts it (a
    provider that had not taken the message when the connection broke), else the fake finishes it and accepts the
    message although nobody reads the answer (a provider that took it: the sender cannot know)."""
    async with (
        running_fake_telegram(cut_off=cut_off) as telegram,
        running_fake_twilio(accounts={TWILIO_SID: TWILIO_TOKEN}, cut_off=cut_off) as twilio,
    ):
        yield telegram, twilio


# --- processes -------------------------------------------------------------------------------------------------


@dataclass
class Proc(Child):
    """A `frontdesk ...` process of the scenario (a gateway or a worker), its output in a log file."""

    role: str = ""
    log: Path = field(default_factory=Path)
    base: str | None = None  # a gateway's URL

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie, or a pid taken by someone else since, does not count)."""
    left = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(process)
    return left


@dataclass
class Stack:
    pg: PrivatePostgres
    redis: PrivateRedis
    database: str
    env: dict[str, str]
    telegram: FakeTelegram
    twilio: FakeTwilio
    logs: Path
    procs: list[Proc] = field(default_factory=list)

    @property
    def gateways(self) -> list[Proc]:
        return [p for p in self.procs if p.role == "gateway" and p.alive()]

    @property
    def workers(self) -> list[Proc]:
        return [p for p in self.procs if p.role == "worker" and p.alive()]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg.port}/{self.database}"

    def _spawn(self, role: str, env: dict[str, str], *args: str) -> Proc:
        log = self.logs / f"{role}-{len(self.procs)}.log"
        with log.open("ab") as out:
            proc = Proc(start(env, *args, output=out).popen, role=role, log=log)
        self.procs.append(proc)
        return proc

    async def start_gateway(self) -> Proc:
        port = harness.free_port()
        base = f"http://127.0.0.1:{port}"
        proc = self._spawn("gateway", {**self.env, "PUBLIC_BASE_URL": base}, "serve", "--port", str(port))
        proc.base = base
        await asyncio.to_thread(harness.wait_for_http, f"{base}/health", timeout=90, process=proc.popen)
        return proc

    def start_worker(self) -> Proc:
        return self._spawn("worker", self.env, "worker")

    async def start(self, *, gateways: int, workers: int) -> None:
        for _ in range(workers):
            self.start_worker()
        await asyncio.gather(*(self.start_gateway() for _ in range(gateways)))
        await self.workers_ready(workers)

    async def workers_ready(self, count: int, *, seconds: float = 90) -> None:
        """Until ``count`` live workers have registered with RQ (they are then taking jobs)."""
        from redis.asyncio import Redis

        deadline = time.monotonic() + seconds
        async with Redis.from_url(self.redis.url) as redis:
            while True:
                names = {n.decode() for n in await redis.smembers("rq:workers")}  # type: ignore[misc]
                pids = {p.pid for p in self.workers}
                ready = sum(1 for name in names if any(f"frontdesk-{pid}" in name for pid in pids))
                if ready >= count:
                    return
                dead = [p for p in self.procs if p.role == "worker" and not p.alive()]
                if time.monotonic() > deadline or (dead and len(self.workers) < count):
                    raise AssertionError(f"{ready} of {count} workers came up; logs in {self.logs}")
                await asyncio.sleep(0.2)

    def close(self) -> None:
        """Kill every process group the scenario started (a graceful stop is not what the suite measures)."""
        for proc in self.procs:
            proc.kill()

    def errors_logged(self) -> dict[str, int]:
        """Tracebacks in the processes' logs, by their last line (what a scenario shows, besides its figures)."""
        found: dict[str, int] = {}
        for proc in self.procs:
            lines = proc.log_text().splitlines()
            for index, line in enumerate(lines):
                if line.startswith("Traceback"):
                    end = next((lines[j] for j in range(index + 1, len(lines)) if lines[j] and lines[j][0] != " "),
                               "?")  # fmt: skip
                    found[end[:160]] = found.get(end[:160], 0) + 1
        return found

    # --- looking inside PostgreSQL ---

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One statement on a connection of its own (a restart may have cut any pooled one)."""
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def query_when_up(self, sql: str, *args: Any, seconds: float = 60) -> list[asyncpg.Record]:
        deadline = time.monotonic() + seconds
        while True:
            try:
                return await self.query(sql, *args)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def stuck_in_transaction(self, *, older_than: float = 5.0) -> list[asyncpg.Record]:
        """Backends of this database idle in a transaction for more than ``older_than`` seconds."""
        return await self.query(
            "SELECT pid, client_port, state, now() - state_change AS idle, left(query, 120) AS query"
            " FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'"
            " AND now() - state_change > make_interval(secs => $2)",
            self.database,
            older_than,
        )

    async def backends_of(self, ports: set[int]) -> list[asyncpg.Record]:
        if not ports:
            return []
        return await self.query(
            "SELECT pid, client_port, state FROM pg_stat_activity WHERE datname = $1 AND client_port = ANY($2)",
            self.database,
            list(ports),
        )

    def database_ports(self, proc: Proc) -> set[int]:
        """The local ports of the PostgreSQL connections ``proc`` and its descendants hold."""
        ports: set[int] = set()
        for process in [psutil.Process(proc.pid), *proc.descendants()]:
            with contextlib.suppress(psutil.Error):
                for conn in process.net_connections(kind="tcp"):
                    if conn.raddr and conn.raddr.port == self.pg.port:
                        ports.add(conn.laddr.port)
        return ports

    # --- a staff member at the desk ---

    async def staff_token(self, http: aiohttp.ClientSession, role: str = "owner") -> dict[str, str]:
        """A bearer header for the staff API, from a login code issued through the CLI as an operator would."""
        done = await asyncio.to_thread(
            subprocess.run,
            harness.frontdesk_command("login-code", "--role", role, "--name", f"Chaos {secrets.token_hex(2)}"),
            env=self.env, cwd=harness.ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        code = done.stdout.strip().splitlines()[-1].strip()
        base = self.gateways[0].base
        async with http.post(f"{base}/api/v1/auth/login", json={"code": code}) as response:
            assert response.status == 200, await response.text()
            return {"Authorization": f"Bearer {(await response.json())['token']}"}


def stack_env(pg: PrivatePostgres, redis: PrivateRedis, database: str, telegram: FakeTelegram, twilio: FakeTwilio,
              **extra: str) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TWILIO_", "FRONTDESK_"))}
    env.update(
        DATABASE_URL=pg.database_url(database),
        REDIS_URL=redis.url,
        SECRET_KEY=SECRET_KEY,
        PYTHONPATH=str(harness.ROOT),
        FRONTDESK_REDIS_PREFIX=f"chaos{secrets.token_hex(3)}",
        FRONTDESK_HOME=str(pg.dir.parent / f"frontdesk-chaos-home-{database}"),
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TELEGRAM_API_URL=telegram.base_url,
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        TWILIO_WHATSAPP_FROM=CLINIC_WHATSAPP,
        TWILIO_API_URL=twilio.base_url,
        **extra,
    )
    return env
