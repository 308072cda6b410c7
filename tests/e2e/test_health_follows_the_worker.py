"""`frontdesk serve`'s /health follows a real `frontdesk worker`: none yet, one serving, one killed with SIGKILL.

A worker killed with ``kill -9`` cannot say goodbye: RQ keeps listing it until its record expires. Only its
heartbeat stops, and that is what /health watches.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests import servers
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def asking(http: aiohttp.ClientSession, base: str, wanted: Callable[[int, dict[str, str]], bool]) -> Any:
    async def check() -> dict[str, str] | None:
        async with http.get(f"{base}/health") as response:
            body: dict[str, str] = await response.json()
            return body if wanted(response.status, body) else None

    return check


async def test_health_follows_a_real_worker_from_none_to_serving_to_killed(isolated_env: dict[str, str]) -> None:
    env = {
        **isolated_env,
        "FRONTDESK_REDIS_PREFIX": f"fdhw{secrets.token_hex(4)}",
        # Housekeeping (and so an idle worker's heartbeat) every 5 s: a silent worker is noticed after 10 s.
        "FRONTDESK_SWEEP_EVERY": "2.5",
        "FRONTDESK_HEALTH_WORKER_SILENCE": "4",
    }
    async with servers.serving_async(env) as base, aiohttp.ClientSession() as http:
        none = await eventually(
            asking(http, base, lambda status, body: status == 503 and "no worker" in body.get("workers", "")),
            seconds=60,
            what="/health to miss the worker",
        )
        assert none["workers"].startswith("no worker registered"), none
        assert none["ingest"] == "ok" and none["outbox"] == "ok"

        worker = servers.start(env, "worker")
        try:
            serving = await eventually(
                asking(http, base, lambda status, body: status == 200), seconds=90, what="/health to see the worker"
            )
            assert set(serving.values()) == {"ok"}, serving

            os.kill(worker.popen.pid, signal.SIGKILL)  # the worker alone, as `kill -9 PID` does
            killed = await eventually(
                asking(http, base, lambda status, body: status == 503 and "no worker" in body.get("workers", "")),
                seconds=90,
                what="/health to notice the dead worker",
            )
            assert "no worker heartbeat for" in killed["workers"] or "no worker registered" in killed["workers"]
            assert killed["database"] == "ok" and killed["redis"] == "ok"
        finally:
            worker.kill()
