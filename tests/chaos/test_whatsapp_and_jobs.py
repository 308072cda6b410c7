"""The same faults on WhatsApp and on every kind of job: patients write on WhatsApp (signed Twilio forms) and Telegram
while a worker is killed, Redis restarts empty (and, in the full run, PostgreSQL crashes and a second worker is
killed); meanwhile the desk books by API (a confirmation link), converts a WhatsApp lead (its confirmation link),
cancels a visit whose time a waitlisted patient is offered, checks two patients in and calls the next (queue
replies), and a reminder falls due. Replies go out through the fake Twilio API (and the fake Bot API).

Nothing lost: every form answered 200 is stored and answered, every planned message of every kind is accepted by
its provider; nothing doubled, except inside the documented at-least-once window (counted apart).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.chaos.conftest import MakeStack
from tests.chaos.desk import Desk, clinic, desk, local_day, patient_on, session_today, weekday_at
from tests.chaos.faults import Kill, kill_worker, settle
from tests.chaos.figures import Figures
from tests.chaos.load import Ledger, Patients, delivery, ingest_lost, new_chats, new_numbers
from tests.chaos.stack import FAST_RECLAIM, Stack
from tests.waiting import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


async def whatsapp_lead(stack: Stack, number: str) -> int | None:
    rows = await stack.query(
        "SELECT l.id FROM leads l JOIN channel_identities ci ON ci.id = l.identity_id"
        " WHERE ci.channel = 'whatsapp' AND ci.external_id LIKE '%' || $1 ORDER BY l.id DESC LIMIT 1",
        number.removeprefix("+"),
    )
    return int(rows[0]["id"]) if rows else None


async def cancel_reason(front: Desk) -> str:
    found = await front.expect("GET", "/settings/cancel-reasons")
    return str(next(r for r in found["reasons"] if r not in found["requires_note"]))


async def test_whatsapp_and_every_job_kind_under_kills_and_restarts(
    make_stack: MakeStack, figures: Figures, chaos_mode: str
) -> None:
    full = chaos_mode == "full"
    seconds, pace = (90.0, 3.0) if full else (24.0, 3.0)
    numbers, chats = new_numbers(10 if full else 4), new_chats(6 if full else 2)
    rng = random.Random()
    ledger = Ledger()
    kills: list[Kill] = []
    crashes: list[float] = []
    async with (
        make_stack(gateways=2 if full else 1, workers=2, **FAST_RECLAIM) as stack,
        aiohttp.ClientSession() as http,
    ):
        front = await desk(stack, http)
        ids = await clinic(stack)
        gp = [ids.exams["GP"]]
        ani, _ = await patient_on(stack, "whatsapp", new_numbers(1)[0], "Ani Wulandari")  # booked at the desk
        rudi, _ = await patient_on(stack, "whatsapp", new_numbers(1)[0], "Rudi Hartono")  # gets a reminder
        wati, wati_chat = await patient_on(stack, "whatsapp", new_numbers(1)[0], "Wati Susanti")  # on the waitlist
        citra, _ = await patient_on(stack, "telegram", str(new_chats(1)[0]), "Citra Dewi")  # cancels her visit
        queue = [await patient_on(stack, "whatsapp", new_numbers(1)[0], "Quinn Pratiwi"),
                 await patient_on(stack, "telegram", str(new_chats(1)[0]), "Qori Amalia")]  # fmt: skip
        today = [await session_today(stack, q[0], slot=n) for n, q in enumerate(queue)]
        wednesday = weekday_at(2, 9)

        def visit(patient: int, start: datetime) -> dict[str, object]:
            return {"branch_id": ids.kemang, "patient_id": patient, "examination_ids": gp, "start": start.isoformat()}

        citra_visit = await front.expect("POST", "/sessions", visit(citra, wednesday), status=201)
        waiting = {"patient_id": wati, "branch_id": ids.kemang, "examination_id": gp[0],
                   "day": local_day(wednesday).isoformat(), "identity_id": wati_chat}  # fmt: skip
        await front.expect("POST", "/waitlist", waiting, status=201)
        rudi_visit = await front.expect("POST", "/sessions", visit(rudi, weekday_at(3, 10)), status=201)
        reason = await cancel_reason(front)

        patients = Patients(stack, ledger)
        writing = asyncio.ensure_future(
            patients.write(telegram_chats=chats, whatsapp_numbers=numbers, seconds=seconds, pace=pace)
        )
        began = time.monotonic()
        checks = []

        async def at(fraction: float) -> None:
            await asyncio.sleep(max(0.0, began + fraction * seconds - time.monotonic()))

        await at(0.2)
        kill, check = await kill_worker(stack, rng)
        kills.append(kill)
        checks.append(asyncio.ensure_future(check))
        await front.expect("POST", "/sessions", visit(ani, weekday_at(3, 11)), status=201)
        lead = await eventually(lambda: whatsapp_lead(stack, numbers[0]), seconds=60, what="a WhatsApp lead")

        await at(0.45)
        await stack.workers_ready(2)
        due = datetime.now(UTC) + timedelta(seconds=8)
        await stack.query("UPDATE reminders SET due_at = $1 WHERE session_id = $2 AND kind = '2h'", due,
                          rudi_visit["id"])  # fmt: skip
        await asyncio.to_thread(stack.redis.stop)
        stopped = time.monotonic()
        # While Redis is away the desk goes on: a conversion, a cancellation (the waitlist's offer), check-ins.
        pick = {**visit(0, weekday_at(3, 14)), "doctor_id": ids.doctors["andi"]}
        del pick["patient_id"]
        converted = await front.expect("POST", f"/leads/{lead}/convert", pick)
        await front.expect("POST", f"/sessions/{citra_visit['id']}/cancel", {"reason_code": reason})
        for session_id in today:
            await front.expect("POST", "/queue/check-in", {"session_id": session_id}, status=201)
        await asyncio.sleep(max(0.0, stopped + 5 - time.monotonic()))
        await asyncio.to_thread(stack.redis.start)
        redis_back = time.monotonic()
        called = await front.expect("POST", "/queue/call-next",
                                    {"branch_id": ids.kemang, "doctor_id": ids.doctors["andi"]})  # fmt: skip

        if full:
            await at(0.65)
            await stack.workers_ready(2)
            crashes.append(time.monotonic())
            await asyncio.to_thread(stack.pg.restart, "immediate")
            await at(0.8)
            await stack.workers_ready(2)
            kill, check = await kill_worker(stack, rng)
            kills.append(kill)
            checks.append(asyncio.ensure_future(check))
        await writing
        await asyncio.gather(*checks)
        drained = await settle(stack, seconds=180)
        outcome = await delivery(stack)
        stored_missing, never = await ingest_lost(stack, ledger)
        kinds = Counter(
            f"{r['channel']}:{r['kind']}"
            for r in await stack.query("SELECT channel, kind FROM outbox WHERE status = 'sent'")
        )
        errors = stack.errors_logged()

    moments = [k.at for k in kills] + crashes
    window = outcome.within(moments, before=2.0)
    faults = [f"worker kill -9 ×{len(kills)}", "Redis restart (5 s away, back empty)"]
    faults += ["PostgreSQL -m immediate"] if full else []
    figures.load = (f"{ledger.count('whatsapp')} WhatsApp + {ledger.count('telegram')} Telegram messages, "
                    f"{seconds:.0f} s; desk: booking, lead conversion, cancellation → waitlist offer, 2 check-ins, "
                    "call-next, a reminder")  # fmt: skip
    figures.fault = ", ".join(faults)
    figures.lost = stored_missing + never + outcome.lost
    figures.duplicated = outcome.duplicated - window
    figures.window = window
    figures.server_errors = ledger.server_errors
    figures.recovery = f"drained {drained:.0f} s after the load (Redis back at {redis_back - began:.0f} s)"
    figures.note(f"sent by kind: {dict(kinds)}; called {called.get('patient_name')}; converted session "
                 f"{converted['session']['booking_code']}")  # fmt: skip
    if errors:
        figures.note(f"tracebacks logged: {sum(errors.values())}")

    assert (stored_missing, never) == (0, 0)
    assert outcome.lost == 0, outcome.unsent[:10]
    assert figures.duplicated == 0, outcome.extra[:10]
    assert ledger.count("whatsapp") and kinds["whatsapp:reply"] >= 1
    assert kinds["whatsapp:confirmation"] >= 2  # Ani's booking and the converted lead
    assert kinds["whatsapp:reminder"] == 1  # Rudi's, rebuilt after Redis lost its schedule
    assert kinds["whatsapp:waitlist_offer"] == 1  # Wati's
    assert kinds["whatsapp:queue_position"] + kinds["telegram:queue_position"] >= 1
    assert all(not k.orphans and not k.stuck for k in kills)
