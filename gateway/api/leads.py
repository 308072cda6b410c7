"""The lead inbox over the API: list (newest first, filters, search) and one lead with its whole conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from booking_core.services import leads
from gateway.api import api
from gateway.api.common import caller, transaction


class LeadsQuery(BaseModel):
    status: Literal["new", "accepted", "rejected", "converted"] | None = None
    channel: Literal["telegram", "whatsapp", "webchat", "webform"] | None = None
    branch_id: int | None = Field(default=None, gt=0)
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


@api.route("GET", "/leads", summary="The lead inbox, newest first", tag="leads", query=LeadsQuery, response=LeadsOut)
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
    errors=(404,),
)
async def get_lead(request: web.Request, lead_id: int) -> LeadDetailOut:
    async with transaction(request) as db:
        found = await leads.detail(db, lead_id, actor=caller(request))
    return LeadDetailOut.model_validate(found, from_attributes=True)
