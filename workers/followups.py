"""Follow-up jobs on the patient's own channel: the confirmation link, the check-in QR, the thank-you.

Each writes at most one outbox row per session (its dedupe key: ``confirm:<id>``, ``checkin-qr:<id>``,
``thanks:<id>``), so running a job twice (a retry, a second enqueue) sends nothing twice; the row's delivery is
enqueued after the commit (and the sweep re-enqueues it if Redis loses that job). The logic lives in
:mod:`booking_core.services.confirmation`.
"""

from __future__ import annotations

from booking_core.services import confirmation
from workers import runtime
from workers.delivery import enqueue_deliveries


def send_confirmation(session_id: int) -> list[int]:
    """Send the visit's confirmation link with Confirm / Cancel buttons; returns the outbox ids written."""
    rt = runtime.current()
    return rt.run(_send_confirmation(rt, session_id))


async def _send_confirmation(rt: runtime.Runtime, session_id: int) -> list[int]:
    async with rt.sessionmaker() as db, db.begin():
        ids = await confirmation.send_confirmation(
            db,
            session_id,
            secret=rt.settings.SECRET_KEY,
            base_url=rt.settings.PUBLIC_BASE_URL,
            default_language=rt.settings.DEFAULT_LANGUAGE,
        )
    enqueue_deliveries(rt, ids)
    return ids


def send_checkin_qr(session_id: int) -> list[int]:
    """Send the check-in QR of an accepted visit; returns the outbox ids written."""
    rt = runtime.current()
    return rt.run(_send_checkin_qr(rt, session_id))


async def _send_checkin_qr(rt: runtime.Runtime, session_id: int) -> list[int]:
    async with rt.sessionmaker() as db, db.begin():
        ids = await confirmation.send_checkin_qr(db, session_id, default_language=rt.settings.DEFAULT_LANGUAGE)
    enqueue_deliveries(rt, ids)
    return ids


def send_thank_you(session_id: int) -> list[int]:
    """Send the thank-you with 1-5 rating buttons for a completed visit; returns the outbox ids written."""
    rt = runtime.current()
    return rt.run(_send_thank_you(rt, session_id))


async def _send_thank_you(rt: runtime.Runtime, session_id: int) -> list[int]:
    async with rt.sessionmaker() as db, db.begin():
        ids = await confirmation.send_thank_you(db, session_id, default_language=rt.settings.DEFAULT_LANGUAGE)
    enqueue_deliveries(rt, ids)
    return ids
