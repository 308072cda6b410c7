"""Ingest: every inbound message is in Postgres before the provider hears back, exactly once.

``receive`` persists the message (unique on channel + external id, so a provider retry is a no-op), keeps the
channel identity up to date, resolves the patient (phone numbers in E.164, so one person on Telegram, WhatsApp and
the web is one patient), and attaches the message to the open conversation and its open lead (a new lead when there
is none: every channel's messages land in the staff inbox).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from booking_core.db.engine import Db
from booking_core.db.queries import ingest as queries
from booking_core.db.tables import ChannelIdentity, Lead, Patient
from booking_core.domain.actors import Actor
from booking_core.domain.messages import InboundMessage, clean_text
from booking_core.domain.phones import to_e164
from booking_core.services import audit

LANGUAGES = ("en", "id")


@dataclass(frozen=True)
class Received:
    message_id: int
    conversation_id: int | None
    lead_id: int | None
    patient_id: int | None
    identity_id: int | None
    duplicate: bool


def language_for(code: str | None, default: str) -> str:
    """Telegram's "id", "id-ID", "en-GB" → our two languages; anything else → the clinic default."""
    base = (code or "").split("-")[0].lower()
    return base if base in LANGUAGES else default


async def receive(
    db: Db, inbound: InboundMessage, *, now: datetime | None = None, default_language: str = "en"
) -> Received:
    """Persist ``inbound`` (or recognise it as a repeat) within the caller's transaction."""
    now = now or datetime.now(UTC)
    contact = inbound.contact
    text, cut = clean_text(inbound.text)
    payload = {
        "kind": inbound.kind,
        "button_data": inbound.button_data,
        "start_payload": inbound.start_payload,
        "media_count": inbound.media_count,
        "phone": contact.phone,
        "text_cut": cut,
        "raw": inbound.raw,
    }
    if contact.phone is None or inbound.channel == "whatsapp":  # no new phone to resolve a patient by
        fast = await queries.receive_known_chat(
            db,
            {
                "now": now,
                "name": contact.display_name[:120],
                "channel": inbound.channel,
                "contact": contact.external_id[:120],
                "external": inbound.external_id[:120],
                "text": text,
                "payload": json.dumps(payload),
            },
        )
        message_id, conversation_id, lead_id, identity_id, patient_id = fast
        if conversation_id is not None and lead_id is not None:
            if message_id is not None:
                return Received(message_id, conversation_id, lead_id, patient_id, identity_id, duplicate=False)
            existing = await queries.message_id(db, inbound.channel, inbound.external_id)
            assert existing is not None
            return Received(existing, conversation_id, lead_id, patient_id, identity_id, duplicate=True)
    existing = await queries.message_id(db, inbound.channel, inbound.external_id)
    if existing is not None:
        return Received(existing, None, None, None, None, duplicate=True)
    identity = await queries.upsert_identity(
        db,
        channel=inbound.channel,
        external_id=contact.external_id[:120],
        display_name=contact.display_name[:120],
        language_code=contact.language_code[:10] if contact.language_code else None,
        now=now,
    )
    patient = await _resolve_patient(db, identity, phone=to_e164(contact.phone), default_language=default_language)
    conversation = await queries.open_conversation(
        db, identity=identity, language=language_for(contact.language_code, default_language), now=now
    )
    # Serialise first messages of one conversation (the lead below is made once even if two arrive together) with
    # an advisory lock: the conversation row itself may be locked for a while by the dialog answering the chat.
    await queries.lock_for_lead(db, conversation.id)
    message_id = await queries.insert_message(
        db,
        {
            "conversation_id": conversation.id,
            "channel": inbound.channel,
            "direction": "in",
            "external_id": inbound.external_id[:120],
            "text": text,
            "payload": payload,
            "author": "patient",
        },
    )
    if message_id is None:  # a concurrent delivery of the same message won the insert
        existing = await queries.message_id(db, inbound.channel, inbound.external_id)
        assert existing is not None
        return Received(existing, conversation.id, None, None, identity.id, duplicate=True)
    lead = await queries.open_lead(db, conversation.id)
    if lead is None:
        lead = Lead(
            channel=inbound.channel,
            status="new",
            conversation_id=conversation.id,
            patient_id=patient.id if patient else None,
            identity_id=identity.id,
            contact_name=(patient.name if patient and patient.name else contact.display_name)[:120],
            contact_phone=patient.phone_e164 if patient else None,
            requested_text=text[:1000],
            created_at=now,
            updated_at=now,
        )
        db.add(lead)
        await db.flush()
        audit.record(
            db,
            Actor(kind="patient", id=lead.patient_id, name=lead.contact_name),
            "lead.created",
            "lead",
            lead.id,
            {"channel": inbound.channel},
        )
    elif lead.patient_id is None and patient is not None:
        lead.patient_id = patient.id
    return Received(message_id, conversation.id, lead.id, patient.id if patient else None, identity.id, False)


async def _resolve_patient(
    db: Db, identity: ChannelIdentity, *, phone: str | None, default_language: str
) -> Patient | None:
    """The patient behind an identity: linked already, found by phone, or new. Merges when a phone reveals a twin."""
    current = await db.get(Patient, identity.patient_id) if identity.patient_id else None
    if current is not None and current.merged_into_id is not None:
        current = await db.get(Patient, current.merged_into_id)
    if phone is None:
        if current is None:
            current = await queries.add_patient(
                db,
                name=identity.display_name,
                phone=None,
                language=language_for(identity.language_code, default_language),
            )
            await queries.link_identity(db, identity.id, current.id)
            identity.patient_id = current.id
        return current
    known = await queries.living_patient_by_phone(db, phone)
    if current is None:
        patient = known or await queries.add_patient(
            db, name=identity.display_name, phone=phone, language=language_for(identity.language_code, default_language)
        )
    elif known is None or known.id == current.id:
        patient = current
        if current.phone_e164 is None:
            current.phone_e164 = phone
    else:
        # The same person wrote from another channel first.
        patient = await merge_same_person(
            db, known, current, phone=phone, actor=Actor(kind="system", name="ingest"), via=identity.channel
        )
    if identity.patient_id != patient.id:
        await queries.link_identity(db, identity.id, patient.id)
        identity.patient_id = patient.id
    await db.flush()
    return patient


async def merge_same_person(
    db: Db, first: Patient, second: Patient, *, phone: str | None, actor: Actor, via: str
) -> Patient:
    """Two records turned out to be one person: keep the older, fold the newer into it (audited).

    Everything that pointed at the folded record (identities, conversations, leads, sessions, holds, invoices, ...)
    moves to the kept one; the folded record stays, marked merged, for history.
    """
    keep, fold = (first, second) if first.id < second.id else (second, first)
    await queries.merge_patient(db, duplicate_id=fold.id, into_id=keep.id)
    if keep.phone_e164 is None and phone is not None:
        keep.phone_e164 = phone
    if not keep.name and fold.name:
        keep.name = fold.name
    audit.record(db, actor, "patient.merged", "patient", keep.id, {"merged": fold.id, "via": via})
    return keep


async def unprocessed(db: Db, *, now: datetime | None = None, grace: float = 30.0, limit: int = 200) -> list[int]:
    """Inbound messages the dialog has not answered ``grace`` seconds after they arrived (a gateway died)."""
    from datetime import timedelta

    now = now or datetime.now(UTC)
    return await queries.unprocessed_ids(db, received_before=now - timedelta(seconds=grace), limit=limit)
