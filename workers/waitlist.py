"""Waitlist jobs: offer a freed slot to the patients waiting for its day (for changes made outside the hooks)."""

from __future__ import annotations

from booking_core.services import waitlist
from workers import delivery, runtime


def waitlist_offer(session_id: int) -> int:
    """Offer the time of cancelled session ``session_id`` to the waitlist; returns how many offers went out.

    Cancelling through the lifecycle service already does this in its transaction; this job is for a slot
    freed another way (or to offer it again). An open offer for the same time makes it a no-op.
    """
    rt = runtime.current()
    return rt.run(_offer(rt, session_id))


async def _offer(rt: runtime.Runtime, session_id: int) -> int:
    async with rt.sessionmaker() as db, db.begin():
        outbox_ids = await waitlist.slot_freed(db, session_id, default_language=rt.settings.DEFAULT_LANGUAGE)
    delivery.enqueue_deliveries(rt, outbox_ids)
    return len(outbox_ids)
