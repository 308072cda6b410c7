"""Queries behind the website channels: the web-chat history a visitor sees, and the booking form's lead details."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import ChannelIdentity, Conversation, Lead, Message, OutboxMessage


async def visitor_history(db: AsyncSession, *, channel: str, external_id: str, limit: int) -> list[dict[str, Any]]:
    """The identity's last ``limit`` messages, oldest first: everything it sent, and what we sent that went out.

    Outgoing messages still waiting in the outbox are left out: they reach the open widget live when sent, with the
    provider id that the history then shows too (the widget drops repeats by id).
    """
    stmt = (
        select(
            Message.id,
            Message.direction,
            Message.external_id,
            Message.text,
            Message.payload,
            Message.created_at,
            OutboxMessage.provider_id,
            OutboxMessage.payload.label("outbox_payload"),
        )
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .outerjoin(OutboxMessage, OutboxMessage.id == Message.outbox_id)
        .where(
            ChannelIdentity.channel == channel,
            ChannelIdentity.external_id == external_id,
            or_(Message.direction == "in", Message.outbox_id.is_(None), OutboxMessage.status == "sent"),
        )
        .order_by(Message.id.desc())
        .limit(limit)
    )
    rows = (await db.execute(stmt)).mappings().all()
    return [dict(row) for row in reversed(rows)]


async def update_lead(db: AsyncSession, lead_id: int, values: dict[str, Any]) -> None:
    await db.execute(update(Lead).where(Lead.id == lead_id).values(**values))


async def mark_processed(db: AsyncSession, message_id: int, *, now: datetime) -> None:
    """Nothing answers a form submission in chat: mark it handled so the dialog sweep leaves it alone."""
    await db.execute(update(Message).where(Message.id == message_id).values(processed_at=now))
