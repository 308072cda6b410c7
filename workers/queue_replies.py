"""The sweep's catch-up for queue notices (first and second places a concurrent change kept from being announced)."""

from __future__ import annotations

from booking_core.services import queue_replies
from workers import delivery, runtime


async def catch_up(rt: runtime.Runtime) -> int:
    """Announce first and second places a concurrent change kept from being announced; how many notices."""
    async with rt.sessionmaker() as db, db.begin():
        outbox_ids = await queue_replies.catch_up(db)
    delivery.enqueue_deliveries(rt, outbox_ids)
    return len(outbox_ids)
