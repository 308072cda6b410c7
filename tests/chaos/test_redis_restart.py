"""Redis stopped under Telegram load, kept away 5 s, started again empty (every queued and scheduled job gone), with
the production defaults (sweep every 30 s, reclaim after 2 minutes).

Replies resume within 10 s of Redis being back; a reminder that falls due just after the restart (its schedule was
in the Redis that was lost) is rebuilt from the database and arrives once; nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.chaos.conftest import MakeStack
from tests.chaos.desk import clinic, desk, patient_on, weekday_at
from tests.chaos.faults import longest_gap, next_accept_after, settle, time_to_clear_backlog
from tests.chaos.figures import Figures
from tests.chaos.load import Ledger, Patients, delivery, ingest_lost, new_chats
from tests.waiting import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


async def test_redis_restart_empty_under_load(make_stack: MakeStack, figures: Figures, chaos_mode: str) -> None:
    full = chaos_mode == "full"
    chats, seconds, pace = (30, 60.0, 2.0) if full else (8, 16.0, 2.0)
    ledger = Ledger()
    reminder_chat = new_chats(1)[0]
    async with make_stack(gateways=2 if full else 1, workers=2) as stack, aiohttp.ClientSession() as http:
        front = await desk(stack, http)
        ids = await clinic(stack)
        patient_id, _ = await patient_on(stack, "telegram", str(reminder_chat), "Rina Kartika")
        visit = await front.expect("POST", "/sessions", {
            "branch_id": ids.kemang, "patient_id": patient_id, "examination_ids": [ids.exams["GP"]],
            "start": weekday_at(1, 10, random.choice((0, 15, 30))).isoformat(),
        }, status=201)  # fmt: skip

        patients = Patients(stack, ledger)
        writing = asyncio.ensure_future(patients.write(telegram_chats=new_chats(chats), seconds=seconds, pace=pace))
        began = time.monotonic()
        await asyncio.sleep(seconds * 0.35)
        # The visit's 2-hour reminder: moved (in the database only) to fall due a few seconds after Redis is back.
        due = datetime.now(UTC) + timedelta(seconds=5 + 4)
        await stack.query("UPDATE reminders SET due_at = $1 WHERE session_id = $2 AND kind = '2h'", due, visit["id"])
        await asyncio.to_thread(stack.redis.stop)
        stopped = time.monotonic()
        await asyncio.sleep(5)
        await asyncio.to_thread(stack.redis.start)
        back = time.monotonic()
        backlog = asyncio.ensure_future(time_to_clear_backlog(stack, seconds=180))
        resumed = await eventually(lambda: next_accept_after(stack, back), seconds=120, what="a reply after Redis")
        cleared = await backlog
        await writing
        loaded = time.monotonic()

        async def reminder_sent() -> str | None:
            rows = await stack.query(
                "SELECT o.status, o.payload->>'text' AS text FROM reminders r JOIN outbox o ON o.id = r.outbox_id"
                " WHERE r.session_id = $1 AND r.kind = '2h'",
                visit["id"],
            )
            return rows[0]["text"] if rows and rows[0]["status"] == "sent" else None

        reminder = await eventually(reminder_sent, seconds=120, what="the reminder after Redis came back")
        reminded_after = time.monotonic() - back
        drained = await settle(stack, seconds=150)
        figures.note(f"drained {drained:.0f} s after the load")
        outcome = await delivery(stack)
        stored_missing, never = await ingest_lost(stack, ledger)
        reminders = [e for e in stack.telegram.sent_messages(reminder_chat) if e.params.get("text") == reminder]
        errors = stack.errors_logged()
        stall = longest_gap(stack, began, loaded)

    figures.load = (f"{ledger.count()} Telegram updates, {chats} chats, {seconds:.0f} s, "
                    f"{2 if full else 1} gateway(s) + 2 workers; 1 reminder due after the restart")  # fmt: skip
    figures.fault = "Redis stopped 5 s, back empty"
    figures.lost = stored_missing + never + outcome.lost
    figures.duplicated = outcome.duplicated
    figures.window = 0
    figures.server_errors = ledger.server_errors
    figures.recovery = (f"first reply {resumed:.1f} s after Redis was back, backlog cleared {cleared:.1f} s; "
                        f"reminder {reminded_after:.1f} s; "
                        f"longest pause in replies {stall:.1f} s (Redis away {back - stopped:.0f} s)")  # fmt: skip
    figures.note(f"{outcome.rows} outbox rows; refused answers {dict(ledger.refused)}")
    if errors:
        figures.note(f"tracebacks logged: {errors}")

    assert (stored_missing, never) == (0, 0)
    assert outcome.lost == 0, outcome.unsent[:10]
    assert outcome.duplicated == 0, outcome.extra[:10]
    assert len(reminders) == 1 and visit["booking_code"] in reminder, reminder
    assert resumed <= 10, f"replies resumed {resumed:.0f} s after Redis was back"
