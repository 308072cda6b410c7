"""Queue-position jobs: tell a patient their place in today's queue, and the sweep's catch-up for queue notices."""

from __future__ import annotations

from booking_core.services import queue_replies
from workers import delivery, runtime


def queue_position_reply(patient_id: int) -> str:
    """Send the patient their token, place and ETA in today's queue (the proactive path: a patient who asks in
    chat is answered by the dialog). A first or second place already announced is not repeated.

    Returns ``sent`` or ``nothing`` (not in today's queue, with the doctor, unreachable, or already told).
    """
    rt = runtime.current()
    return rt.run(_reply(rt, patient_id))


async def _reply(rt: runtime.Runtime, patient_id: int) -> str:
    async with rt.sessionmaker() as db, db.begin():
        outbox_id = await queue_replies.reply_for_patient(db, patient_id, default_language=rt.settings.DEFAULT_LANGUAGE)
    if outbox_id is None:
        return "nothing"
    delivery.enqueue_deliveries(rt, [outbox_id])
    return "sent"


async def catch_up(rt: runtime.Runtime) -> int:
    """Announce first and second places a concurrent change kept from being announced; how many notices."""
    async with rt.sessionmaker() as db, db.begin():
        outbox_ids = await queue_replies.catch_up(db)
    delivery.enqueue_deliveries(rt, outbox_ids)
    return len(outbox_ids)
