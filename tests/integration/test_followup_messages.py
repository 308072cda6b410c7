"""The messages that follow a booking: confirmation link, check-in QR and thank-you, each written to the outbox
exactly once however often it is asked for (each in a transaction of its own, as the booking, the acceptance and the
completion plan them); the last test has a real `frontdesk worker` process deliver the confirmation to the fake
Telegram Bot API.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import signal
import struct
import subprocess
import time
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import segno
from aiohttp.test_utils import TestClient
from redis import Redis as SyncRedis
from rq.job import Job
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.db.tables import AuditEntry, ChannelIdentity, Lead, OutboxMessage
from booking_core.services import visit_messages
from devtools import harness
from devtools.builders import Clinic, add_patient, build_clinic, insert_session, next_weekday
from devtools.fakes.telegram_api import running_fake_telegram
from infra import job_names, queues
from infra.settings import Settings

BOT_TOKEN = "123456:test"


Plan = Callable[[AsyncSession, int], Awaitable[list[int]]]


def confirmation_of(settings: Settings) -> Plan:
    """The confirmation as a booking plans it: its link signed with the clinic's secret, in the default language."""
    return functools.partial(
        visit_messages.send_confirmation,
        secret=settings.SECRET_KEY,
        base_url=settings.PUBLIC_BASE_URL,
        default_language=settings.DEFAULT_LANGUAGE,
    )


def confirmation_of_env(env: dict[str, str]) -> Plan:
    """The confirmation as a worker's clinic (its environment) plans it."""
    return functools.partial(
        visit_messages.send_confirmation, secret=env["SECRET_KEY"], base_url=env["PUBLIC_BASE_URL"]
    )


def checkin_qr_of(settings: Settings) -> Plan:
    return functools.partial(visit_messages.send_checkin_qr, default_language=settings.DEFAULT_LANGUAGE)


def thank_you_of(settings: Settings) -> Plan:
    return functools.partial(visit_messages.send_thank_you, default_language=settings.DEFAULT_LANGUAGE)


async def plan(sessionmaker: async_sessionmaker[AsyncSession], message: Plan, session_id: int) -> list[int]:
    """Plan ``message`` for the visit in a transaction of its own; the outbox ids written."""
    async with sessionmaker() as db, db.begin():
        return await message(db, session_id)


async def rows(db: AsyncSession, dedupe_key: str) -> list[OutboxMessage]:
    found = list((await db.execute(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))).scalars())
    await db.commit()
    return found


@pytest.fixture
def tuesday_ten() -> datetime:
    return next_weekday(1, hour=10)


# --- the confirmation ------------------------------------------------------------------------------------


async def test_the_confirmation_job_writes_one_message_even_when_run_twice(
    settings: Settings,
    db: AsyncSession,
    clinic: Clinic,
    tuesday_ten: datetime,
    client: TestClient[Any, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    first = await plan(sessionmaker, confirmation_of(settings), visit.id)
    second = await plan(sessionmaker, confirmation_of(settings), visit.id)
    assert len(first) == 1 and second == []
    (row,) = await rows(db, f"confirm:{visit.id}")
    assert row.id == first[0] and row.kind == "confirmation" and row.status == "pending"
    assert row.channel == "whatsapp" and row.recipient == clinic.patients["siti"].phone_e164
    payload = row.payload
    assert "mohon konfirmasi" in payload["text"] and visit.booking_code in payload["text"]  # Siti reads Indonesian
    assert [(b["label"], b["data"]) for b in payload["buttons"]] == [
        ("Konfirmasi", f"cf:yes:{visit.id}"),
        ("Batalkan", f"cf:no:{visit.id}"),
    ]
    # The link in the message opens the visit's page.
    url = next(word for word in payload["text"].split() if word.startswith(settings.PUBLIC_BASE_URL))
    page = await client.get(url.removeprefix(settings.PUBLIC_BASE_URL))
    assert page.status == 200 and visit.booking_code in await page.text()


async def test_the_confirmation_goes_to_the_channel_the_lead_came_from(
    settings: Settings,
    db: AsyncSession,
    clinic: Clinic,
    tuesday_ten: datetime,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    siti = clinic.patients["siti"]
    telegram = ChannelIdentity(patient_id=siti.id, channel="telegram", external_id=str(time.time_ns()),
                               last_inbound_at=datetime.now(UTC) - timedelta(days=3))  # fmt: skip
    lead = Lead(channel="telegram", status="converted", patient_id=siti.id)
    db.add_all([telegram, lead])
    whatsapp = (
        await db.execute(select(ChannelIdentity).where(ChannelIdentity.patient_id == siti.id,
                                                       ChannelIdentity.channel == "whatsapp"))
    ).scalar_one()  # fmt: skip
    whatsapp.last_inbound_at = datetime.now(UTC)  # WhatsApp was used more recently ...
    await db.flush()
    visit = await insert_session(db, clinic, starts_at=tuesday_ten, commit=False)
    visit.lead_id = lead.id  # ... but the booking came in on Telegram
    await db.commit()
    await plan(sessionmaker, confirmation_of(settings), visit.id)
    (row,) = await rows(db, f"confirm:{visit.id}")
    assert row.channel == "telegram" and row.recipient == telegram.external_id


async def test_a_patient_without_a_channel_is_recorded_and_skipped(
    settings: Settings,
    db: AsyncSession,
    clinic: Clinic,
    tuesday_ten: datetime,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    clinic.patients["budi"] = await add_patient(db)  # booked at the desk, never wrote to us
    visit = await insert_session(db, clinic, starts_at=tuesday_ten, patient="budi")
    assert await plan(sessionmaker, confirmation_of(settings), visit.id) == []
    assert await rows(db, f"confirm:{visit.id}") == []
    actions = (
        await db.execute(select(AuditEntry.action).where(AuditEntry.entity == "session",
                                                         AuditEntry.entity_id == visit.id))
    ).scalars().all()  # fmt: skip
    assert list(actions) == ["confirmation.unreachable"]


async def test_a_cancelled_visit_is_not_asked_to_confirm(
    settings: Settings,
    db: AsyncSession,
    clinic: Clinic,
    tuesday_ten: datetime,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten, status="cancelled")
    assert await plan(sessionmaker, confirmation_of(settings), visit.id) == []
    assert await rows(db, f"confirm:{visit.id}") == []


# --- the check-in QR -------------------------------------------------------------------------------------


def png_modules(png: bytes, *, scale: int = 8, border: int = 4) -> list[list[bool]]:
    """Read a 1-bit greyscale PNG (filters None/Sub/Up) back into QR modules: True = dark."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    chunks: dict[bytes, bytes] = {}
    pos = 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        chunks[kind] = chunks.get(kind, b"") + png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (1, 0)
    raw, stride = zlib.decompress(chunks[b"IDAT"]), (width + 7) // 8
    pixels: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        method, data = line[0], bytearray(line[1:])
        for i in range(stride):
            if method == 1:
                data[i] = (data[i] + (data[i - 1] if i else 0)) % 256
            elif method == 2:
                data[i] = (data[i] + previous[i]) % 256
            else:
                assert method == 0, method
        previous = bytes(data)
        pixels.append(previous)
    size = width // scale - 2 * border

    def dark(x: int, y: int) -> bool:
        px, py = (border + x) * scale, (border + y) * scale
        return not (pixels[py][px // 8] >> (7 - px % 8)) & 1

    return [[dark(x, y) for x in range(size)] for y in range(size)]


async def test_the_check_in_qr_of_an_accepted_visit_carries_its_booking_code_once(
    settings: Settings,
    db: AsyncSession,
    clinic: Clinic,
    tuesday_ten: datetime,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten, commit=False)
    visit.accepted = True
    await db.commit()
    first = await plan(sessionmaker, checkin_qr_of(settings), visit.id)
    assert len(first) == 1 and await plan(sessionmaker, checkin_qr_of(settings), visit.id) == []
    (row,) = await rows(db, f"checkin-qr:{visit.id}")
    assert row.kind == "checkin_qr" and visit.booking_code in row.payload["text"]
    image = row.payload["image"]
    assert image["content_type"] == "image/png" and image["filename"].endswith(".png")
    expected = segno.make_qr(f"FD:{visit.booking_code}", error="m")
    assert png_modules(base64.b64decode(image["content"])) == [[bool(m) for m in line] for line in expected.matrix]


async def test_a_visit_not_yet_accepted_gets_no_check_in_qr(
    settings: Settings,
    db: AsyncSession,
    clinic: Clinic,
    tuesday_ten: datetime,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    visit = await insert_session(db, clinic, starts_at=tuesday_ten)
    assert await plan(sessionmaker, checkin_qr_of(settings), visit.id) == []
    assert await rows(db, f"checkin-qr:{visit.id}") == []


# --- the thank-you ---------------------------------------------------------------------------------------


async def test_the_thank_you_of_a_completed_visit_offers_five_ratings_once(
    settings: Settings, db: AsyncSession, clinic: Clinic, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    visit = await insert_session(db, clinic, starts_at=datetime.now(UTC) - timedelta(hours=2), status="completed")
    first = await plan(sessionmaker, thank_you_of(settings), visit.id)
    assert len(first) == 1 and await plan(sessionmaker, thank_you_of(settings), visit.id) == []
    (row,) = await rows(db, f"thanks:{visit.id}")
    assert row.kind == "thank_you" and "dr. Andi Wijaya" in row.payload["text"]
    assert [b["label"] for b in row.payload["buttons"]] == ["★" * n for n in range(1, 6)]
    assert [b["data"] for b in row.payload["buttons"]] == [f"rate:{visit.id}:{n}" for n in range(1, 6)]


async def test_a_rated_or_unfinished_visit_gets_no_thank_you(
    settings: Settings,
    db: AsyncSession,
    clinic: Clinic,
    tuesday_ten: datetime,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    waiting = await insert_session(db, clinic, starts_at=tuesday_ten)
    rated = await insert_session(db, clinic, starts_at=datetime.now(UTC) - timedelta(hours=3), status="completed",
                                 commit=False)  # fmt: skip
    rated.rating = 4
    await db.commit()
    for visit in (waiting, rated):
        assert await plan(sessionmaker, thank_you_of(settings), visit.id) == []
        assert await rows(db, f"thanks:{visit.id}") == []


# --- a real worker, a real (fake) Telegram ---------------------------------------------------------------


def _finished(job: Job) -> bool:
    return job.get_status(refresh=True) == "finished"


def _wait_for(check: Callable[[], Any], *, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("nothing happened in time")


async def test_a_worker_delivers_the_confirmation_to_telegram_once(
    isolated_env: dict[str, str], sync_redis: SyncRedis
) -> None:
    # The worker gets a database of its own: it sweeps everything it finds, and must find only this clinic.
    engine = make_engine(isolated_env["DATABASE_URL"], pool_size=2)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as db:
            clinic = await build_clinic(db)
            chat_id = 700_000_000 + time.time_ns() % 100_000_000
            db.add(ChannelIdentity(patient_id=clinic.patients["siti"].id, channel="telegram",
                                   external_id=str(chat_id), last_inbound_at=datetime.now(UTC)))  # fmt: skip
            await db.commit()
            visit = await insert_session(db, clinic, starts_at=next_weekday(1, hour=10))
        async with running_fake_telegram() as fake:
            env = {**isolated_env, "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_WEBHOOK_SECRET": "hook-secret",
                   "TELEGRAM_API_URL": fake.base_url}  # fmt: skip
            worker = subprocess.Popen(harness.frontdesk_command("worker"), env=env, cwd=harness.ROOT)
            try:
                prefix = isolated_env["FRONTDESK_REDIS_PREFIX"]
                [outbox_id] = await plan(sessions, confirmation_of_env(isolated_env), visit.id)
                for attempt in range(2):  # a second deliver job (a retry, the sweep) must not send twice
                    job = queues.enqueue(sync_redis, prefix, job_names.DELIVER, outbox_id, queue=queues.OUTBOUND,
                                         job_id=f"{prefix}-deliver-{outbox_id}-{attempt}")  # fmt: skip
                    await asyncio.to_thread(_wait_for, functools.partial(_finished, job))
                sent = await asyncio.to_thread(_wait_for, lambda: fake.sent_messages(chat_id))
                async with sessions() as db, asyncio.timeout(60):
                    while (await rows(db, f"confirm:{visit.id}"))[0].status != "sent":
                        await asyncio.sleep(0.1)
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
            assert len(fake.sent_messages(chat_id)) == 1
        params = sent[0].params
        assert f"{isolated_env['PUBLIC_BASE_URL']}/c/" in params["text"] and visit.booking_code in params["text"]
        keyboard = [button["callback_data"] for row in params["reply_markup"]["inline_keyboard"] for button in row]
        assert keyboard == [f"cf:yes:{visit.id}", f"cf:no:{visit.id}"]
    finally:
        await engine.dispose()
