"""The lead inbox: every channel's booking requests, newest first, with the whole conversation behind each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import leads as queries
from booking_core.db.tables import Lead
from booking_core.domain.actors import Actor
from booking_core.services.errors import NotFound

STATUSES = ("new", "accepted", "rejected", "converted")


@dataclass(frozen=True)
class LeadSummary:
    id: int
    channel: str
    status: str
    created_at: datetime
    updated_at: datetime
    contact_name: str
    contact_phone: str | None
    patient_id: int | None
    patient_name: str | None
    branch_id: int | None
    examination_id: int | None
    doctor_id: int | None
    requested_start: datetime | None
    hold_id: int | None
    last_text: str


@dataclass(frozen=True)
class ThreadMessage:
    id: int
    channel: str
    direction: str
    author: str
    text: str
    created_at: datetime
    buttons: list[dict[str, Any]]
    delivery: str | None


@dataclass(frozen=True)
class LeadDetail:
    lead: LeadSummary
    bot_paused: bool
    messages: list[ThreadMessage]


def _summary(lead: Lead, patient_name: str | None, last_text: str | None) -> LeadSummary:
    return LeadSummary(
        id=lead.id,
        channel=lead.channel,
        status=lead.status,
        created_at=lead.created_at,
        updated_at=lead.updated_at,
        contact_name=lead.contact_name,
        contact_phone=lead.contact_phone,
        patient_id=lead.patient_id,
        patient_name=patient_name,
        branch_id=lead.branch_id,
        examination_id=lead.examination_id,
        doctor_id=lead.doctor_id,
        requested_start=lead.requested_start,
        hold_id=lead.hold_id,
        last_text=(last_text or lead.requested_text or "")[:200],
    )


async def inbox(
    db: Db,
    *,
    actor: Actor,
    status: str | None = None,
    channel: str | None = None,
    branch_id: int | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[LeadSummary]:
    """Leads newest first; branch staff see their branch's leads and the ones not yet tied to a branch."""
    only = actor.branch_id if actor.kind == "staff" and actor.branch_id is not None else None
    rows = await queries.list_leads(
        db,
        status=status,
        channel=channel,
        branch_id=branch_id,
        only_branch=only,
        search=search,
        limit=limit,
        offset=offset,
    )
    return [_summary(row[0], row.patient_name, row.last_text) for row in rows]


async def detail(db: Db, lead_id: int, *, actor: Actor, limit: int = 200) -> LeadDetail:
    lead = await queries.get_lead(db, lead_id)
    if lead is None or (lead.branch_id is not None and not actor.can_see_branch(lead.branch_id)):
        raise NotFound("not_found", f"There is no lead {lead_id}.")
    rows = await queries.conversation_messages(
        db, patient_id=lead.patient_id, conversation_id=lead.conversation_id, limit=limit
    )
    messages = [
        ThreadMessage(
            id=m.id,
            channel=channel,
            direction=m.direction,
            author=m.author,
            text=m.text,
            created_at=m.created_at,
            buttons=list(m.payload.get("buttons", [])) if m.direction == "out" else [],
            delivery=None,
        )
        for m, channel, _name in rows
    ]
    paused = False
    if lead.conversation_id is not None:
        from booking_core.db.tables import Conversation

        conversation = await db.get(Conversation, lead.conversation_id)
        paused = bool(conversation and conversation.bot_paused)
    return LeadDetail(lead=_summary(lead, None, None), bot_paused=paused, messages=messages)
