"""Ingest: every inbound message is in Postgres before the provider hears back, exactly once.

``receive`` persists the message (unique on channel + external id, so a provider retry is a no-op), keeps the
channel identity up to date, resolves the patient (phone numbers in E.164, so one person on Telegram, WhatsApp and
the web is one patient), and attaches the message to the open conversation and its open lead (a new lead when there
is none: every channel's messages land in the staff inbox).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import ingest as queries
from booking_core.db.raw import RawDb
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


def _payload(inbound: InboundMessage, cut: bool) -> dict[str, Any]:
    return {
        "kind": inbound.kind,
        "button_data": inbound.button_data,
        "start_payload": inbound.start_payload,
        "media_count": inbound.media_count,
        "phone": inbound.contact.phone,
        "text_cut": cut,
        "raw": inbound.raw,
    }


def _for_a_known_chat(inbound: InboundMessage) -> bool:
    """Whether :func:`receive_known_chats` may take the message: no new phone number to resolve a patient by."""
    return inbound.contact.phone is None or inbound.channel == "whatsapp"


def _known_chat_values(inbound: InboundMessage, now: datetime) -> dict[str, Any]:
    text, cut = clean_text(inbound.text)
    return {
        "now": now,
        "name": inbound.contact.display_name[:120],
        "channel": inbound.channel,
        "contact": inbound.contact.external_id[:120],
        "external": inbound.external_id[:120],
        "text": text,
        "payload": json.dumps(_payload(inbound, cut)),
    }


async def receive_known_chats(
    raw: RawDb, inbounds: Sequence[InboundMessage], *, now: datetime | None = None
) -> list[Received | None]:
    """The common case, for several messages at once: each from a chat with an open conversation and lead.

    All of them are stored (or recognised as repeats) in one transaction, committed when this returns: one commit
    and one WAL flush for messages that arrived together. An entry is None when that message needs the full path
    (:func:`receive` in a transaction of its own): a first message, a chat without an open lead, or a phone number to
    resolve the patient by. If any statement fails, none of them is stored.
    """
    now = now or datetime.now(UTC)
    known = [(i, _known_chat_values(inbound, now)) for i, inbound in enumerate(inbounds) if _for_a_known_chat(inbound)]
    # Chat by chat (each chat's messages in the order they came): two transactions that share chats lock their
    # identity rows in the same order, so they never wait for each other in a circle.
    known.sort(key=lambda entry: (entry[1]["channel"], entry[1]["contact"]))
    rows = await queries.receive_known_chats_raw(raw, [values for _, values in known]) if known else []
    results: list[Received | None] = [None] * len(inbounds)
    for (i, _values), row in zip(known, rows, strict=True):
        message_id, conversation_id, lead_id, identity_id, patient_id = row
        if conversation_id is None or lead_id is None:
            continue
        duplicate = message_id is None
        if duplicate:
            message_id = await queries.message_id_raw(raw, inbounds[i].channel, inbounds[i].external_id)
            if message_id is None:  # only if the message was deleted in between: let the full path decide
                continue
        results[i] = Received(message_id, conversation_id, lead_id, patient_id, identity_id, duplicate=duplicate)
    return results


async def receive(
    db: Db,
    inbound: InboundMessage,
    *,
    now: datetime | None = None,
    default_language: str = "en",
) -> Received:
    """Persist ``inbound`` (or recognise it as a repeat) within the caller's transaction: the full path.

    It takes any message: a first one, one with a phone number that finds (or merges) the patient, one whose chat has
    no open lead. The webhooks try :func:`receive_known_chats` first (the fast path: one statement, committed with
    what arrived alongside) and come here only for what that leaves; a caller inside a transaction of its own (the
    booking form) comes here directly.
    """
    now = now or datetime.now(UTC)
    contact = inbound.contact
    text, cut = clean_text(inbound.text)
    payload = _payload(inbound, cut)
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
    now = now or datetime.now(UTC)
    return await queries.unprocessed_ids(db, received_before=now - timedelta(seconds=grace), limit=limit)
