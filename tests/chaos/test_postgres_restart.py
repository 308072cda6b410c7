"""PostgreSQL restarted under Telegram load, first ``pg_ctl restart -m fast`` (clients told, then cut), later
``-m immediate`` (a crash: no shutdown checkpoint, unflushed commits lost).

Gateways and workers go on without being restarted; every update answered 200 is in the database and answered;
every reply arrives, and a second copy only inside the documented window (the provider accepted the message
moments before the crash took the record of it, counted apart). 5xx answers while the database was away are
counted: the provider delivers such an update again.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.conftest import MakeStack
from tests.chaos.faults import longest_gap, settle, time_to_clear_backlog
from tests.chaos.figures import Figures
from tests.chaos.load import Ledger, Patients, delivery, ingest_lost, new_chats
from tests.chaos.stack import FAST_RECLAIM

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


async def test_postgres_restart_fast_and_immediate_under_load(
    make_stack: MakeStack, figures: Figures, chaos_mode: str
) -> None:
    full = chaos_mode == "full"
    chats, seconds, pace = (30, 75.0, 2.0) if full else (8, 20.0, 2.0)
    ledger = Ledger()
    restarts: list[tuple[str, float, float]] = []  # (mode, began, back)
    recovered: list[str] = []
    async with make_stack(gateways=2 if full else 1, workers=2, **FAST_RECLAIM) as stack:
        started = {p.pid for p in stack.procs}
        patients = Patients(stack, ledger)
        writing = asyncio.ensure_future(patients.write(telegram_chats=new_chats(chats), seconds=seconds, pace=pace))
        began = time.monotonic()
        backlogs = []
        for mode, at in (("fast", 0.3), ("immediate", 0.6)):
            await asyncio.sleep(max(0.0, began + at * seconds - time.monotonic()))
            before = time.monotonic()
            await asyncio.to_thread(stack.pg.restart, mode)
            restarts.append((mode, before, time.monotonic()))
            backlogs.append(asyncio.ensure_future(time_to_clear_backlog(stack, seconds=120)))
        await writing
        loaded = time.monotonic()
        for (mode, _, back), backlog in zip(restarts, backlogs, strict=True):
            ingest = ledger.first_acknowledged_after(back)
            shown = f"{ingest - back:.1f} s" if ingest is not None else "never"
            recovered.append(f"{mode}: an update stored {shown}, backlog cleared {await backlog:.1f} s after")
        drained = await settle(stack, seconds=150)
        outcome = await delivery(stack)
        stored_missing, never = await ingest_lost(stack, ledger)
        survivors = {p.pid for p in stack.procs if p.alive()}
        errors = stack.errors_logged()
        stall = longest_gap(stack, began, loaded)

    window = outcome.within([r[1] for r in restarts], before=2.0)
    figures.load = (f"{ledger.count()} Telegram updates, {chats} chats, {seconds:.0f} s, "
                    f"{2 if full else 1} gateway(s) + 2 workers")  # fmt: skip
    figures.fault = "PostgreSQL restart -m fast, then -m immediate"
    figures.lost = stored_missing + never + outcome.lost
    figures.duplicated = outcome.duplicated - window
    figures.window = window
    figures.server_errors = ledger.server_errors
    figures.recovery = "; ".join(recovered) + f"; longest pause in replies {stall:.1f} s"
    figures.note(f"{outcome.rows} outbox rows; refused answers {dict(ledger.refused)}; drained {drained:.0f} s")
    if errors:
        figures.note(f"tracebacks logged: {errors}")

    assert survivors == started, "a gateway or worker died with the database"
    assert (stored_missing, never) == (0, 0)
    assert outcome.lost == 0, outcome.unsent[:10]
    assert figures.duplicated == 0, outcome.extra[:10]
