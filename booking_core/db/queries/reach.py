"""Where a patient can be reached: their channel identities, most recently active first; what we last wrote there."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import ChannelIdentity, Conversation, OutboxMessage, Patient
from booking_core.domain.messages import CHATS


async def identities(db: AsyncSession, patient_id: int) -> list[Any]:
    """(identity, open conversation id or None, conversation language or None), newest activity first."""
    stmt = (
        select(ChannelIdentity, Conversation.id, Conversation.language)
        .outerjoin(
            Conversation,
            (Conversation.identity_id == ChannelIdentity.id) & (Conversation.status == "open"),
        )
        .where(ChannelIdentity.patient_id == patient_id, ChannelIdentity.channel.in_(CHATS))
        .order_by(ChannelIdentity.last_inbound_at.desc().nulls_last(), ChannelIdentity.id.desc())
    )
    return list((await db.execute(stmt)).all())


async def patient(db: AsyncSession, patient_id: int) -> Patient | None:
    found = await db.get(Patient, patient_id)
    if found is not None and found.merged_into_id is not None:
        return await db.get(Patient, found.merged_into_id)
    return found


async def latest_outbox(db: AsyncSession, identity_id: int) -> tuple[str, dict[str, Any]] | None:
    """(kind, payload) of the last message we planned for this chat identity (None: nothing yet)."""
    result = await db.execute(
        select(OutboxMessage.kind, OutboxMessage.payload)
        .where(OutboxMessage.identity_id == identity_id)
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    row = result.first()
    return (row.kind, row.payload) if row is not None else None
