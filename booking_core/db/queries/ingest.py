"""Writes of inbound messages: identities, patients, conversations, messages and leads, each race-safe."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.raw import RawDb
from booking_core.db.tables import (
    ChannelIdentity,
    Conversation,
    Invoice,
    Lead,
    LoyaltyEntry,
    Message,
    Patient,
    PatientInsurance,
    PatientPackage,
    Session,
    SlotHold,
)


async def message_id(db: AsyncSession, channel: str, external_id: str) -> int | None:
    result = await db.execute(select(Message.id).where(Message.channel == channel, Message.external_id == external_id))
    return result.scalar_one_or_none()


async def upsert_identity(
    db: AsyncSession, *, channel: str, external_id: str, display_name: str, language_code: str | None, now: datetime
) -> ChannelIdentity:
    stmt = insert(ChannelIdentity).values(
        channel=channel,
        external_id=external_id,
        display_name=display_name,
        language_code=language_code,
        last_inbound_at=now,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[ChannelIdentity.channel, ChannelIdentity.external_id],
        set_={
            "display_name": func.coalesce(func.nullif(stmt.excluded.display_name, ""), ChannelIdentity.display_name),
            "language_code": func.coalesce(stmt.excluded.language_code, ChannelIdentity.language_code),
            "last_inbound_at": stmt.excluded.last_inbound_at,
        },
    ).returning(ChannelIdentity)
    return (await db.execute(upsert, execution_options={"populate_existing": True})).scalar_one()


async def living_patient_by_phone(db: AsyncSession, phone: str) -> Patient | None:
    result = await db.execute(
        select(Patient).where(Patient.phone_e164 == phone, Patient.merged_into_id.is_(None)).with_for_update()
    )
    return result.scalar_one_or_none()


async def add_patient(db: AsyncSession, *, name: str, phone: str | None, language: str | None) -> Patient:
    """A new patient; when another transaction just created one with this phone, that one is returned."""
    if phone is not None:
        stmt = (
            insert(Patient)
            .values(name=name, phone_e164=phone, language=language, notes="")
            .on_conflict_do_nothing(
                index_elements=[Patient.phone_e164],
                index_where=Patient.merged_into_id.is_(None) & Patient.phone_e164.is_not(None),
            )
            .returning(Patient.id)
        )
        new_id = (await db.execute(stmt)).scalar_one_or_none()
        if new_id is None:
            existing = await living_patient_by_phone(db, phone)
            assert existing is not None
            return existing
        patient = await db.get(Patient, new_id)
        assert patient is not None
        return patient
    patient = Patient(name=name, phone_e164=None, language=language)
    db.add(patient)
    await db.flush()
    return patient


async def link_identity(db: AsyncSession, identity_id: int, patient_id: int) -> None:
    await db.execute(update(ChannelIdentity).where(ChannelIdentity.id == identity_id).values(patient_id=patient_id))


async def merge_patient(db: AsyncSession, *, duplicate_id: int, into_id: int) -> None:
    """Move everything of ``duplicate_id`` that points at a patient over to ``into_id`` and mark it merged."""
    for table in (
        ChannelIdentity,
        Conversation,
        Lead,
        Session,
        SlotHold,
        Invoice,
        LoyaltyEntry,
        PatientPackage,
        PatientInsurance,
    ):
        await db.execute(update(table).where(table.patient_id == duplicate_id).values(patient_id=into_id))
    await db.execute(update(Patient).where(Patient.id == duplicate_id).values(merged_into_id=into_id))


async def open_conversation(
    db: AsyncSession, *, identity: ChannelIdentity, language: str, now: datetime
) -> Conversation:
    stmt = (
        insert(Conversation)
        .values(
            identity_id=identity.id,
            patient_id=identity.patient_id,
            channel=identity.channel,
            status="open",
            language=language,
            bot_paused=False,
            dialog_state={},
            last_message_at=now,
        )
        # A literal predicate: a bound parameter would stop Postgres matching the partial index once it
        # switches the prepared statement to a generic plan (from its 6th run on a connection).
        .on_conflict_do_nothing(index_elements=[Conversation.identity_id], index_where=text("status = 'open'"))
        .returning(Conversation.id)
    )
    new_id = (await db.execute(stmt)).scalar_one_or_none()
    result = await db.execute(
        select(Conversation)
        .where(Conversation.identity_id == identity.id, Conversation.status == "open")
        .execution_options(populate_existing=True)
    )
    conversation = result.scalar_one()
    if new_id is None and conversation.patient_id is None and identity.patient_id is not None:
        conversation.patient_id = identity.patient_id
    return conversation


async def insert_message(db: AsyncSession, values: dict[str, Any]) -> int | None:
    """The inbound message, or None when the provider already delivered it (unique channel + external id)."""
    stmt = (
        insert(Message)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Message.channel, Message.external_id])
        .returning(Message.id)
    )
    return (await db.execute(stmt)).scalar_one_or_none()


async def open_lead(db: AsyncSession, conversation_id: int) -> Lead | None:
    result = await db.execute(
        select(Lead)
        .where(Lead.conversation_id == conversation_id, Lead.status.in_(("new", "accepted")))
        .order_by(Lead.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def lock_for_lead(db: AsyncSession, conversation_id: int) -> None:
    """A transaction-scoped advisory lock per conversation (namespace 7001): one lead is made, whatever races."""
    await db.execute(select(func.pg_advisory_xact_lock(7001, conversation_id)))


async def unprocessed_ids(db: AsyncSession, *, received_before: datetime, limit: int) -> list[int]:
    result = await db.execute(
        select(Message.id)
        .where(Message.direction == "in", Message.processed_at.is_(None), Message.created_at < received_before)
        .order_by(Message.id)
        .limit(limit)
    )
    return list(result.scalars())


_FAST_SQL = """
WITH ident AS (
    UPDATE channel_identities
       SET last_inbound_at = :now, display_name = COALESCE(NULLIF(:name, ''), display_name)
     WHERE channel = :channel AND external_id = :contact
 RETURNING id, patient_id
), conv AS (
    SELECT c.id FROM conversations c JOIN ident ON c.identity_id = ident.id WHERE c.status = 'open'
), lead AS (
    SELECT l.id FROM leads l JOIN conv ON l.conversation_id = conv.id
     WHERE l.status IN ('new', 'accepted') ORDER BY l.id DESC LIMIT 1
), msg AS (
    INSERT INTO messages (conversation_id, channel, direction, external_id, text, payload, author)
    SELECT conv.id, :channel, 'in', :external, :text, CAST(:payload AS jsonb), 'patient'
      FROM conv WHERE EXISTS (SELECT 1 FROM lead)
    ON CONFLICT (channel, external_id) DO NOTHING
 RETURNING id
)
SELECT (SELECT id FROM msg), (SELECT id FROM conv), (SELECT id FROM lead), (SELECT id FROM ident),
       (SELECT patient_id FROM ident)
"""
#: asyncpg numbers its parameters; the statement above names them for reading.
_FAST_PARAMS = ("now", "name", "channel", "contact", "external", "text", "payload")
_FAST_NUMBERED = _FAST_SQL
for _number, _name in enumerate(_FAST_PARAMS, start=1):
    _FAST_NUMBERED = re.sub(rf":{_name}\b", f"${_number}", _FAST_NUMBERED)
assert ":" not in _FAST_NUMBERED.replace("::", ""), "every parameter of the fast ingest statement is numbered"


async def receive_known_chats_raw(raw: RawDb, many: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The one-statement ingest of a message from a chat we know, for each of ``many``, in one transaction on the raw
    pool: one round trip, one commit. Atomic: when one statement fails, none of them is stored.

    Each row is (message_id, conversation_id, lead_id, identity_id, patient_id); a None message id with a conversation
    and lead means the message was a repeat; a None conversation or lead means the full path must run.
    """
    async with raw.acquire() as connection:
        rows = await connection.fetchmany(_FAST_NUMBERED, [[values[name] for name in _FAST_PARAMS] for values in many])
    assert len(rows) == len(many)
    return [tuple(row) for row in rows]


async def message_id_raw(raw: RawDb, channel: str, external_id: str) -> int | None:
    value = await raw.fetchval("SELECT id FROM messages WHERE channel = $1 AND external_id = $2", channel, external_id)
    return int(value) if value is not None else None
