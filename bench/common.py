"""Shared bench plumbing: a fresh, migrated database on the machine's (or an embedded) PostgreSQL, timing helpers."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from booking_core.db.engine import make_engine
from devtools import harness
from gateway.migrate import upgrade


@dataclass
class Report:
    """One benchmark's figures, printed as aligned lines and kept for the README."""

    name: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    ok: bool = True

    def add(self, label: str, value: str) -> None:
        self.lines.append((label, value))

    def print(self) -> None:
        print(f"\n{self.name}")
        width = max((len(label) for label, _ in self.lines), default=0)
        for label, value in self.lines:
            print(f"  {label.ljust(width)}  {value}")


@contextlib.asynccontextmanager
async def bench_database(backing: harness.Backing, *, pool_size: int = 10) -> AsyncIterator[AsyncEngine]:
    name = harness.new_name("frontdesk_bench")
    await harness.create_database(backing.admin_url, name)
    url = backing.database_url(name).replace("postgresql://", "postgresql+asyncpg://")
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url, pool_size=pool_size)
    try:
        yield engine
    finally:
        await engine.dispose()
        await harness.drop_database(backing.admin_url, name)


async def timed(fn: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """Wall-clock seconds of ``repeat`` sequential runs (after one warm-up run)."""
    await fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
