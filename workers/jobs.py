"""RQ jobs: module-level functions with primitive arguments that load what they need and call one service."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import text

from workers import runtime


def ping(note: str = "") -> dict[str, Any]:
    """Proves the worker path: database and Redis reached through the process's one loop, engine and client."""
    rt = runtime.current()
    return rt.run(_ping(rt, note))


async def _ping(rt: runtime.Runtime, note: str) -> dict[str, Any]:
    async with rt.engine.connect() as conn:
        database = (await conn.execute(text("SELECT current_database()"))).scalar_one()
    await rt.redis.ping()  # type: ignore[misc]
    return {
        "note": note,
        "pid": os.getpid(),
        "database": database,
        "loop_id": id(rt.loop),
        "engine_id": id(rt.engine),
        "connections_opened": rt.connections_opened,
        "jobs_run": rt.jobs_run,
    }
