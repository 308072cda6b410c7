"""Fixtures of the chaos suite: the suite's own PostgreSQL and Redis (once per run), a fresh database and a fresh
Frontdesk (gateways, workers, fake providers) per scenario, and the table of figures at the end of the run.

``FRONTDESK_CHAOS=short`` (the default, part of ``make test``) runs every scenario briefly; ``FRONTDESK_CHAOS=full``
(``make chaos``) runs them at full length.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis import Redis

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.services.demo import seed_demo
from gateway.migrate import upgrade
from tests.chaos import figures as figures_module
from tests.chaos.figures import Figures
from tests.chaos.stack import Stack, fake_providers, stack_env
from tests.servers import PrivatePostgres, PrivateRedis, private_postgres, private_redis

TEMPLATE = "frontdesk_chaos_template"
_collected: list[Figures] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _collected:
        terminalreporter.section(f"chaos figures ({figures_module.mode()})")
        terminalreporter.write_line(figures_module.table(_collected))
        terminalreporter.write_line(f"(kept in {figures_module.results_file()}; `python -m tests.chaos.report`)")


@pytest.fixture(scope="session")
def chaos_mode() -> str:
    return figures_module.mode()


@pytest.fixture(scope="session")
def chaos_postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def chaos_redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture(scope="session")
def chaos_template(chaos_postgres: PrivatePostgres) -> str:
    """A migrated database with the demo clinic; each scenario's database is a copy of it."""

    async def make() -> None:
        conn = await asyncpg.connect(chaos_postgres.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        finally:
            await conn.close()

    asyncio.run(make())
    url = chaos_postgres.database_url(TEMPLATE)
    upgrade(url)

    async def seed() -> None:
        engine = make_engine(url, pool_size=1)
        try:
            async with make_sessionmaker(engine)() as db, db.begin():
                await seed_demo(db)
        finally:
            await engine.dispose()

    asyncio.run(seed())
    return TEMPLATE


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """The scenario's figures, saved (and shown at the end of the run) whether it passed or not."""
    if not _collected:  # the first scenario of this run: the figures of an earlier run go
        with contextlib.suppress(OSError):
            figures_module.results_file().unlink()
    found = Figures(scenario=request.node.name.removeprefix("test_"))
    yield found
    report = getattr(request.node, "rep_call", None)
    if report is not None:
        found.result = "passed" if report.passed else "FAILED"
    found.save()
    _collected.append(found)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


MakeStack = Callable[..., contextlib.AbstractAsyncContextManager[Stack]]


@pytest.fixture
def make_stack(chaos_postgres: PrivatePostgres, chaos_redis: PrivateRedis, chaos_template: str) -> MakeStack:
    """``async with make_stack(gateways=2, workers=2, cut_off=True, **env) as stack``: a fresh database (a copy of
    the template), an empty Redis, the fake providers and the processes; every process is gone afterwards."""

    @contextlib.asynccontextmanager
    async def make(*, gateways: int, workers: int, cut_off: bool = True, **env: str) -> AsyncIterator[Stack]:
        if chaos_redis.process is None:  # an earlier scenario failed while Redis was down
            chaos_redis.start()
        if not chaos_postgres.running():
            chaos_postgres.start()
        with Redis.from_url(chaos_redis.url) as redis:
            redis.flushall()
        database = f"chaos_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(chaos_postgres.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{chaos_template}"')
        finally:
            await conn.close()
        logs = Path(tempfile.mkdtemp(prefix=f"frontdesk-chaos-{database}-"))
        async with fake_providers(cut_off=cut_off) as (telegram, twilio):
            stack = Stack(
                chaos_postgres, chaos_redis, database,
                stack_env(chaos_postgres, chaos_redis, database, telegram, twilio, **env), telegram, twilio, logs,
            )  # fmt: skip
            try:
                await stack.start(gateways=gateways, workers=workers)
                yield stack
            finally:
                await asyncio.to_thread(stack.close)
                if chaos_redis.process is None:
                    chaos_redis.start()
                if not chaos_postgres.running():
                    chaos_postgres.start()
                conn = await asyncpg.connect(chaos_postgres.admin_url)
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                finally:
                    await conn.close()

    return make
