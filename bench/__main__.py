"""Run every benchmark: `python -m bench` (or `make bench`). Exit status 1 if a benchmark misses its checks.

`python -m bench B5 B6` runs a subset; `--quick` scales B5 and B6 down to a smoke test."""

from __future__ import annotations

import asyncio
import sys

from bench import (
    b1_b3_telegram,
    b4_availability,
    b5_reminders,
    b6_delivery_job,
    b7_booking_race,
    b7b_booking_overlap,
)
from bench.common import Report, bench_database
from devtools import harness


async def main() -> int:
    reports: list[Report] = []
    with harness.backing_services() as backing:
        only = {arg for arg in sys.argv[1:] if not arg.startswith("--")}  # e.g. `python -m bench B4 B7`; none = all
        quick = "--quick" in sys.argv[1:]

        def wanted(*names: str) -> bool:
            return not only or bool(only & set(names))

        if wanted("B1", "B2", "B3"):
            async with bench_database(backing, pool_size=5) as engine:
                reports.extend(await b1_b3_telegram.run(engine, backing))
        if wanted("B4", "B7", "B7b"):
            async with bench_database(backing, pool_size=60) as engine:
                if wanted("B4"):
                    reports.append(await b4_availability.run(engine))
                if wanted("B7"):
                    reports.append(await b7_booking_race.run(engine))
                if wanted("B7b"):
                    reports.append(await b7b_booking_overlap.run(engine))
        if wanted("B5"):
            async with bench_database(backing, pool_size=5) as engine:
                reports.append(await b5_reminders.run(engine, backing, quick=quick))
        if wanted("B6"):
            async with bench_database(backing, pool_size=2) as engine:
                reports.append(await b6_delivery_job.run(engine, backing, quick=quick))
    for report in reports:
        report.print()
    failed = [r.name.split()[0] for r in reports if not r.ok]
    print("\nall benchmarks met their checks" if not failed else f"\nmissed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
