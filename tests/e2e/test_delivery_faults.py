"""Faults on the way out: real `frontdesk serve` and `frontdesk worker` processes, the real aiogram client, the fake
Bot API, a Redis that goes away, a worker that is killed, a provider that throttles and fails.

What "exactly once" means here: the fake records a message when it *accepted* it (answered 2xx). A worker killed
while its request is in flight cuts the connection before the fake answered; the fake is served so that it then
drops the request (see ``faults_support.fake_telegram``), as a provider that had not taken the message yet. The
other case, a provider that took the message a moment before the worker died, cannot be told apart from this
side of the connection (the Bot API has no idempotency key): the outbox then sends it a second time; at least
once is the promise there, and these tests do not pretend otherwise.
"""

from __future__ import annotations

import itertools
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from redis import Redis
from rq.registry import FinishedJobRegistry
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import ChannelIdentity, Lead, Message, OutboxMessage, Patient, Reminder
from booking_core.domain.actors import SYSTEM
from booking_core.domain.messages import OutboundMessage
from booking_core.services import auth, outbox
from devtools.builders import build_clinic, next_weekday
from devtools.fakes.control import CUT_OFF
from infra import job_names, queues
from tests import servers
from tests.e2e import faults_support as faults
from tests.e2e.faults_support import new_chat_id, patient_writes
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

Sessions = async_sessionmaker[AsyncSession]


async def row(sessions: Sessions, outbox_id: int) -> OutboxMessage:
    async with sessions() as db:
        found = await db.get(OutboxMessage, outbox_id)
        assert found is not None
        return found


async def plan(sessions: Sessions, chat_id: int, text: str) -> int:
    """An outbox row for a Telegram chat, as any service writes one."""
    async with sessions() as db, db.begin():
        message = OutboundMessage(channel="telegram", recipient=str(chat_id), text=text)
        outbox_id = await outbox.add(db, message, kind="reply")
    assert outbox_id is not None
    return outbox_id


async def everything_sent(sessions: Sessions) -> list[OutboxMessage] | None:
    rows = await faults.outbox_rows(sessions)
    return rows if rows and all(r.status == "sent" for r in rows) else None


# --- a worker killed in the middle of a send -----------------------------------------------------------------


async def test_a_message_whose_worker_was_killed_mid_send_is_sent_once_by_the_next_worker(
    isolated_env: dict[str, str],
) -> None:
    async with faults.fake_telegram() as telegram, faults.database(isolated_env) as sessions:
        env = faults.fault_env(isolated_env, telegram, FRONTDESK_SWEEP_EVERY="2", FRONTDESK_OUTBOX_RECLAIM_AFTER="3")
        chat = new_chat_id()
        text = f"Your visit with dr. Andi is tomorrow at 10:00 (ref {secrets.token_hex(3)})"
        telegram.delay_next(seconds=10, method="sendMessage")  # the provider is slow to answer this one
        outbox_id = await plan(sessions, chat, text)

        first = servers.start(env, "worker")  # its start-up sweep finds the row and sends it
        try:
            await eventually(lambda: not telegram.faults.pending, what="the first worker's request")
            assert (await row(sessions, outbox_id)).status == "sending"
        finally:
            first.kill()  # SIGKILL, worker and its scheduler, while the fake still holds the request

        cut_off = await eventually(lambda: [r for r in telegram.requests if r.status == CUT_OFF])
        assert [r.method for r in cut_off] == ["sendMessage"] and telegram.sent_messages(chat) == []

        async def given_up_on() -> bool:  # the dead worker's claim is older than the reclaim age
            async with sessions() as db:
                age = await db.scalar(
                    select(func.extract("epoch", func.now() - OutboxMessage.locked_at)).where(
                        OutboxMessage.id == outbox_id
                    )
                )
            return age is not None and float(age) > 3

        await eventually(given_up_on, what="the claim")
        async with servers.running(env, "worker"):
            await eventually(lambda: telegram.sent_messages(chat), what="the second worker")
            sent = await eventually(lambda: _sent(sessions, outbox_id), what="the outbox row")

    [accepted] = telegram.sent_messages(chat)
    assert accepted.params["text"] == text
    assert sent.provider_id == str(accepted.response["result"]["message_id"]) and sent.attempts == 2


async def _sent(sessions: Sessions, outbox_id: int) -> OutboxMessage | None:
    found = await row(sessions, outbox_id)
    return found if found.status == "sent" else None


# --- Redis stopped while bookings happen ---------------------------------------------------------------------


@dataclass
class Desk:
    """The front desk on the staff API, signed in with a login code."""

    http: aiohttp.ClientSession
    base: str
    headers: dict[str, str]

    async def post(self, path: str, body: dict[str, Any] | None = None, *, status: int = 200) -> Any:
        async with self.http.post(f"{self.base}/api/v1{path}", json=body, headers=self.headers) as response:
            assert response.status == status, await response.text()
            return await response.json()


async def _patient_on_telegram(sessions: Sessions, name: str, chat_id: int) -> int:
    """A patient of the clinic who chats with it on Telegram."""
    async with sessions() as db, db.begin():
        patient = Patient(name=name, phone_e164=f"+62815{secrets.randbelow(10**8):08d}", language="en")
        db.add(patient)
        await db.flush()
        db.add(ChannelIdentity(patient_id=patient.id, channel="telegram", external_id=str(chat_id),
                               display_name=name.split()[0], last_inbound_at=datetime.now(UTC)))  # fmt: skip
    return patient.id


async def _nothing_left(sessions: Sessions) -> list[OutboxMessage] | None:
    """Every inbound message answered, every due reminder sent, every outbox row sent: the rows, else None."""
    async with sessions() as db:
        unanswered = await db.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in", Message.processed_at.is_(None))
        )
        due = await db.scalar(
            select(func.count())
            .select_from(Reminder)
            .where(Reminder.status == "scheduled", Reminder.due_at <= func.now())
        )
    return None if unanswered or due else await everything_sent(sessions)


async def test_bookings_made_while_redis_is_down_reach_every_patient_exactly_once_when_it_is_back(
    isolated_env: dict[str, str],
) -> None:
    ayu, budi, citra, dewi, eka, gita = (new_chat_id() for _ in range(6))
    with servers.private_redis() as redis:
        async with faults.fake_telegram() as telegram, faults.database(isolated_env) as sessions:
            env = faults.fault_env(isolated_env, telegram, REDIS_URL=redis.url, FRONTDESK_SWEEP_EVERY="2")
            async with sessions() as db:
                clinic = await build_clinic(db)
                code = await auth.issue_login_code(db, secret=env["SECRET_KEY"], role="owner", name="Owner",
                                                   created_by=SYSTEM)  # fmt: skip
                await db.commit()
            eka_id = await _patient_on_telegram(sessions, "Eka Putri", eka)
            gita_id = await _patient_on_telegram(sessions, "Gita Savitri", gita)
            dental = {"branch_id": clinic.branch.id, "examination_ids": [clinic.examinations["DENTAL"].id]}

            jar = aiohttp.CookieJar(unsafe=True)  # the pages' CSRF cookies, on 127.0.0.1
            async with servers.serving_async(env) as base, aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(f"{base}/api/v1/auth/login", json={"code": code.code}) as response:
                    assert response.status == 200, await response.text()
                    desk = Desk(http, base, {"Authorization": f"Bearer {(await response.json())['token']}"})
                async with servers.running(env, "worker"):
                    # All is well: four people write, Eka is booked at the desk and gets her confirmation link.
                    for chat, name in ((ayu, "Ayu"), (budi, "Budi"), (citra, "Citra"), (dewi, "Dewi")):
                        await patient_writes(http, base, chat, "Hello", name=name)
                    start = next_weekday(2, hour=14).isoformat()
                    eka_visit = await desk.post("/sessions", {**dental, "patient_id": eka_id, "start": start},
                                                status=201)  # fmt: skip
                    await eventually(lambda: len(telegram.sent_messages()) == 5)
                    await eventually(lambda: everything_sent(sessions))
                    [link] = [r.params["text"] for r in telegram.sent_messages(eka)]
                    token = link.split("/c/", 1)[1].split()[0]
                    async with http.get(f"{base}/c/{token}") as response:  # Eka opens it and reads it ...
                        confirm = {"csrf_token": faults.hidden(await response.text(), "csrf_token"),
                                   "action": "confirm"}  # fmt: skip
                    async with http.get(f"{base}/book") as response:  # ... a visitor opens the booking form
                        form = faults.booking_form(await response.text(), clinic, name="Fajar Nugroho")
                    # Redis goes away in the middle of a job: the worker is sending Ayu's next reply (the
                    # provider is slow with it), and RQ's bookkeeping after the job finds no Redis.
                    telegram.delay_next(seconds=3, method="sendMessage")
                    await patient_writes(http, base, ayu, "Thank you", name="Ayu")
                    await eventually(lambda: not telegram.faults.pending, what="Ayu's second reply")

                    redis.stop()
                    await eventually(lambda: len(telegram.sent_messages(ayu)) == 2, what="Ayu's second reply")
                    await patient_writes(http, base, budi, "What are your opening hours?", name="Budi")
                    await patient_writes(http, base, budi, "Thank you", name="Budi")
                    await desk.post(f"/leads/{await _lead(sessions, citra)}/accept")
                    pick = {
                        **dental,
                        "examination_ids": [clinic.examinations["GP"].id],
                        "doctor_id": clinic.doctors["andi"].id,
                        "start": next_weekday(1, hour=11).isoformat(),
                    }
                    dewi_visit = (await desk.post(f"/leads/{await _lead(sessions, dewi)}/convert", pick))["session"]
                    start = next_weekday(3, hour=15).isoformat()
                    gita_visit = await desk.post("/sessions", {**dental, "patient_id": gita_id, "start": start},
                                                 status=201)  # fmt: skip
                    async with http.post(f"{base}/book", data=form) as response:
                        assert response.status == 200, await response.text()
                    async with http.post(f"{base}/c/{token}", data=confirm, allow_redirects=False) as response:
                        assert response.status == 303, await response.text()
                    async with sessions() as db, db.begin():  # and Eka's 2-hour reminder falls due meanwhile
                        await db.execute(
                            update(Reminder)
                            .where(Reminder.session_id == eka_visit["id"], Reminder.kind == "2h")
                            .values(due_at=datetime.now(UTC) - timedelta(minutes=1))
                        )
                    redis.start()  # empty: every queued and scheduled job is gone

                    rows = await eventually(lambda: _nothing_left(sessions), seconds=120, what="Redis came back")
            async with sessions() as db:
                form_lead = (await db.execute(select(Lead).where(Lead.contact_name == "Fajar Nugroho"))).scalar_one()

    received: dict[str, list[str]] = {}
    for entry in telegram.sent_messages():
        received.setdefault(str(entry.params["chat_id"]), []).append(faults.text_of(entry))
    planned: dict[str, list[str]] = {}
    for one in rows:
        planned.setdefault(one.recipient, []).append(str(one.payload["text"]))
    assert received == planned  # every planned message arrived, once, in the order it was planned
    assert len(telegram.sent_messages()) == len(rows)
    assert [len(planned[str(chat)]) for chat in (ayu, citra, dewi, gita)] == [2, 2, 2, 1]
    assert len(planned[str(budi)]) == 3
    assert "/c/" in planned[str(dewi)][1] and dewi_visit["booking_code"] in planned[str(dewi)][1]
    assert "/c/" in planned[str(gita)][0] and gita_visit["booking_code"] in planned[str(gita)][0]
    assert [r.kind for r in rows if r.recipient == str(eka)] == ["confirmation", "checkin_qr", "reminder"]
    assert all(eka_visit["booking_code"] in text for text in planned[str(eka)])
    assert (form_lead.channel, form_lead.status) == ("webform", "new")


async def _lead(sessions: Sessions, chat_id: int) -> int:
    async with sessions() as db:
        lead_id = await db.scalar(
            select(Lead.id)
            .join(ChannelIdentity, ChannelIdentity.id == Lead.identity_id)
            .where(ChannelIdentity.channel == "telegram", ChannelIdentity.external_id == str(chat_id))
        )
    assert lead_id is not None
    return int(lead_id)


# --- a provider that throttles and fails -------------------------------------------------------------------


async def test_a_throttling_and_failing_provider_gets_every_message_once_in_order_after_the_waits_it_asked_for(
    isolated_env: dict[str, str],
) -> None:
    async with faults.fake_telegram() as telegram, faults.database(isolated_env) as sessions:
        env = faults.fault_env(isolated_env, telegram, FRONTDESK_SWEEP_EVERY="2")
        chats = [new_chat_id() for _ in range(3)]
        planned = {chat: [f"Klinik Sehat, message {n} of 3 for you ({secrets.token_hex(2)})" for n in (1, 2, 3)]
                   for chat in chats}  # fmt: skip
        # 429 "retry after 8 seconds": longer than the few seconds a later message waits for an earlier one anyway
        telegram.throttle_next(1, retry_after=8, method="sendMessage")
        telegram.fail_next(3, status=502, method="sendMessage")  # then a burst of Bad Gateway
        for n in range(3):  # interleaved, as replies to several patients are
            for chat in chats:
                await plan(sessions, chat, planned[chat][n])
        async with servers.running(env, "worker"), servers.running(env, "worker"):
            rows = await eventually(lambda: everything_sent(sessions), what="the two workers")

    assert len(rows) == 9 and not telegram.faults.pending
    assert Counter(r.status for r in telegram.requests_for("sendMessage") if not r.ok) == {429: 1, 502: 3}
    for chat in chats:  # each message once, in the order planned
        assert [r.params["text"] for r in telegram.sent_messages(chat)] == planned[chat]
    for chat in chats:  # every retry came no earlier than the provider asked (429) or the backoff said (5xx)
        for text in planned[chat]:
            tries = [r for r in telegram.requests_for("sendMessage") if r.params.get("text") == text]
            assert [r.ok for r in tries] == [False] * (len(tries) - 1) + [True]
            attempt = 0  # a 429 is a wait, not an attempt: only failures count towards the backoff
            for refused, then in itertools.pairwise(tries):
                if refused.status == 429:
                    wait = refused.response["parameters"]["retry_after"]
                else:
                    attempt += 1
                    wait = outbox.backoff(attempt).total_seconds()
                assert then.at - refused.at >= wait, (text, attempt, refused.status)


# --- the record of a sent message, finished after the job ----------------------------------------------------


async def test_a_sent_message_is_recorded_even_when_its_worker_then_has_nothing_to_do(
    isolated_env: dict[str, str],
) -> None:
    """A deliver job hands the record of the sent row (its provider id) over to finish while RQ files the job away.
    A worker with no next job must still finish it, not leave the row 'sending' until a sweep comes (an hour here)
    and another worker sends the message again."""
    async with faults.fake_telegram() as telegram, faults.database(isolated_env) as sessions:
        env = faults.fault_env(isolated_env, telegram, FRONTDESK_SWEEP_EVERY="3600")
        chat = new_chat_id()
        async with servers.running(env, "worker"):
            with Redis.from_url(env["REDIS_URL"]) as redis:
                await eventually(lambda: start_sweep_done(redis, env), seconds=60, what="the worker's start")
            outbox_id = await plan(sessions, chat, "Klinik Sehat: your visit is tomorrow at 09:30")
            with Redis.from_url(env["REDIS_URL"]) as redis:  # as a request does after its commit
                queues.enqueue(redis, env["FRONTDESK_REDIS_PREFIX"], job_names.DELIVER, outbox_id,
                               queue=queues.OUTBOUND, job_id=f"deliver-{outbox_id}")  # fmt: skip
            await eventually(lambda: telegram.sent_messages(chat), seconds=60, what="the deliver job")
            sent = await eventually(
                lambda: recorded_sent(sessions, outbox_id), seconds=10, what="the record of the sent row"
            )

    [message] = telegram.sent_messages(chat)
    assert sent.provider_id == str(message.response["result"]["message_id"]) and sent.attempts == 1


async def recorded_sent(sessions: Sessions, outbox_id: int) -> OutboxMessage | None:
    found = await row(sessions, outbox_id)
    return found if found.status == "sent" else None


def start_sweep_done(redis: Redis, env: dict[str, str]) -> bool:
    """The sweep a worker runs when it starts has finished: with the next one an hour away, the worker is idle."""
    prefix = env["FRONTDESK_REDIS_PREFIX"]
    finished = FinishedJobRegistry(queues.queue_name(prefix, queues.DEFAULT), connection=redis)
    return any(job_id.startswith(f"{prefix}-sweep-start-") for job_id in finished.get_job_ids())
