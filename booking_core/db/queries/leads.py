"""Reading the lead inbox: newest first, filtered, with the whole conversation across a patient's channels."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import ChannelIdentity, Conversation, Lead, Message, Patient


async def list_leads(
    db: AsyncSession,
    *,
    status: str | None,
    channel: str | None,
    branch_id: int | None,
    only_branch: int | None,
    search: str | None,
    limit: int,
    offset: int,
) -> list[Any]:
    last_text = (
        select(Message.text)
        .where(Message.conversation_id == Lead.conversation_id)
        .order_by(Message.id.desc())
        .limit(1)
        .correlate(Lead)
        .scalar_subquery()
    )
    stmt = (
        select(
            Lead,
            Patient.name.label("patient_name"),
            Patient.phone_e164.label("patient_phone"),
            last_text.label("last_text"),
        )
        .outerjoin(Patient, Patient.id == Lead.patient_id)
        .order_by(Lead.created_at.desc(), Lead.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if status:
        stmt = stmt.where(Lead.status == status)
    if channel:
        stmt = stmt.where(Lead.channel == channel)
    if branch_id:
        stmt = stmt.where(Lead.branch_id == branch_id)
    if only_branch is not None:  # branch staff: their branch's leads and those no branch is set on yet
        stmt = stmt.where(or_(Lead.branch_id == only_branch, Lead.branch_id.is_(None)))
    if search:
        like = f"%{search.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(
            or_(
                Lead.contact_name.ilike(like),
                Lead.contact_phone.ilike(like),
                Patient.name.ilike(like),
                Lead.requested_text.ilike(like),
            )
        )
    return list((await db.execute(stmt)).all())


async def get_lead(db: AsyncSession, lead_id: int) -> Lead | None:
    return await db.get(Lead, lead_id)


async def conversation_messages(
    db: AsyncSession, *, patient_id: int | None, conversation_id: int | None, limit: int
) -> list[Any]:
    """Messages of every conversation of the patient (all channels), oldest first; the last ``limit``."""
    scope = Conversation.patient_id == patient_id if patient_id is not None else Conversation.id == conversation_id
    stmt = (
        select(Message, Conversation.channel, ChannelIdentity.display_name)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .where(scope)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    rows = list((await db.execute(stmt)).all())
    rows.reverse()
    return rows


async def count_new(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(Lead).where(Lead.status == "new"))).scalar_one())
