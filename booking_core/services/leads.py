"""The lead inbox: every channel's booking requests, newest first, with the whole conversation behind each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import lead_actions as action_queries
from booking_core.db.queries import leads as queries
from booking_core.db.tables import AuditEntry, Conversation, Lead, Patient, SlotHold
from booking_core.domain.actors import Actor
from booking_core.services.errors import NotFound
from booking_core.services.lead_actions import ConvertedSession, converted_session
from booking_core.services.staff_replies import reply_target

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


def _only_branch(actor: Actor) -> int | None:
    """The one branch whose leads (and those not tied to a branch yet) a branch's staff see; None: every lead."""
    return actor.branch_id if actor.kind == "staff" and actor.branch_id is not None else None


async def _visible_lead(db: Db, lead_id: int, actor: Actor) -> Lead:
    """The lead, or NotFound when there is none or it is another branch's."""
    lead = await queries.get_lead(db, lead_id)
    if lead is None or (lead.branch_id is not None and not actor.can_see_branch(lead.branch_id)):
        raise NotFound("not_found", f"There is no lead {lead_id}.")
    return lead


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
    rows = await queries.list_leads(
        db,
        status=status,
        channel=channel,
        branch_id=branch_id,
        only_branch=_only_branch(actor),
        search=search,
        limit=limit,
        offset=offset,
    )
    return [_summary(row[0], row.patient_name, row.last_text) for row in rows]


async def detail(db: Db, lead_id: int, *, actor: Actor, limit: int = 200) -> LeadDetail:
    lead = await _visible_lead(db, lead_id, actor)
    rows = await queries.thread(db, patient_id=lead.patient_id, conversation_id=lead.conversation_id, limit=limit)
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
        for m, channel, *_ in rows
    ]
    paused = False
    if lead.conversation_id is not None:
        conversation = await db.get(Conversation, lead.conversation_id)
        paused = bool(conversation and conversation.bot_paused)
    return LeadDetail(lead=_summary(lead, None, None), bot_paused=paused, messages=messages)


# --- the staff web inbox and lead page -----------------------------------------------------------------------

#: How the lead page words each audit action of a lead and its chat (the history list).
HISTORY_LABELS = {
    "lead.created": "Request received",
    "lead.requested": "Slot requested in chat",
    "lead.accepted": "Accepted",
    "lead.rejected": "Rejected",
    "lead.converted": "Booked as a session",
    "lead.replied": "Staff replied",
    "conversation.paused": "Bot paused",
    "conversation.handoff": "Patient asked for staff; bot paused",
    "conversation.resumed": "Handed back to the bot",
}


@dataclass(frozen=True)
class InboxRow:
    """One line of the staff inbox: the lead plus what the list shows next to it."""

    lead: LeadSummary
    examination_name: str | None
    doctor_name: str | None
    branch_name: str | None
    branch_tz: str | None
    last_author: str | None
    activity: datetime
    failed_delivery: bool  # a message to this chat could not be delivered
    bot_paused: bool


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    has_more: bool
    limit: int
    offset: int


async def inbox_page(
    db: Db,
    *,
    actor: Actor,
    status: str | None = None,
    channel: str | None = None,
    branch_id: int | None = None,
    search: str | None = None,
    limit: int = 25,
    offset: int = 0,
) -> InboxPage:
    """New leads first, then by last activity; branch staff see their branch's leads and those not tied to one.

    ``branch_id`` of a branch the actor may not see gives an empty page, never another branch's leads."""
    if branch_id is not None and not actor.can_see_branch(branch_id):
        return InboxPage([], False, limit, offset)
    rows = await queries.inbox_rows(
        db,
        status=status if status in STATUSES else None,
        channel=channel,
        branch_id=branch_id,
        only_branch=_only_branch(actor),
        search=(search or "").strip()[:100] or None,
        limit=limit + 1,
        offset=offset,
    )
    found = [
        InboxRow(
            lead=_summary(row[0], row.patient_name, row.last_text),
            examination_name=row.examination_name,
            doctor_name=row.doctor_name,
            branch_name=row.branch_name,
            branch_tz=row.branch_tz,
            last_author=row.last_author,
            activity=row.activity,
            failed_delivery=bool(row.failed),
            bot_paused=bool(row.bot_paused),
        )
        for row in rows[:limit]
    ]
    return InboxPage(found, len(rows) > limit, limit, offset)


@dataclass(frozen=True)
class ThreadEntry:
    """One message of the patient's conversation. Outbound ones carry their delivery: ``status`` is the outbox
    row's (pending, sending, sent, failed), ``delivery_state`` the provider's (delivered, read, ...)."""

    id: int
    channel: str
    direction: str
    author: str  # patient | bot | staff
    author_name: str
    text: str
    created_at: datetime
    buttons: list[str]
    outbox_id: int | None
    status: str | None
    delivery_state: str | None
    error: str | None
    #: A send of it may have reached the patient without the provider saying so, and it was sent once more: the
    #: patient may have it twice.
    maybe_twice: bool = False


@dataclass(frozen=True)
class HoldInfo:
    id: int
    branch_id: int
    examination_id: int
    doctor_id: int
    doctor_name: str | None
    starts_at: datetime
    ends_at: datetime
    expires_at: datetime
    status: str  # active, released, converted, expired
    live: bool  # still keeping the slot now


@dataclass(frozen=True)
class ChannelInfo:
    channel: str
    display_name: str
    address: str  # chat id, WhatsApp number, web-chat visitor


@dataclass(frozen=True)
class PatientInfo:
    id: int
    name: str
    phone: str | None
    channels: list[ChannelInfo]


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    action: str
    label: str
    actor_name: str
    actor_kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class LeadPage:
    """Everything the staff lead page shows: request, hold, session, patient, the whole conversation, history."""

    lead: LeadSummary
    reject_reason: str | None
    examination_name: str | None
    doctor_name: str | None
    branch_name: str | None
    tz: str  # the branch's time zone (or the clinic's first branch's) for showing times
    hold: HoldInfo | None
    session: ConvertedSession | None
    patient: PatientInfo | None
    thread: list[ThreadEntry]
    reply_channel: str | None  # where a staff reply goes; None: nobody to write to
    reply_to: str  # the chat's display name
    bot_paused: bool
    history: list[HistoryEntry]


async def lead_page(db: Db, lead_id: int, *, actor: Actor, now: datetime | None = None, limit: int = 300) -> LeadPage:
    """The lead with the patient's whole conversation across channels; 404 for another branch's lead."""
    now = now or datetime.now(UTC)
    lead = await _visible_lead(db, lead_id, actor)
    patient = await action_queries.living_patient(db, lead.patient_id)
    hold_row = await action_queries.hold(db, lead.hold_id) if lead.hold_id is not None else None
    branch, examination, doctor = await action_queries.names(
        db, branch_id=lead.branch_id, examination_id=lead.examination_id, doctor_id=lead.doctor_id
    )
    if branch is None and hold_row is not None:
        branch = await queries.branch(db, hold_row.branch_id)
    tz = branch.tz if branch is not None else (await queries.first_branch_tz(db) or "UTC")
    hold = await _hold_info(db, hold_row, now) if hold_row is not None else None
    session = await action_queries.session_of_lead(db, lead.id)
    converted = await converted_session(db, session) if session is not None else None
    target = await reply_target(db, lead)
    conversation_ids = [c for c in (lead.conversation_id, target.conversation_id if target else None) if c]
    audit_rows = await queries.history(db, lead_id=lead.id, conversation_ids=sorted(set(conversation_ids)))
    return LeadPage(
        lead=_summary(lead, patient.name if patient else None, None),
        reject_reason=lead.reject_reason,
        examination_name=examination,
        doctor_name=doctor,
        branch_name=branch.name if branch is not None else None,
        tz=tz,
        hold=hold,
        session=converted,
        patient=await _patient_info(db, patient) if patient is not None else None,
        thread=await _thread(db, lead, patient, audit_rows, limit=limit),
        reply_channel=target.channel if target else None,
        reply_to=target.display_name if target else "",
        bot_paused=bool(target and target.bot_paused),
        history=[
            HistoryEntry(
                at=row.at,
                action=row.action,
                label=HISTORY_LABELS.get(row.action, row.action),
                actor_name=row.actor_name,
                actor_kind=row.actor_kind,
                data=dict(row.data or {}),
            )
            for row in audit_rows
        ],
    )


async def _hold_info(db: Db, row: SlotHold, now: datetime) -> HoldInfo:
    _, _, held_by = await action_queries.names(db, branch_id=None, examination_id=None, doctor_id=row.doctor_id)
    return HoldInfo(
        id=row.id,
        branch_id=row.branch_id,
        examination_id=row.examination_id,
        doctor_id=row.doctor_id,
        doctor_name=held_by,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        expires_at=row.expires_at,
        status=row.status,
        live=row.status == "active" and row.expires_at > now,
    )


async def _thread(
    db: Db, lead: Lead, patient: Patient | None, audit_rows: list[AuditEntry], *, limit: int
) -> list[ThreadEntry]:
    """The patient's messages on every channel (or the lead's conversation's, without a patient), staff replies
    named after who sent them (from the audit rows)."""
    repliers = {
        int(row.data["outbox_id"]): row.actor_name
        for row in audit_rows
        if row.action == "lead.replied" and isinstance(row.data.get("outbox_id"), int)
    }
    patient_name = patient.name if patient is not None and patient.name else lead.contact_name
    return [
        ThreadEntry(
            id=m.id,
            channel=channel,
            direction=m.direction,
            author=m.author,
            author_name=_author_name(m.author, display_name or patient_name, repliers.get(m.outbox_id or 0)),
            text=m.text,
            created_at=m.created_at,
            buttons=[str(b.get("label", "")) for b in m.payload.get("buttons", []) if isinstance(b, dict)]
            if m.direction == "out"
            else [],
            outbox_id=m.outbox_id,
            status=outbox_status,
            delivery_state=delivery_state,
            error=last_error if outbox_status == "failed" else None,
            maybe_twice=outbox_status == "sent" and uncertain_at is not None,
        )
        for m, channel, display_name, outbox_status, delivery_state, last_error, uncertain_at in await queries.thread(
            db, patient_id=patient.id if patient else None, conversation_id=lead.conversation_id, limit=limit
        )
    ]


async def _patient_info(db: Db, patient: Patient) -> PatientInfo:
    return PatientInfo(
        id=patient.id,
        name=patient.name,
        phone=patient.phone_e164,
        channels=[
            ChannelInfo(i.channel, i.display_name, i.external_id) for i in await queries.identities_of(db, patient.id)
        ],
    )


def _author_name(author: str, patient_name: str, staff_name: str | None) -> str:
    if author == "staff":
        return staff_name or "Staff"
    if author == "bot":
        return "Bot"
    return patient_name or "Patient"
