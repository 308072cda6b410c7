"""How to reach a patient on their own channel: the most recently used Telegram, WhatsApp or web-chat identity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from booking_core.db.engine import Db
from booking_core.db.queries import reach as queries


@dataclass(frozen=True)
class Reach:
    channel: str
    recipient: str  # the identity's external id (chat id, E.164 number, visitor id)
    identity_id: int
    conversation_id: int | None
    language: str
    last_inbound_at: datetime | None


async def patient_reach(
    db: Db, patient_id: int, *, prefer_channel: str | None = None, default_language: str = "en"
) -> Reach | None:
    """The channel to write to (``prefer_channel`` first, e.g. the lead's), or None: nobody to send to."""
    rows = await queries.identities(db, patient_id)
    if not rows:
        return None
    patient = await queries.patient(db, patient_id)
    chosen = next((r for r in rows if r[0].channel == prefer_channel), rows[0])
    identity, conversation_id, language = chosen
    return Reach(
        channel=identity.channel,
        recipient=identity.external_id,
        identity_id=identity.id,
        conversation_id=conversation_id,
        language=language or (patient.language if patient and patient.language else default_language),
        last_inbound_at=identity.last_inbound_at,
    )
