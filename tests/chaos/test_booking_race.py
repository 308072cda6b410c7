"""Bookings racing through the staff HTTP API (2 gateways): overlapping slots on the same doctor, and on the same room
with different doctors, 50 requests in flight at a time.

Every request is answered 201 (booked) or 409 (the time is taken), never a 5xx; the database holds no two active
occupancies of one doctor, or of one room, that overlap; the latency percentiles are reported.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import aiohttp
import pytest

from bench.common import percentile
from tests.chaos.conftest import MakeStack
from tests.chaos.desk import clinic, desk, weekday_at
from tests.chaos.figures import Figures

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

IN_FLIGHT = 50
OVERLAPS = """
SELECT count(*) AS n FROM occupancies a JOIN occupancies b ON a.id < b.id AND a.during && b.during
WHERE a.active AND b.active AND ({same})
"""


async def test_booking_race_through_the_api(make_stack: MakeStack, figures: Figures, chaos_mode: str) -> None:
    requests = 1000 if chaos_mode == "full" else 200
    rng = random.Random(11)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    samples: dict[str, str] = {}
    async with (
        make_stack(gateways=2 if chaos_mode == "full" else 1, workers=0) as stack,
        aiohttp.ClientSession() as http,
    ):
        front = await desk(stack, http)
        ids = await clinic(stack)
        patients = [r["id"] for r in await stack.query("SELECT id FROM patients")]
        bases = [g.base for g in stack.gateways]
        rooms = [ids.rooms["Consultation 1"], ids.rooms["Consultation 2"]]
        # Tuesday afternoon at Kemang: dr. Andi (general practice) and dr. Maya (skin) both work 13:00-16:00.
        starts = [weekday_at(1, 13 + m // 60, m % 60) for m in range(0, 165, 15)]  # slots start every 15 min

        def body() -> dict[str, object]:
            same_room = rng.random() < 0.5
            exam, doctor = rng.choice([("GP", "andi"), ("SKIN", "maya")]) if same_room else ("GP", "andi")
            chosen: dict[str, object] = {
                "branch_id": ids.kemang, "patient_id": rng.choice(patients), "examination_ids": [ids.exams[exam]],
                "start": rng.choice(starts).isoformat(), "doctor_id": ids.doctors[doctor],
            }  # fmt: skip
            chosen["room_id"] = rooms[0] if same_room else rng.choice(rooms)
            return chosen

        bodies = [body() for _ in range(requests)]
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def book(n: int) -> None:
            async with slots:
                began = time.perf_counter()
                try:
                    async with http.post(f"{bases[n % len(bases)]}/api/v1/sessions", json=bodies[n],
                                         headers=front.headers) as response:  # fmt: skip
                        answer = await response.json(content_type=None)
                        statuses[response.status] += 1
                        if response.status >= 400:
                            error = (answer or {}).get("error", {})
                            codes[str(error.get("code"))] += 1
                            samples.setdefault(str(error.get("code")), str(error.get("message"))[:200])
                except aiohttp.ClientError as exc:
                    statuses[0] += 1
                    codes[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - began)

        wall = time.perf_counter()
        await asyncio.gather(*(book(n) for n in range(requests)))
        wall = time.perf_counter() - wall
        doctor_twice = (await stack.query(OVERLAPS.format(same="a.doctor_id = b.doctor_id")))[0]["n"]
        room_twice = (await stack.query(OVERLAPS.format(same="a.room_id = b.room_id")))[0]["n"]
        booked = (await stack.query("SELECT count(*) AS n FROM sessions WHERE status <> 'cancelled'"))[0]["n"]

    server_errors = sum(n for status, n in statuses.items() if status >= 500 or status == 0)
    figures.load = f"{requests} POST /api/v1/sessions, {IN_FLIGHT} in flight, {len(bases)} gateway(s)"
    figures.fault = "overlapping slots: same doctor; same room, different doctors"
    figures.lost = 0 if statuses[201] == booked else abs(statuses[201] - booked)
    figures.duplicated = int(doctor_twice) + int(room_twice)
    figures.window = 0
    figures.server_errors = server_errors
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    figures.recovery = f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, all in {wall:.1f} s"
    figures.note(f"answers {dict(statuses)}, errors {dict(codes)}, e.g. {samples}; {booked} sessions booked; "
                 "'duplicated' here: double bookings (overlapping active occupancies, doctor or room)")  # fmt: skip

    assert server_errors == 0, (statuses, codes)
    assert set(statuses) <= {201, 409}, (statuses, codes)
    assert (doctor_twice, room_twice) == (0, 0)
    assert statuses[201] == booked
