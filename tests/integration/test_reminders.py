"""Visit reminders against the real database: planned with the booking, moved and cancelled with the visit, sent once.

Reminder rows are the truth (Redis only holds their schedules, see tests/e2e/test_reminders_survive_redis_flush.py).
Sending is tested through the worker's own code (``workers.reminders``) on a runtime made of this test's engine
and loop; its delivery jobs go to queues of their own prefix, which no worker serves.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from booking_core.db.queries.clinic import get_setting, put_setting
from booking_core.db.tables import ChannelIdentity, ClinicSetting, OutboxMessage, Patient, Reminder, Session
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.services import conversation, ingest, notify, outbox, reminders
from channels.whatsapp.adapter import WhatsAppAdapter
from devtools.builders import Clinic, add_patient, insert_session, next_weekday
from devtools.fakes.twilio_api import running_fake_twilio
from infra.settings import Settings
from workers import reminders as reminder_jobs
from workers.runtime import Runtime

SignIn = Callable[..., Awaitable[dict[str, str]]]
Client = TestClient[object, object]
Put = Callable[[str, Any], Awaitable[None]]
DAY, TWO_HOURS = timedelta(hours=24), timedelta(hours=2)
TEMPLATE = "HX" + "5a1b" * 8
ACCOUNT_SID, AUTH_TOKEN = "AC" + "7" * 32, "reminder-test-token"
_MISSING = object()


@pytest.fixture
async def clinic_settings(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Put]:
    """``await put(key, value)``: a clinic setting for this test only (settings are clinic-wide, so it is put back)."""
    saved: dict[str, Any] = {}

    async def put(key: str, value: Any) -> None:
        async with sessionmaker() as db, db.begin():
            if key not in saved:
                saved[key] = await get_setting(db, key, _MISSING)
            await put_setting(db, key, value)

    await put(reminders.OFFSETS_SETTING, [24 * 60, 2 * 60])
    yield put
    async with sessionmaker() as db, db.begin():
        for key, value in saved.items():
            if value is _MISSING:
                await db.execute(delete(ClinicSetting).where(ClinicSetting.key == key))
            else:
                await put_setting(db, key, value)


@pytest.fixture
async def rt(
    settings: Settings, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Runtime]:
    """The worker's runtime, made of this test's loop and engine; its jobs go to queues no worker serves."""
    own = settings.model_copy(update={"FRONTDESK_REDIS_PREFIX": f"rmt{secrets.token_hex(3)}"})
    assert own.REDIS_URL is not None
    runtime = Runtime(own, asyncio.get_running_loop(), engine, sessionmaker, Redis.from_url(own.REDIS_URL))
    yield runtime
    await runtime.redis.aclose()
    if "sync_redis" in runtime.extras:
        runtime.extras["sync_redis"].close()


async def telegram_patient(db: AsyncSession, name: str = "Budi Hartono") -> Patient:
    """A patient who chats with the clinic's Telegram bot."""
    patient = await add_patient(db, name, commit=False)
    db.add(
        ChannelIdentity(
            patient_id=patient.id,
            channel="telegram",
            external_id=str(secrets.randbelow(10**9)),
            display_name=name,
            last_inbound_at=datetime.now(UTC),
        )
    )
    await db.commit()
    return patient


async def visit_for(db: AsyncSession, clinic: Clinic, patient: Patient, starts_at: datetime, **kwargs: Any) -> Session:
    key = f"patient-{patient.id}"
    clinic.patients[key] = patient
    return await insert_session(db, clinic, starts_at=starts_at, patient=key, **kwargs)


async def rows_of(sessionmaker: async_sessionmaker[AsyncSession], session_id: int) -> list[Reminder]:
    async with sessionmaker() as db:
        query = select(Reminder).where(Reminder.session_id == session_id).order_by(Reminder.due_at)
        return list((await db.execute(query)).scalars())


async def planned(sessionmaker: async_sessionmaker[AsyncSession], session_id: int, now: datetime | None = None) -> None:
    async with sessionmaker() as db, db.begin():
        await reminders.sync_session(db, session_id, now=now)


async def due_now(sessionmaker: async_sessionmaker[AsyncSession], *session_ids: int) -> list[int]:
    """Pretend the reminders' time has come: their due time moves to a minute ago."""
    async with sessionmaker() as db, db.begin():
        result = await db.execute(
            update(Reminder)
            .where(Reminder.session_id.in_(session_ids), Reminder.status == "scheduled")
            .values(due_at=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1))
            .returning(Reminder.id)
        )
        return sorted(result.scalars())


async def outbox_rows(sessionmaker: async_sessionmaker[AsyncSession], reminder_ids: list[int]) -> list[OutboxMessage]:
    keys = [f"reminder:{i}:" for i in reminder_ids]
    async with sessionmaker() as db:
        rows = (await db.execute(select(OutboxMessage).where(OutboxMessage.kind == "reminder"))).scalars()
        return [row for row in rows if row.dedupe_key and row.dedupe_key.startswith(tuple(keys))]


# --- planned with the booking -----------------------------------------------------------------------------


async def test_booking_a_visit_plans_reminders_a_day_and_two_hours_before(
    client: Client,
    sign_in: SignIn,
    clinic: Clinic,
    clinic_settings: Put,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = await sign_in("staff")
    start = next_weekday(0, hour=10, weeks=2)
    body = {
        "branch_id": clinic.branch.id,
        "patient_id": clinic.patients["siti"].id,
        "examination_ids": [clinic.examinations["GP"].id],
        "start": start.isoformat(),
    }
    response = await client.post("/api/v1/sessions", json=body, headers=headers)
    assert response.status == 201, await response.text()

    rows = await rows_of(sessionmaker, (await response.json())["id"])
    assert [(r.kind, r.due_at, r.status) for r in rows] == [
        ("24h", start - DAY, "scheduled"),
        ("2h", start - TWO_HOURS, "scheduled"),
    ]


async def test_the_clinic_chooses_the_offsets_and_those_already_past_are_not_planned(
    db: AsyncSession, clinic: Clinic, clinic_settings: Put, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await clinic_settings(reminders.OFFSETS_SETTING, [24 * 60, 2 * 60, 30, "often", -5])
    visit = await insert_session(db, clinic, starts_at=next_weekday(1, hour=10, weeks=2))

    await planned(sessionmaker, visit.id, now=visit.starts_at - timedelta(hours=3))  # booked three hours ahead

    rows = await rows_of(sessionmaker, visit.id)
    assert [(r.kind, r.due_at) for r in rows] == [
        ("2h", visit.starts_at - TWO_HOURS),
        ("30m", visit.starts_at - timedelta(minutes=30)),
    ]


# --- moved and cancelled with the visit -------------------------------------------------------------------


async def test_moving_a_visit_moves_its_reminders_and_arms_a_sent_one_again(
    db: AsyncSession, clinic: Clinic, clinic_settings: Put, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    visit = await insert_session(db, clinic, starts_at=next_weekday(2, hour=10, weeks=2))
    await planned(sessionmaker, visit.id)
    day_before, two_hours = await rows_of(sessionmaker, visit.id)
    async with sessionmaker() as change, change.begin():
        await change.execute(update(Reminder).where(Reminder.id == day_before.id).values(status="sent"))
        later = visit.starts_at + timedelta(days=2, hours=1)
        await change.execute(
            update(Session).where(Session.id == visit.id).values(starts_at=later, ends_at=later + timedelta(minutes=30))
        )
        moved = await reminders.sync_session(change, visit.id)

    rows = await rows_of(sessionmaker, visit.id)
    assert [(r.id, r.kind, r.due_at, r.status) for r in rows] == [
        (day_before.id, "24h", later - DAY, "scheduled"),
        (two_hours.id, "2h", later - TWO_HOURS, "scheduled"),
    ]
    assert [(d.reminder_id, d.due_at) for d in moved] == [(r.id, r.due_at) for r in rows]
    # The schedules follow: a moved reminder gets a new job id, so its old job finds nothing to do.
    assert reminder_jobs.job_id("p", moved[0]) != reminder_jobs.job_id(
        "p", reminders.Due(day_before.id, day_before.due_at)
    )


async def test_rescheduling_in_chat_cancels_the_old_reminders_and_plans_the_new_visits(
    db: AsyncSession, clinic: Clinic, clinic_settings: Put, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    monday_morning = next_weekday(0, hour=9, weeks=2)
    siti = clinic.patients["siti"]
    visit = await insert_session(db, clinic, starts_at=monday_morning + timedelta(days=1, hours=1))
    await planned(sessionmaker, visit.id)

    async def say(text: str = "", button: str | None = None) -> list[dict[str, Any]]:
        inbound = InboundMessage(
            channel="whatsapp",
            external_id=f"SM{secrets.token_hex(8)}",
            contact=ContactRef(channel="whatsapp", external_id=siti.phone_e164 or "", phone=siti.phone_e164),
            received_at=monday_morning,
            kind="button" if button else "text",
            text=text,
            button_data=button,
        )
        async with sessionmaker() as chat, chat.begin():
            received = await ingest.receive(chat, inbound, now=monday_morning)
        async with sessionmaker() as chat, chat.begin():
            ids = await conversation.handle(chat, received.message_id, now=monday_morning)
        async with sessionmaker() as chat:
            rows = (await chat.execute(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))).scalars()
            return [row.payload for row in sorted(rows, key=lambda r: r.id)]

    def pick(replies: list[dict[str, Any]], prefix: str) -> str:
        return next(b["data"] for r in replies for b in r["buttons"] if b["data"].startswith(prefix))

    await say("I need to reschedule")
    replies = await say(button=f"s:{visit.id}")
    replies = await say(button=pick(replies, "day:"))
    await say(button=pick(replies, "t:"))
    await say(button="cf:yes")

    assert {(r.kind, r.status, r.note) for r in await rows_of(sessionmaker, visit.id)} == {
        ("24h", "cancelled", "the visit is cancelled"),
        ("2h", "cancelled", "the visit is cancelled"),
    }
    async with sessionmaker() as check:
        new = (
            await check.execute(select(Session).where(Session.patient_id == siti.id, Session.status == "waiting"))
        ).scalar_one()
    rows = await rows_of(sessionmaker, new.id)
    assert [(r.kind, r.due_at, r.status) for r in rows] == [
        ("24h", new.starts_at - DAY, "scheduled"),
        ("2h", new.starts_at - TWO_HOURS, "scheduled"),
    ]


async def test_cancelling_a_visit_cancels_its_reminders(
    client: Client,
    sign_in: SignIn,
    clinic: Clinic,
    clinic_settings: Put,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = await sign_in("staff")
    body = {
        "branch_id": clinic.branch.id,
        "patient_id": clinic.patients["siti"].id,
        "examination_ids": [clinic.examinations["GP"].id],
        "start": next_weekday(3, hour=11, weeks=2).isoformat(),
    }
    booked = await client.post("/api/v1/sessions", json=body, headers=headers)
    session_id = (await booked.json())["id"]
    assert len(await rows_of(sessionmaker, session_id)) == 2

    cancelled = await client.post(
        f"/api/v1/sessions/{session_id}/cancel", json={"reason_code": "patient_request"}, headers=headers
    )
    assert cancelled.status == 200, await cancelled.text()

    rows = await rows_of(sessionmaker, session_id)
    assert {(r.status, r.note) for r in rows} == {("cancelled", "the visit is cancelled")}
    async with sessionmaker() as db:
        assert not {d.reminder_id for d in await reminders.pending(db)} & {r.id for r in rows}  # nothing to schedule


# --- sending ----------------------------------------------------------------------------------------------


async def test_a_reminder_job_run_twice_sends_one_message(
    db: AsyncSession, clinic: Clinic, clinic_settings: Put, rt: Runtime, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    patient = await telegram_patient(db)
    visit = await visit_for(db, clinic, patient, datetime.now(UTC) + timedelta(hours=3))
    await planned(sessionmaker, visit.id)
    [reminder_id] = await due_now(sessionmaker, visit.id)

    outcomes = await asyncio.gather(*(reminder_jobs.send_one(rt, reminder_id) for _ in range(2)))
    again = await reminder_jobs.send_one(rt, reminder_id)

    assert sorted(outcomes) == ["not_due", "sent"] and again == "not_due"
    [row] = await outbox_rows(sessionmaker, [reminder_id])
    assert visit.booking_code in row.payload["text"] and "Budi" in row.payload["text"]
    assert [b["data"] for b in row.payload["buttons"]] == ["menu:resched", "menu:cancel"]
    [reminder] = await rows_of(sessionmaker, visit.id)
    assert (reminder.status, reminder.outbox_id) == ("sent", row.id)


async def test_a_patient_without_a_channel_is_skipped_and_the_rest_of_the_batch_is_sent(
    db: AsyncSession, clinic: Clinic, clinic_settings: Put, rt: Runtime, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=3)
    first, second = await telegram_patient(db, "Ayu Lestari"), await telegram_patient(db, "Dewi Sartika")
    walk_in = await add_patient(db, "Pak Joko")  # booked at the desk, never chatted: no channel to remind on
    visits = [
        await visit_for(db, clinic, first, soon),
        await visit_for(db, clinic, walk_in, soon, room="consult-2", doctor="sari", examination="GP"),
        await visit_for(db, clinic, second, soon + timedelta(hours=1)),
    ]
    for visit in visits:
        await planned(sessionmaker, visit.id)
    ids = await due_now(sessionmaker, *(v.id for v in visits))
    assert len(ids) == 3

    counts = await reminder_jobs.send_due(rt)

    assert counts["sent"] >= 2 and counts["skipped"] >= 1 and counts["failed"] == 0
    statuses = {v.id: [(r.status, r.note) for r in await rows_of(sessionmaker, v.id)] for v in visits}
    assert statuses[visits[0].id] == [("sent", "sent on telegram")]
    assert statuses[visits[1].id] == [("skipped", "no reachable channel: the patient has no chat identity")]
    assert statuses[visits[2].id] == [("sent", "sent on telegram")]
    assert len(await outbox_rows(sessionmaker, ids)) == 2


async def test_whatsapp_outside_the_24_hour_window_uses_the_clinics_template(
    db: AsyncSession, clinic: Clinic, clinic_settings: Put, rt: Runtime, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await clinic_settings(notify.TEMPLATES_SETTING, {"reminder": TEMPLATE})
    siti = clinic.patients["siti"]  # her WhatsApp identity never wrote: outside the window
    recent = await add_patient(db, "Rina Wulandari", commit=False)
    db.add(ChannelIdentity(patient_id=recent.id, channel="whatsapp", external_id=recent.phone_e164,
                           last_inbound_at=datetime.now(UTC) - timedelta(hours=1)))  # fmt: skip
    await db.commit()
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=3)
    quiet = await visit_for(db, clinic, siti, soon)
    chatty = await visit_for(db, clinic, recent, soon + timedelta(hours=1))
    for visit in (quiet, chatty):
        await planned(sessionmaker, visit.id)
    ids = await due_now(sessionmaker, quiet.id, chatty.id)
    for reminder_id in ids:
        assert await reminder_jobs.send_one(rt, reminder_id) == "sent"

    rows = {row.recipient: row for row in await outbox_rows(sessionmaker, ids)}
    assert rows[siti.phone_e164].payload["template"] == TEMPLATE
    assert dict(rows[siti.phone_e164].payload["template_fields"])["code"] == quiet.booking_code
    async with running_fake_twilio(accounts={ACCOUNT_SID: AUTH_TOKEN}) as twilio:
        adapter = WhatsAppAdapter(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, sender="whatsapp:+14155238886",
                                  api_url=twilio.base_url, public_base_url="https://clinic.example")  # fmt: skip
        try:
            for row in rows.values():
                async with sessionmaker() as send:
                    assert (await outbox.deliver(send, row.id, outbox.Sending({"whatsapp": adapter}))).status == "sent"
        finally:
            await adapter.close()
        [to_siti] = twilio.sent_messages(f"whatsapp:{siti.phone_e164}")
        [to_rina] = twilio.sent_messages(f"whatsapp:{recent.phone_e164}")
    assert to_siti.params["ContentSid"] == TEMPLATE and "Body" not in to_siti.params
    assert json.loads(to_siti.params["ContentVariables"])["5"] == quiet.booking_code
    assert "ContentSid" not in to_rina.params and chatty.booking_code in to_rina.params["Body"]


async def test_a_reminder_for_a_visit_that_no_longer_waits_is_skipped(
    db: AsyncSession, clinic: Clinic, clinic_settings: Put, rt: Runtime, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    patient = await telegram_patient(db)
    visit = await visit_for(db, clinic, patient, datetime.now(UTC) + timedelta(hours=3))
    await planned(sessionmaker, visit.id)
    [reminder_id] = await due_now(sessionmaker, visit.id)
    async with sessionmaker() as change, change.begin():  # the patient came early and is with the doctor already
        await change.execute(update(Session).where(Session.id == visit.id).values(status="open"))

    assert await reminder_jobs.send_one(rt, reminder_id) == "skipped"

    [row] = await rows_of(sessionmaker, visit.id)
    assert (row.status, row.note) == ("skipped", "the visit is no longer waiting")
    assert await outbox_rows(sessionmaker, [reminder_id]) == []


@given(st.integers(min_value=1, max_value=reminders.MAX_OFFSET_MIN))
def test_every_offset_has_a_kind_that_names_it(offset: int) -> None:
    assert reminders.offset_of(reminders.kind_for(offset)) == offset
    assert len(reminders.kind_for(offset)) <= 10  # the column's width


def test_offsets_from_the_settings_ignore_what_is_not_a_whole_number_of_minutes() -> None:
    assert reminders.offsets([120, 1440, "30", 90.0, 2.5, True, None, 0, -60, 10**9, 120]) == [1440, 120, 90]
    assert reminders.offsets("24h") == [] and reminders.offsets(None) == []
    assert (reminders.kind_for(1440), reminders.kind_for(90), reminders.offset_of("soon")) == ("24h", "90m", None)
