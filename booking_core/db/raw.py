"""A small asyncpg pool for the webhooks' hot path: no ORM session, no BEGIN/COMMIT round trips.

The ingest of a message from a chat we already know is a single self-contained statement, and messages that arrive
together run as one pipelined batch in one implicit transaction (``queries.ingest.receive_known_chats_raw``):
one round trip and one commit, on a connection that is handed back as it was. Through an ORM session each message
would cost a session, a pool checkout and BEGIN and COMMIT round trips of its own. Everything else keeps using the
SQLAlchemy engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import Pool

from booking_core.db.engine import SESSION_SETTINGS

#: The type the hot-path services take: a pool whose connections never keep session state between uses.
RawDb: TypeAlias = Pool


async def _keep_as_is(connection: Any) -> None:
    """Nothing here sets session state (no SET, LISTEN or advisory locks), so there is none to reset.

    asyncpg's default reset (``RESET ALL; UNLISTEN *; ...``) would be a second round trip per use; a connection
    left inside a transaction is still rolled back by the pool before this is called.
    """


async def make_raw_pool(
    url: str,
    *,
    max_size: int = 10,
    settings: dict[str, str] | None = None,
    on_connect: Callable[[], None] | None = None,
) -> RawDb:
    """An asyncpg pool for ``url`` (``postgresql://`` or ``postgresql+asyncpg://``); connects lazily.

    No connection is opened here, so the gateway starts (and answers /health with 503) while the database is down.
    ``settings``: more PostgreSQL settings for its connections; ``on_connect`` is called for each one it opens.
    """
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def opened(connection: Any) -> None:
        if on_connect is not None:
            on_connect()

    return await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        reset=_keep_as_is,
        init=opened,
        server_settings={**SESSION_SETTINGS, **(settings or {})},
    )
