"""The faults a scenario makes, and the bounded waits and checks that follow them."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from tests.chaos.load import accepted, unanswered
from tests.chaos.stack import Stack, alive
from tests.waiting import eventually


async def settled(stack: Stack) -> bool:
    """Every inbound message answered and no outbox row still to go (pending or being sent)."""
    if await unanswered(stack):
        return False
    rows = await stack.query("SELECT count(*) AS n FROM outbox WHERE status IN ('pending', 'sending')")
    return int(rows[0]["n"]) == 0


async def settle(stack: Stack, *, seconds: float) -> float:
    """Wait until :func:`settled` (bounded); returns how long it took."""
    began = time.monotonic()
    try:
        await eventually(lambda: quietly(settled(stack)), seconds=seconds, what="the queue draining")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}: {await what_is_left(stack)}; logs in {stack.logs}") from None
    return time.monotonic() - began


async def what_is_left(stack: Stack) -> str:
    """The unanswered messages and the rows still to go, for a scenario that did not drain."""
    waiting = await stack.query(
        "SELECT id, external_id, created_at FROM messages WHERE direction = 'in' AND processed_at IS NULL LIMIT 5"
    )
    rows = await stack.query(
        "SELECT to_jsonb(o) - 'payload' AS row FROM outbox o WHERE status IN ('pending', 'sending') ORDER BY id LIMIT 5"
    )
    by_recipient = await stack.query(
        "SELECT recipient, status, count(*) AS n, min(id) AS first FROM outbox WHERE status IN ('pending', 'sending')"
        " GROUP BY recipient, status ORDER BY n DESC LIMIT 5"
    )
    return (f"unanswered {[dict(r) for r in waiting]}, unsent {[r['row'] for r in rows]}, by recipient "
            f"{[dict(r) for r in by_recipient]}, now {datetime.now(UTC)}")  # fmt: skip


async def quietly(check: Awaitable[bool]) -> bool:
    """A check against the database that counts as not-yet while the database restarts."""
    try:
        return await check
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


async def backlog_cleared(stack: Stack, before: datetime) -> bool:
    """Every message that came in before ``before`` is answered, and every row planned before it has gone."""
    rows = await stack.query(
        "SELECT (SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL AND created_at < $1)"
        " + (SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending') AND created_at < $1) AS n",
        before,
    )
    return int(rows[0]["n"]) == 0


async def time_to_clear_backlog(stack: Stack, *, seconds: float) -> float:
    """From now, how long until everything that came in or was planned until now has been answered and sent."""
    began, now = time.monotonic(), datetime.now(UTC)
    await eventually(lambda: quietly(backlog_cleared(stack, now)), seconds=seconds, what="the backlog clearing")
    return time.monotonic() - began


def next_accept_after(stack: Stack, moment: float) -> float | None:
    """Seconds from ``moment`` to the first message a provider accepted after it (None: none yet)."""
    later = [at for _, _, at in accepted(stack) if at > moment]
    return min(later) - moment if later else None


def longest_gap(stack: Stack, start: float, end: float) -> float:
    """The longest time between two messages the providers accepted (from ``start`` to ``end``) while the load was
    on: how long a fault stopped replies (under steady load, below a second)."""
    times = sorted(at for _, _, at in accepted(stack) if start <= at <= end)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@dataclass
class Kill:
    """One ``kill -9`` of a worker and what it left behind."""

    pid: int
    at: float
    children: list[int] = field(default_factory=list)
    orphans: list[int] = field(default_factory=list)  # children still alive after the check's deadline
    stuck: list[str] = field(default_factory=list)  # backends still idle in transaction at the deadline
    cleared_after: float | None = None  # seconds until no backend of the dead worker remained


async def kill_worker(stack: Stack, rng: random.Random, *, replace: bool = True) -> tuple[Kill, Awaitable[None]]:
    """``kill -9`` one live worker (its main process only, as the OOM killer would); start a replacement, as a
    supervisor would. Returns the kill and a check to await: within 30 s no backend of the dead worker is left,
    none is idle in transaction for long, and no child of the dead worker is still running (any that is, is
    killed then, and named)."""
    # The worker with children (RQ's scheduler, when forked) first: that is where an orphan would come from.
    workers = [(w, w.descendants()) for w in stack.workers]
    victim, children = rng.choice([one for one in workers if one[1]] or workers)
    ports = stack.database_ports(victim)
    kill = Kill(victim.pid, time.monotonic(), [c.pid for c in children])
    victim.kill_main()
    if replace:
        stack.start_worker()

    async def check() -> None:
        deadline = kill.at + 30
        while True:
            try:
                left = await stack.backends_of(ports)
                stuck = await stack.stuck_in_transaction()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if time.monotonic() > deadline + 60:
                    kill.stuck = ["the database did not answer"]
                    return
                await asyncio.sleep(0.25)  # the database is restarting (another fault of the scenario)
                continue
            orphans = alive(children)
            if not left and not stuck and not orphans:
                kill.cleared_after = time.monotonic() - kill.at
                return
            if time.monotonic() > deadline:
                kill.orphans = [p.pid for p in orphans]
                kill.stuck = [f"pid {r['pid']} idle {r['idle']} after: {r['query']}" for r in stuck]
                for orphan in orphans:  # the suite cleans up after itself, and the system gets its locks back
                    orphan.kill()
                return
            await asyncio.sleep(0.25)

    return kill, check()
