"""Reading the lead inbox: newest first, filtered, with the whole conversation across a patient's channels."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import (
    AuditEntry,
    Branch,
    ChannelIdentity,
    Conversation,
    Doctor,
    Examination,
    Lead,
    Message,
    OutboxMessage,
    Patient,
)


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
    stmt = _filtered(stmt, status=status, channel=channel, branch_id=branch_id, only_branch=only_branch)
    if search:
        stmt = stmt.where(or_(*_named_like(f"%{_cleaned(search)}%")))
    return list((await db.execute(stmt)).all())


def _filtered(
    stmt: Select[Any], *, status: str | None, channel: str | None, branch_id: int | None, only_branch: int | None
) -> Select[Any]:
    """The inbox filters both the API's list and the staff page apply."""
    if status:
        stmt = stmt.where(Lead.status == status)
    if channel:
        stmt = stmt.where(Lead.channel == channel)
    if branch_id:
        stmt = stmt.where(Lead.branch_id == branch_id)
    if only_branch is not None:  # branch staff: their branch's leads and those no branch is set on yet
        stmt = stmt.where(or_(Lead.branch_id == only_branch, Lead.branch_id.is_(None)))
    return stmt


def _cleaned(search: str) -> str:
    """The search text without LIKE's wildcards and escape character, so it matches only itself."""
    return search.replace("\\", "").replace("%", "").replace("_", "").strip()


def _named_like(like: str) -> list[ColumnElement[bool]]:
    """A lead's names, phone and request text matching the LIKE pattern."""
    return [
        Lead.contact_name.ilike(like),
        Lead.contact_phone.ilike(like),
        Patient.name.ilike(like),
        Lead.requested_text.ilike(like),
    ]


async def get_lead(db: AsyncSession, lead_id: int) -> Lead | None:
    return await db.get(Lead, lead_id)


async def count_new(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(Lead).where(Lead.status == "new"))).scalar_one())


# --- the staff web inbox: one row per lead with what the list shows, and what the lead page shows


async def inbox_rows(
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
    """New leads first, then by last activity (newest message or status change); with the names the list shows,
    the last message, whether a message to the patient failed, and the bot's state."""
    last = (
        select(Message.text, Message.author, Message.created_at)
        .where(Message.conversation_id == Lead.conversation_id)
        .order_by(Message.id.desc())
        .limit(1)
        .correlate(Lead)
        .lateral("last")
    )
    failed = (
        exists()
        .where(
            Message.conversation_id == Lead.conversation_id,
            OutboxMessage.id == Message.outbox_id,
            OutboxMessage.status == "failed",
        )
        .correlate(Lead)
    )
    activity = func.greatest(Lead.updated_at, func.coalesce(last.c.created_at, Lead.updated_at))
    stmt = (
        select(
            Lead,
            Patient.name.label("patient_name"),
            last.c.text.label("last_text"),
            last.c.author.label("last_author"),
            activity.label("activity"),
            failed.label("failed"),
            Examination.name.label("examination_name"),
            Doctor.name.label("doctor_name"),
            Branch.name.label("branch_name"),
            Branch.tz.label("branch_tz"),
            Conversation.bot_paused.label("bot_paused"),
        )
        .select_from(Lead)
        .outerjoin(last, true())
        .outerjoin(Patient, Patient.id == Lead.patient_id)
        .outerjoin(Examination, Examination.id == Lead.examination_id)
        .outerjoin(Doctor, Doctor.id == Lead.doctor_id)
        .outerjoin(Branch, Branch.id == Lead.branch_id)
        .outerjoin(Conversation, Conversation.id == Lead.conversation_id)
        .order_by((Lead.status == "new").desc(), activity.desc(), Lead.id.desc())
        .limit(limit)
        .offset(offset)
    )
    stmt = _filtered(stmt, status=status, channel=channel, branch_id=branch_id, only_branch=only_branch)
    if search:
        cleaned = _cleaned(search)
        like = f"%{cleaned}%"
        said = exists().where(Message.conversation_id == Lead.conversation_id, Message.text.ilike(like)).correlate(Lead)
        matches = [*_named_like(like), said]
        digits = "".join(ch for ch in cleaned if ch.isdigit()).removeprefix("0")
        if len(digits) >= 4 and len(digits) >= len(cleaned.replace(" ", "").replace("-", "")) - 1:
            # A phone number as people type it ("0812-3456 7890") finds the stored E.164 one (+6281234567890).
            for phone in (Lead.contact_phone, Patient.phone_e164):
                matches.append(func.regexp_replace(func.coalesce(phone, ""), r"\D", "", "g").contains(digits))
        stmt = stmt.where(or_(*matches))
    return list((await db.execute(stmt)).all())


async def thread(db: AsyncSession, *, patient_id: int | None, conversation_id: int | None, limit: int) -> list[Any]:
    """The patient's messages on every channel (or the one conversation's), oldest first, the last ``limit``;
    outbound ones with their outbox row's status and error."""
    scope = Conversation.patient_id == patient_id if patient_id is not None else Conversation.id == conversation_id
    stmt = (
        select(
            Message,
            Conversation.channel,
            ChannelIdentity.display_name,
            OutboxMessage.status.label("outbox_status"),
            OutboxMessage.delivery_state.label("delivery_state"),
            OutboxMessage.last_error.label("last_error"),
            OutboxMessage.uncertain_at.label("uncertain_at"),
        )
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .outerjoin(OutboxMessage, OutboxMessage.id == Message.outbox_id)
        .where(scope)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    rows = list((await db.execute(stmt)).all())
    rows.reverse()
    return rows


async def identities_of(db: AsyncSession, patient_id: int) -> list[ChannelIdentity]:
    """Every channel the patient has written from, most recently active first."""
    result = await db.execute(
        select(ChannelIdentity)
        .where(ChannelIdentity.patient_id == patient_id)
        .order_by(ChannelIdentity.last_inbound_at.desc().nulls_last(), ChannelIdentity.id.desc())
    )
    return list(result.scalars())


async def history(db: AsyncSession, *, lead_id: int, conversation_ids: list[int], limit: int = 100) -> list[AuditEntry]:
    """Audit rows of the lead and of its chat (bot paused, handed back), oldest first."""
    scope = (AuditEntry.entity == "lead") & (AuditEntry.entity_id == lead_id)
    if conversation_ids:
        scope = scope | ((AuditEntry.entity == "conversation") & AuditEntry.entity_id.in_(conversation_ids))
    result = await db.execute(select(AuditEntry).where(scope).order_by(AuditEntry.id.desc()).limit(limit))
    rows = list(result.scalars())
    rows.reverse()
    return rows


async def branch(db: AsyncSession, branch_id: int | None) -> Branch | None:
    return await db.get(Branch, branch_id) if branch_id is not None else None


async def first_branch_tz(db: AsyncSession) -> str | None:
    result = await db.execute(select(Branch.tz).where(Branch.active.is_(True)).order_by(Branch.id).limit(1))
    return result.scalar_one_or_none()
