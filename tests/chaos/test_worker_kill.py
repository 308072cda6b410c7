"""Workers killed with ``kill -9`` while patients write on Telegram: 2 gateways, 2 workers (a killed one is replaced,
as a supervisor would), the real aiogram client against the fake Bot API.

After each kill, within 30 s: no backend of the dead worker is left and none is idle in transaction, and no child
of the dead worker is still running. When the load is over: every update answered 200 is in the database and
answered, every reply reached the patient, and none twice, except inside the documented at-least-once window (the
provider accepted a message a moment before its sender died, before the sender could record it), counted apart.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.chaos.conftest import MakeStack
from tests.chaos.faults import Kill, kill_worker, longest_gap, next_accept_after, settle
from tests.chaos.figures import Figures
from tests.chaos.load import Ledger, Patients, delivery, ingest_lost, new_chats
from tests.chaos.stack import FAST_RECLAIM

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


async def test_worker_kill_9_under_telegram_load(make_stack: MakeStack, figures: Figures, chaos_mode: str) -> None:
    full = chaos_mode == "full"
    chats, seconds, pace, kills = (40, 90.0, 2.0, 3) if full else (12, 16.0, 2.0, 1)
    rng = random.Random()
    ledger = Ledger()
    done: list[Kill] = []
    async with make_stack(gateways=2 if full else 1, workers=2, **FAST_RECLAIM) as stack:
        patients = Patients(stack, ledger)
        writing = asyncio.ensure_future(patients.write(telegram_chats=new_chats(chats), seconds=seconds, pace=pace))
        checks = []
        began = time.monotonic()
        moments = sorted(rng.uniform(0.15, 0.8) * seconds for _ in range(kills))
        for moment in moments:
            await asyncio.sleep(max(0.0, began + moment - time.monotonic()))
            await stack.workers_ready(2)  # the replacement of the last one is up before the next kill
            kill, check = await kill_worker(stack, rng)
            done.append(kill)
            checks.append(asyncio.ensure_future(check))
        await writing
        loaded = time.monotonic()
        await asyncio.gather(*checks)
        drained = await settle(stack, seconds=150)
        outcome = await delivery(stack)
        stored_missing, never = await ingest_lost(stack, ledger)
        errors = stack.errors_logged()
        resumed = [next_accept_after(stack, k.at) for k in done]
        stall = longest_gap(stack, began, loaded)

    window = outcome.within([k.at for k in done], before=2.0)
    figures.load = (
        f"{ledger.count()} Telegram updates, {chats} chats, {seconds:.0f} s, {2 if full else 1} gateway(s) + 2 workers"
    )
    figures.fault = f"worker kill -9 ×{len(done)}"
    figures.lost = stored_missing + never + outcome.lost
    figures.duplicated = outcome.duplicated - window
    figures.window = window
    figures.server_errors = ledger.server_errors
    cleared = [k.cleared_after for k in done]
    figures.recovery = (
        f"longest pause in replies {stall:.1f} s (first reply ≤ {max((r or 999) for r in resumed):.1f} s after a "
        f"kill); dead worker's backends gone ≤ {max((c or 999) for c in cleared):.1f} s; drained {drained:.0f} s "
        "after the load"
    )
    figures.note(f"{outcome.rows} replies; refused answers {dict(ledger.refused)}; children at kill "
                 f"{[k.children for k in done]}")  # fmt: skip
    for kill in done:
        if kill.orphans or kill.stuck:
            figures.note(f"kill of {kill.pid}: orphans {kill.orphans}, stuck {kill.stuck}")
    if errors:
        figures.note(f"tracebacks logged: {errors}")

    assert all(not k.orphans for k in done), [k.orphans for k in done]
    assert all(not k.stuck for k in done), [k.stuck for k in done]
    assert all(k.cleared_after is not None for k in done)
    assert (stored_missing, never) == (0, 0)
    assert outcome.lost == 0, outcome.unsent[:10]
    assert figures.duplicated == 0, outcome.extra[:10]
    assert ledger.server_errors == 0, ledger.refused
    assert stall < 30, f"replies stopped for {stall:.0f} s after a kill"  # the issue saw a 4-minute freeze
