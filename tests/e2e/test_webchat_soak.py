"""Soak: web-chat visitors arrive, chat and leave for a while against a real `frontdesk serve` and `frontdesk worker`;
the gateway's Redis connections, open file descriptors and memory stay flat.

Each visitor opens the widget's socket, says hello (a third come back with the token of an earlier visit), writes,
waits for the acknowledgement and for the chatbot's answer (published by the worker process, delivered through the
gateway's one reply subscription), and leaves: most close the socket, some just drop the connection (a phone losing
its network), some leave before saying hello. After a warm-up the gateway is measured when no visitor is
connected, then again after the soak: the figures must be where they were (bounded slack, no growth per visitor).

Bounded: FRONTDESK_SOAK_SECONDS (default 60) of soak after a quarter of that as warm-up; `make chaos` may run it
for longer. The figures are printed (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil
import pytest
from aiohttp import WSMsgType
from redis.asyncio import Redis

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.services.demo import seed_demo
from devtools import harness
from gateway.app import REDIS_MAX_CONNECTIONS
from tests.servers import running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e]

SOAK_SECONDS = float(os.environ.get("FRONTDESK_SOAK_SECONDS", "60"))
WARMUP_SECONDS = max(10.0, SOAK_SECONDS / 4)
VISITORS_AT_ONCE = 12
#: Slack on the quiet figures after the soak against those after the warm-up, while the soak serves hundreds of
#: visitors (a leak per visitor would be far above any of these): a few descriptors besides the connections of the
#: bounded pools, a few more Redis connections of the bounded pool (it opens what a busier moment needs, up to its
#: size), and memory within 10 % + 8 MiB (allocator arenas).
FD_SLACK = 8
REDIS_SLACK = 6
RSS_SLACK = 0.10
RSS_SLACK_BYTES = 8 * 1024 * 1024
#: Redis connections of a gateway at most: its bounded pool, the web-chat subscription, RQ's enqueue clients.
REDIS_BOUND = REDIS_MAX_CONNECTIONS + 1 + 4


@dataclass
class Figures:
    redis: int  # established connections of the gateway process to Redis
    subscriptions: int  # Redis clients named as the gateway's web-chat subscription
    postgres: int  # established connections of the gateway process to PostgreSQL (its pools)
    fds: int
    rss: int

    @property
    def other_fds(self) -> int:
        """Descriptors besides the pools' connections: listening socket, visitors' sockets, files, pipes."""
        return self.fds - self.redis - self.postgres

    def line(self) -> str:
        return (f"redis={self.redis} subscriptions={self.subscriptions} postgres={self.postgres} fds={self.fds} "
                f"(other than pools {self.other_fds}) rss={self.rss / 2**20:.1f}MiB")  # fmt: skip


@dataclass
class Tally:
    visitors: int = 0
    acked: int = 0
    replies: int = 0
    problems: list[str] = field(default_factory=list)


async def measure(pid: int, redis_url: str, database_url: str, admin: Redis) -> Figures:
    process = psutil.Process(pid)
    connections = [c for c in process.net_connections("tcp") if c.raddr and c.status == psutil.CONN_ESTABLISHED]
    redis_port = urlsplit(redis_url).port or 6379
    postgres_port = urlsplit(database_url).port or 5432
    names = [c.get("name") for c in await admin.client_list()]
    return Figures(
        redis=sum(1 for c in connections if c.raddr.port == redis_port),
        subscriptions=names.count(f"frontdesk-webchat-{pid}"),
        postgres=sum(1 for c in connections if c.raddr.port == postgres_port),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        rss=process.memory_info().rss,
    )


async def next_frame(ws: aiohttp.ClientWebSocketResponse, kind: str, *, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        if msg.type != WSMsgType.TEXT:
            raise AssertionError(f"the socket ended while waiting for {kind}: {msg.type}")
        frame: dict[str, Any] = json.loads(msg.data)
        if frame["type"] == kind:
            return frame
        if frame["type"] == "error":
            raise AssertionError(f"error frame while waiting for {kind}: {frame}")


async def visit(http: aiohttp.ClientSession, base: str, tokens: list[str], tally: Tally) -> None:
    """One visitor: arrive, (maybe) chat, leave in one of the ways visitors leave."""
    tally.visitors += 1
    ws = await http.ws_connect(f"{base}/webchat/ws", headers={"Origin": base}, heartbeat=None)
    try:
        if random.random() < 0.1:  # gone before the hello (a bounce)
            _abort(ws)
            return
        token = random.choice(tokens) if tokens and random.random() < 0.33 else None
        await ws.send_json({"type": "hello", "token": token, "language": random.choice(["en", "id"])})
        welcome = await next_frame(ws, "welcome", seconds=60)
        if token is None and len(tokens) < 50:
            tokens.append(welcome["token"])
        frame_id = str(uuid.uuid4())
        await ws.send_json({"type": "message", "id": frame_id, "text": random.choice(["Hello", "Halo", "Jam buka?"])})
        ack = await next_frame(ws, "ack", seconds=60)
        if ack.get("id") != frame_id:
            tally.problems.append(f"ack for another frame: {ack}")
        tally.acked += 1
        await next_frame(ws, "message", seconds=90)  # the chatbot's answer, from the worker process
        tally.replies += 1
        if random.random() < 0.3:
            _abort(ws)
    except AssertionError as exc:
        tally.problems.append(str(exc))
    finally:
        with contextlib.suppress(Exception):
            await ws.close()


def _abort(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Drop the connection without a close frame (the server notices the end of the stream)."""
    connection = ws._response.connection
    if connection is not None and connection.transport is not None:
        connection.transport.abort()


async def load(base: str, seconds: float, tokens: list[str], tally: Tally, samples: list[Figures], probe: Any) -> None:
    """Visitors for ``seconds``: VISITORS_AT_ONCE at a time, each replaced as it leaves; sampled every few seconds."""
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def lane() -> None:
            while time.monotonic() < deadline:
                await visit(http, base, tokens, tally)

        async def sampler() -> None:
            while time.monotonic() < deadline:
                samples.append(await probe())
                await asyncio.sleep(2)

        await asyncio.gather(sampler(), *(lane() for _ in range(VISITORS_AT_ONCE)))


@contextlib.asynccontextmanager
async def clinic(isolated_env: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    engine = make_engine(isolated_env["DATABASE_URL"], pool_size=2)
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            await seed_demo(db)
    finally:
        await engine.dispose()
    yield {
        **isolated_env,
        "FRONTDESK_REDIS_PREFIX": f"soak{secrets.token_hex(3)}",
        # Every visitor comes from 127.0.0.1 here: the per-address and clinic-wide limits have tests of their own.
        "FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS": "1000000",
        "FRONTDESK_WEBCHAT_NEW_VISITORS_PER_MINUTE": "1000000",
        "FRONTDESK_WEBCHAT_OPEN_SOCKETS_PER_ADDRESS": "10000",
    }


async def test_visitors_coming_and_going_leave_redis_clients_descriptors_and_memory_flat(
    isolated_env: dict[str, str],
) -> None:
    port = harness.free_port()
    base = f"http://127.0.0.1:{port}"
    async with (
        clinic(isolated_env) as env,
        running(env, "worker"),
        running({**env, "PUBLIC_BASE_URL": base}, "serve", "--port", str(port)) as served,
    ):
        await asyncio.to_thread(harness.wait_for_http, f"{base}/health", timeout=60, process=served.popen)
        pid = served.popen.pid
        admin = Redis.from_url(env["REDIS_URL"])
        try:

            async def probe() -> Figures:
                return await measure(pid, env["REDIS_URL"], env["DATABASE_URL"], admin)

            tokens: list[str] = []
            warm, soak = Tally(), Tally()
            warm_samples: list[Figures] = []
            await load(base, WARMUP_SECONDS, tokens, warm, warm_samples, probe)
            quiet_before = await _quiet(probe)
            samples: list[Figures] = []
            await load(base, SOAK_SECONDS, tokens, soak, samples, probe)
            quiet_after = await _quiet(probe, like=quiet_before)
        finally:
            await admin.aclose()

    print(f"\nwebchat soak: {WARMUP_SECONDS:.0f}s warm-up ({warm.visitors} visitors), {SOAK_SECONDS:.0f}s soak "
          f"({soak.visitors} visitors, {soak.acked} acknowledged, {soak.replies} replies delivered)")  # fmt: skip
    print(f"  after warm-up: {quiet_before.line()}")
    print(f"  during soak:   max redis={max(s.redis for s in samples)} max postgres={max(s.postgres for s in samples)} "
          f"max fds={max(s.fds for s in samples)} "
          f"max rss={max(s.rss for s in samples) / 2**20:.1f}MiB")  # fmt: skip
    print(f"  after soak:    {quiet_after.line()}")

    assert not warm.problems and not soak.problems, (warm.problems + soak.problems)[:5]
    assert soak.visitors >= 50, "the soak served too few visitors to say anything"
    assert soak.acked == soak.replies  # every message taken was answered live, by the worker, through the hub
    assert quiet_before.subscriptions == quiet_after.subscriptions == 1
    assert all(s.subscriptions == 1 for s in samples)
    assert max(s.redis for s in samples) <= REDIS_BOUND and quiet_after.redis <= REDIS_BOUND
    assert quiet_after.redis <= quiet_before.redis + REDIS_SLACK, (quiet_before, quiet_after)
    assert quiet_after.other_fds <= quiet_before.other_fds + FD_SLACK, (quiet_before, quiet_after)
    assert quiet_after.rss <= quiet_before.rss * (1 + RSS_SLACK) + RSS_SLACK_BYTES, (quiet_before, quiet_after)


async def _quiet(probe: Any, like: Figures | None = None) -> Figures:
    """The gateway's figures once the sockets of the last visitors are closed on its side too: when descriptors
    stop falling (or, after the soak, are back to the warm-up's quiet figure)."""
    last = await probe()
    if like is not None:
        with contextlib.suppress(AssertionError):

            async def back() -> bool:
                nonlocal last
                last = await probe()
                return last.other_fds <= like.other_fds

            await eventually(back, seconds=30, what="the gateway settling")
        return last
    for _ in range(100):
        await asyncio.sleep(0.3)
        now = await probe()
        if now.other_fds >= last.other_fds:
            return now
        last = now
    return last
