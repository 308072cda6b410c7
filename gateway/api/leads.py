"""The lead inbox over the API: list (newest first, filters, search), one lead with its whole conversation, and
staff decisions on a lead: accept, reject (the patient is told on their channel) and convert in one click."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from redis.exceptions import RedisError

from booking_core.domain.actors import FRONT_DESK
from booking_core.domain.messages import Channel
from booking_core.services import lead_actions, leads
from gateway import jobs
from gateway.api import api
from gateway.api.booking import plan_followups
from gateway.api.common import caller, transaction
from gateway.api.fields import Id
from gateway.keys import SETTINGS

log = logging.getLogger(__name__)


class LeadsQuery(BaseModel):
    status: Literal["new", "accepted", "rejected", "converted"] | None = None
    channel: Channel | None = None
    branch_id: Id | None = None
    q: str | None = Field(default=None, max_length=100, description="search name, phone or text")
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=100_000)


class LeadOut(BaseModel):
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


class LeadsOut(BaseModel):
    leads: list[LeadOut]


class MessageOut(BaseModel):
    id: int
    channel: str
    direction: str
    author: str
    text: str
    created_at: datetime
    buttons: list[dict[str, Any]]


class LeadDetailOut(BaseModel):
    lead: LeadOut
    bot_paused: bool
    messages: list[MessageOut]


# Leads and conversations are the front desk's: a doctor's token gets the 403 the staff app's inbox pages give.
@api.route("GET", "/leads", summary="The lead inbox, newest first", tag="leads", query=LeadsQuery, response=LeadsOut,
           roles=FRONT_DESK)  # fmt: skip
async def list_leads(request: web.Request, query: LeadsQuery) -> LeadsOut:
    async with transaction(request) as db:
        found = await leads.inbox(
            db,
            actor=caller(request),
            status=query.status,
            channel=query.channel,
            branch_id=query.branch_id,
            search=query.q,
            limit=query.limit,
            offset=query.offset,
        )
    return LeadsOut(leads=[LeadOut.model_validate(lead, from_attributes=True) for lead in found])


@api.route(
    "GET",
    "/leads/{lead_id}",
    summary="One lead with the patient's whole conversation across channels",
    tag="leads",
    response=LeadDetailOut,
    roles=FRONT_DESK,
    errors=(404,),
)
async def get_lead(request: web.Request, lead_id: int) -> LeadDetailOut:
    async with transaction(request) as db:
        found = await leads.detail(db, lead_id, actor=caller(request))
    return LeadDetailOut.model_validate(found, from_attributes=True)


# --- accept / reject / convert ---


class LeadDecisionOut(BaseModel):
    id: int
    status: str
    changed: bool = Field(description="False when the lead already had this status (a repeat click): nothing sent")
    notified: bool = Field(description="A message to the patient was planned on their channel")
    reject_reason: str | None = None
    hold_released: bool = False


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] = Field(
        description="Told to the patient"
    )


class ConvertRequest(BaseModel):
    """Everything is optional: without a pick the lead's hold (or requested time) is booked."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime | None = None
    doctor_id: Id | None = None
    room_id: Id | None = None
    examination_ids: list[Id] | None = Field(default=None, min_length=1, max_length=10)
    branch_id: Id | None = None


class ConvertedSessionOut(BaseModel):
    id: int
    booking_code: str
    branch_id: int
    patient_id: int
    doctor_id: int
    doctor_name: str
    room_id: int
    room_name: str
    starts_at: datetime
    ends_at: datetime
    status: str


class ConversionOut(BaseModel):
    lead_id: int
    patient_id: int
    created: bool = Field(description="False when the lead had been converted already: the same session")
    session: ConvertedSessionOut


async def _after_commit(what: str, enqueue: Awaitable[None]) -> None:
    """Enqueue follow-up work once the transaction committed. Redis being down must not turn a committed decision
    into an error: the database holds the truth, and the worker's sweep re-enqueues what is due."""
    try:
        await enqueue
    except (RedisError, OSError):
        log.warning("could not enqueue %s now; the sweep will pick it up", what, exc_info=True)


def _decision_out(decision: lead_actions.Decision) -> LeadDecisionOut:
    return LeadDecisionOut(
        id=decision.lead_id,
        status=decision.status,
        changed=decision.changed,
        notified=decision.notified,
        reject_reason=decision.reject_reason,
        hold_released=decision.hold_released,
    )


@api.route(
    "POST",
    "/leads/{lead_id}/accept",
    summary="Accept a lead; the patient is told on their channel",
    tag="leads",
    response=LeadDecisionOut,
    roles=FRONT_DESK,
    errors=(404, 409),
)
async def accept_lead(request: web.Request, lead_id: int) -> LeadDecisionOut:
    async with transaction(request) as db:
        decision = await lead_actions.accept(
            db, lead_id, actor=caller(request), default_language=request.app[SETTINGS].DEFAULT_LANGUAGE
        )
    if decision.outbox_id is not None:
        await _after_commit(f"outbox {decision.outbox_id}", jobs.deliver(request.app, [decision.outbox_id]))
    return _decision_out(decision)


@api.route(
    "POST",
    "/leads/{lead_id}/reject",
    summary="Reject a lead with a reason; its held slot is given back and the patient is told",
    tag="leads",
    body=RejectRequest,
    response=LeadDecisionOut,
    roles=FRONT_DESK,
    errors=(404, 409),
)
async def reject_lead(request: web.Request, lead_id: int, body: RejectRequest) -> LeadDecisionOut:
    async with transaction(request) as db:
        decision = await lead_actions.reject(
            db,
            lead_id,
            actor=caller(request),
            reason=body.reason,
            default_language=request.app[SETTINGS].DEFAULT_LANGUAGE,
        )
    if decision.outbox_id is not None:
        await _after_commit(f"outbox {decision.outbox_id}", jobs.deliver(request.app, [decision.outbox_id]))
    return _decision_out(decision)


@api.route(
    "POST",
    "/leads/{lead_id}/convert",
    summary="Convert a lead into a session in one step (a repeat returns the same session)",
    tag="leads",
    body=ConvertRequest,
    response=ConversionOut,
    roles=FRONT_DESK,
    errors=(404, 409),
)
async def convert_lead(request: web.Request, lead_id: int, body: ConvertRequest) -> ConversionOut:
    async with transaction(request) as db:
        conversion = await lead_actions.convert(
            db,
            lead_id,
            actor=caller(request),
            start=body.start,
            doctor_id=body.doctor_id,
            room_id=body.room_id,
            examination_ids=body.examination_ids,
            branch_id=body.branch_id,
        )
        if conversion.created:  # the confirmation link, in the same transaction (delivered after commit)
            await plan_followups(request, db, conversion.session.id)
    return ConversionOut(
        lead_id=conversion.lead_id,
        patient_id=conversion.patient_id,
        created=conversion.created,
        session=ConvertedSessionOut.model_validate(conversion.session, from_attributes=True),
    )
