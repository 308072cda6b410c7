"""Running what a change to a visit left to do (:mod:`booking_core.domain.followups`).

The owner of the transaction (an API or inbox handler, the confirmation page, the dialog) calls :func:`run` after
the change and before it commits: the thank-you and the waitlist offers are outbox rows of that same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from booking_core.db.engine import Db
from booking_core.domain.followups import FollowUp, OfferFreedTime, ThankYou
from booking_core.services import visit_messages, waitlist


async def run(
    db: Db, follow_ups: Iterable[FollowUp], *, now: datetime | None = None, default_language: str = "en"
) -> list[int]:
    """Plan the messages ``follow_ups`` call for; returns their outbox ids (delivery is enqueued after commit)."""
    planned: list[int] = []
    for follow_up in follow_ups:
        match follow_up:
            case ThankYou(session_id):
                planned += await visit_messages.send_thank_you(db, session_id, default_language=default_language)
            case OfferFreedTime(session_id):
                planned += await waitlist.slot_freed(db, session_id, now=now, default_language=default_language)
    return planned
