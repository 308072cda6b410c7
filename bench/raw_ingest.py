"""The B1/B2 baseline: a bare aiohttp handler that only INSERTs the Telegram update and answers 200.

`python -m bench.raw_ingest PORT` against DATABASE_URL; the bench creates its table.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

POOL = web.AppKey("pool", asyncpg.Pool)
CREATE = "CREATE TABLE IF NOT EXISTS raw_updates (update_id bigint PRIMARY KEY, payload jsonb NOT NULL)"


async def handle(request: web.Request) -> web.Response:
    update = await request.json()
    await request.app[POOL].execute(
        "INSERT INTO raw_updates (update_id, payload) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        update["update_id"],
        json.dumps(update),
    )
    return web.json_response({"ok": True})


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def pool(app: web.Application) -> AsyncIterator[None]:
    dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    app[POOL] = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    await app[POOL].execute(CREATE)
    yield
    await app[POOL].close()


def main() -> None:
    app = web.Application()
    app.cleanup_ctx.append(pool)
    app.router.add_post("/webhooks/telegram", handle)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
