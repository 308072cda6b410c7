"""The waitlist: staff put a patient on it for a day and examination, list it, and take entries off it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from booking_core.services import waitlist
from gateway.api import api
from gateway.api.common import caller, check_branch, transaction
from gateway.api.fields import Id

FRONT_DESK = ("owner", "admin", "staff")
EVERYONE = ("owner", "admin", "staff", "doctor")


class JoinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: Id
    branch_id: Id
    examination_id: Id
    day: date = Field(description="The branch's local day the patient wants (today or later)")
    identity_id: Id | None = Field(
        default=None, description="The patient's chat to send offers to; default: latest used"
    )


class WaitlistQuery(BaseModel):
    branch_id: Id
    day: date | None = None
    status: Literal["waiting", "offered", "booked", "cancelled"] | None = None


class EntryOut(BaseModel):
    id: int
    patient_id: int
    identity_id: int | None
    branch_id: int
    examination_id: int
    day: date
    status: str
    created_at: datetime


class EntriesOut(BaseModel):
    entries: list[EntryOut]


def _out(entry: object) -> EntryOut:
    return EntryOut.model_validate(entry, from_attributes=True)


@api.route(
    "POST",
    "/waitlist",
    summary="Put a patient on the waitlist for a day and examination (offered a slot when one frees)",
    tag="waitlist",
    body=JoinRequest,
    response=EntryOut,
    roles=FRONT_DESK,
    status=201,
    errors=(404,),
)
async def join_waitlist(request: web.Request, body: JoinRequest) -> EntryOut:
    actor = caller(request)
    check_branch(actor, body.branch_id)
    async with transaction(request) as db:
        entry = await waitlist.join(
            db,
            actor=actor,
            patient_id=body.patient_id,
            branch_id=body.branch_id,
            examination_id=body.examination_id,
            day=body.day,
            identity_id=body.identity_id,
        )
    return _out(entry)


@api.route(
    "GET",
    "/waitlist",
    summary="A branch's waitlist, by day then first come",
    tag="waitlist",
    query=WaitlistQuery,
    response=EntriesOut,
    roles=EVERYONE,
    errors=(404,),
)
async def list_waitlist(request: web.Request, query: WaitlistQuery) -> EntriesOut:
    actor = caller(request)
    check_branch(actor, query.branch_id)
    async with transaction(request) as db:
        found = await waitlist.entries(db, actor=actor, branch_id=query.branch_id, day=query.day, status=query.status)
    return EntriesOut(entries=[_out(entry) for entry in found])


@api.route(
    "DELETE",
    "/waitlist/{entry_id}",
    summary="Take an entry off the waitlist",
    tag="waitlist",
    response=EntryOut,
    roles=FRONT_DESK,
    errors=(404,),
)
async def leave_waitlist(request: web.Request, entry_id: int) -> EntryOut:
    async with transaction(request) as db:
        entry = await waitlist.leave(db, entry_id, actor=caller(request))
    return _out(entry)
