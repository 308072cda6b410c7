"""Fixtures shared by every layer: real PostgreSQL (a fresh database per run) and real Redis (a database of its own)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis import Redis as SyncRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from booking_core.db.engine import make_engine, make_sessionmaker
from devtools import harness
from gateway.migrate import upgrade
from infra.settings import Settings, load_settings

TEST_SECRET = "test-secret-key-not-for-production"


@pytest.fixture(scope="session")
def backing() -> Iterator[harness.Backing]:
    with harness.backing_services() as services:
        yield services


@pytest.fixture(scope="session")
def database_name(backing: harness.Backing) -> Iterator[str]:
    name = harness.new_name()
    asyncio.run(harness.create_database(backing.admin_url, name))
    upgrade(backing.database_url(name).replace("postgresql://", "postgresql+asyncpg://"))
    yield name
    asyncio.run(harness.drop_database(backing.admin_url, name))


@pytest.fixture(scope="session")
def settings(backing: harness.Backing, database_name: str) -> Settings:
    redis = SyncRedis.from_url(backing.redis_url())
    redis.flushdb()
    redis.close()
    return load_settings(
        {},
        DATABASE_URL=backing.database_url(database_name),
        REDIS_URL=backing.redis_url(),
        SECRET_KEY=TEST_SECRET,
        FRONTDESK_REDIS_PREFIX=f"fdt{os.getpid()}",
        PUBLIC_BASE_URL="http://testserver.local",
        FRONTDESK_HOME="/tmp/frontdesk-test-home",
        # Every test is a visitor from 127.0.0.1, and a run lasts longer than the limits' windows: tests of the
        # web-chat limits set their own.
        FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=100_000,
        FRONTDESK_WEBCHAT_OPEN_SOCKETS_PER_ADDRESS=10_000,
    )


@pytest.fixture(scope="session")
def child_env(settings: Settings) -> dict[str, str]:
    """Environment for `frontdesk ...` child processes pointed at this run's database and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TWILIO_"))}
    env.update(
        DATABASE_URL=settings.DATABASE_URL or "",
        REDIS_URL=settings.REDIS_URL or "",
        SECRET_KEY=settings.SECRET_KEY,
        FRONTDESK_REDIS_PREFIX=settings.FRONTDESK_REDIS_PREFIX,
        PUBLIC_BASE_URL=settings.PUBLIC_BASE_URL,
        PYTHONPATH=str(harness.ROOT),
        FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS=str(settings.FRONTDESK_WEBCHAT_NEW_VISITORS_PER_ADDRESS),
        FRONTDESK_WEBCHAT_OPEN_SOCKETS_PER_ADDRESS=str(settings.FRONTDESK_WEBCHAT_OPEN_SOCKETS_PER_ADDRESS),
    )
    return env


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert settings.async_database_url is not None
    eng = make_engine(settings.async_database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
async def db(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for arranging and checking; commit explicitly when another connection must see the data."""
    async with sessionmaker() as session:
        yield session


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[SyncRedis]:
    client = SyncRedis.from_url(settings.REDIS_URL or "")
    yield client
    client.close()


@pytest.fixture
def run_cli(child_env: dict[str, str]) -> Any:
    """Run `frontdesk ARGS` as a real process against this run's services."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            harness.frontdesk_command(*args),
            env=env or child_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=harness.ROOT,
            stdin=subprocess.DEVNULL,
        )

    return run


@pytest.fixture
def isolated_env(backing: harness.Backing, child_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """`child_env` with a database and Redis prefix of its own, for tests that start real workers.

    A worker sweeps the whole database (unanswered messages, due outbox rows): pointed at the shared test
    database it would answer and send other tests' data. This fixture gives it a fresh, migrated one.
    """
    name = harness.new_name("frontdesk_iso")
    asyncio.run(harness.create_database(backing.admin_url, name))
    url = backing.database_url(name).replace("postgresql://", "postgresql+asyncpg://")
    upgrade(url)
    try:
        yield dict(
            child_env,
            DATABASE_URL=url,
            FRONTDESK_REDIS_PREFIX=f"{child_env['FRONTDESK_REDIS_PREFIX']}i{os.getpid() % 1000}{name[-6:]}",
        )
    finally:
        asyncio.run(harness.drop_database(backing.admin_url, name))
