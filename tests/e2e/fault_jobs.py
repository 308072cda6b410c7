"""Jobs that only the fault tests enqueue: they put a real worker in the state a fault should meet it in."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from workers import runtime


def hold_a_row_lock(patient_id: int, marker: str) -> None:
    """Lock a patient's row inside an open transaction, say so in Redis, then stay in the transaction (until the
    worker is killed): a worker killed in the middle of its work, holding what it locked."""
    rt = runtime.current()

    async def hold() -> None:
        async with rt.sessionmaker() as db, db.begin():
            await db.execute(text("SELECT id FROM patients WHERE id = :id FOR UPDATE"), {"id": patient_id})
            await rt.redis.set(marker, "locked")
            while True:  # keep the transaction busy (not idle), as a long statement would
                await db.execute(text("SELECT pg_sleep(0.5)"))
                await asyncio.sleep(0)

    rt.run(hold())
