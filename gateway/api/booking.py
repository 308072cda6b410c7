"""Availability, its explanation, booking a visit and holding a slot."""

from __future__ import annotations

import logging
from datetime import datetime

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from booking_core.db.engine import Db
from booking_core.services import availability, booking, visit_messages
from gateway.api import api
from gateway.api.common import caller, check_branch, transaction
from gateway.api.fields import Id
from gateway.keys import SETTINGS

log = logging.getLogger(__name__)

STAFF = ("owner", "admin", "staff")


class AvailabilityQuery(BaseModel):
    branch_id: Id
    examination_id: Id
    doctor_id: Id | None = None
    start: AwareDatetime = Field(alias="from", description="Start of the period (ISO 8601 with offset)")
    end: AwareDatetime = Field(alias="to", description="End of the period (ISO 8601 with offset)")
    limit: int | None = Field(default=None, ge=1, le=500)


class SlotOut(BaseModel):
    start: datetime
    end: datetime
    doctor_id: int
    doctor_name: str
    room_id: int


class AvailabilityOut(BaseModel):
    branch_id: int
    examination_id: int
    timezone: str
    duration_min: int
    slots: list[SlotOut]


class ExplainQuery(BaseModel):
    branch_id: Id
    examination_id: Id
    doctor_id: Id | None = None
    at: AwareDatetime


class ReasonOut(BaseModel):
    code: str
    message: str
    doctor_id: int | None = None
    room_id: int | None = None


class ExplainOut(BaseModel):
    at: datetime
    available: bool
    reasons: list[ReasonOut]


class BookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    branch_id: Id
    patient_id: Id
    examination_ids: list[Id] = Field(min_length=1, max_length=10)
    start: AwareDatetime
    doctor_id: Id | None = None
    room_id: Id | None = None


class SessionOut(BaseModel):
    id: int
    booking_code: str
    branch_id: int
    patient_id: int
    doctor_id: int
    room_id: int
    starts_at: datetime
    ends_at: datetime
    status: str


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    branch_id: Id
    examination_id: Id
    start: AwareDatetime
    doctor_id: Id | None = None
    patient_id: Id | None = None
    minutes: int | None = Field(default=None, ge=1, le=60)


class HoldOut(BaseModel):
    id: int
    branch_id: int
    doctor_id: int
    room_id: int
    examination_id: int
    starts_at: datetime
    ends_at: datetime
    expires_at: datetime
    status: str


class ConvertHoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: Id


def _session_out(row: object) -> SessionOut:
    return SessionOut.model_validate(row, from_attributes=True)


@api.route(
    "GET",
    "/availability",
    summary="Free slots for an examination at a branch",
    tag="availability",
    query=AvailabilityQuery,
    response=AvailabilityOut,
    errors=(404,),
)
async def get_availability(request: web.Request, query: AvailabilityQuery) -> AvailabilityOut:
    check_branch(caller(request), query.branch_id)
    async with transaction(request) as db:
        ctx, slots = await availability.find_slots(
            db,
            branch_id=query.branch_id,
            examination_id=query.examination_id,
            doctor_id=query.doctor_id,
            start=query.start,
            end=query.end,
            limit=query.limit,
        )
    return AvailabilityOut(
        branch_id=ctx.branch.id,
        examination_id=ctx.examination.id,
        timezone=ctx.branch.tz,
        duration_min=ctx.query.examination.duration_min,
        slots=[
            SlotOut(
                start=s.start,
                end=s.end,
                doctor_id=s.doctor_id,
                doctor_name=ctx.doctor_names.get(s.doctor_id, ""),
                room_id=s.room_id,
            )
            for s in slots
        ],
    )


@api.route(
    "GET",
    "/availability/explain",
    summary="Why a time is (not) bookable, layer by layer",
    tag="availability",
    query=ExplainQuery,
    response=ExplainOut,
    errors=(404,),
)
async def explain_availability(request: web.Request, query: ExplainQuery) -> ExplainOut:
    check_branch(caller(request), query.branch_id)
    async with transaction(request) as db:
        _, reasons = await availability.explain_time(
            db, branch_id=query.branch_id, examination_id=query.examination_id, at=query.at, doctor_id=query.doctor_id
        )
    return ExplainOut(
        at=query.at,
        available=any(r.code == "available" for r in reasons),
        reasons=[ReasonOut(code=r.code, message=r.message, doctor_id=r.doctor_id, room_id=r.room_id) for r in reasons],
    )


@api.route(
    "POST",
    "/sessions",
    summary="Book a visit (refused by the database if the slot is taken)",
    tag="booking",
    body=BookRequest,
    response=SessionOut,
    roles=STAFF,
    status=201,
    errors=(404, 409),
)
async def book_session(request: web.Request, body: BookRequest) -> SessionOut:
    actor = caller(request)
    check_branch(actor, body.branch_id)

    async def attempt() -> SessionOut:
        async with transaction(request) as db:
            session = await booking.book(
                db,
                actor=actor,
                branch_id=body.branch_id,
                patient_id=body.patient_id,
                examination_ids=body.examination_ids,
                start=body.start,
                doctor_id=body.doctor_id,
                room_id=body.room_id,
            )
            out = _session_out(session)
            if out.status == "waiting":  # a visit in the past was recorded, not booked: no confirmation for it
                await plan_followups(request, db, out.id)
        return out

    return await booking.retrying(attempt)


@api.route(
    "POST",
    "/holds",
    summary="Hold a slot for a few minutes",
    tag="booking",
    body=HoldRequest,
    response=HoldOut,
    roles=STAFF,
    status=201,
    errors=(404, 409),
)
async def create_hold(request: web.Request, body: HoldRequest) -> HoldOut:
    actor = caller(request)
    check_branch(actor, body.branch_id)

    async def attempt() -> HoldOut:
        async with transaction(request) as db:
            row = await booking.hold(
                db,
                actor=actor,
                branch_id=body.branch_id,
                examination_id=body.examination_id,
                start=body.start,
                doctor_id=body.doctor_id,
                patient_id=body.patient_id,
                minutes=body.minutes,
            )
            return HoldOut.model_validate(row, from_attributes=True)

    return await booking.retrying(attempt)


@api.route(
    "DELETE",
    "/holds/{hold_id}",
    summary="Release a hold",
    tag="booking",
    response=HoldOut,
    roles=STAFF,
    errors=(404, 409),
)
async def release_hold(request: web.Request, hold_id: int) -> HoldOut:
    async with transaction(request) as db:
        row = await booking.release_hold(db, hold_id, actor=caller(request))
        return HoldOut.model_validate(row, from_attributes=True)


@api.route(
    "POST",
    "/holds/{hold_id}/convert",
    summary="Turn a hold into a session",
    tag="booking",
    body=ConvertHoldRequest,
    response=SessionOut,
    roles=STAFF,
    status=201,
    errors=(404, 409),
)
async def convert_hold(request: web.Request, hold_id: int, body: ConvertHoldRequest) -> SessionOut:
    async def attempt() -> SessionOut:
        async with transaction(request) as db:
            session = await booking.convert_hold(db, hold_id, actor=caller(request), patient_id=body.patient_id)
            out = _session_out(session)
            await plan_followups(request, db, out.id)
        return out

    return await booking.retrying(attempt)


async def plan_followups(request: web.Request, db: Db, session_id: int) -> list[int]:
    """In the booking's own transaction: the confirmation link for the patient's channel, an outbox row (once per
    session). Not a job: Redis being down or restarting empty loses nothing; :func:`transaction` hands the row to
    the workers after commit, and the sweep sends it if that fails."""
    settings = request.app[SETTINGS]
    return await visit_messages.send_confirmation(
        db,
        session_id,
        secret=settings.SECRET_KEY,
        base_url=settings.PUBLIC_BASE_URL,
        default_language=settings.DEFAULT_LANGUAGE,
    )


async def followups_after_booking(request: web.Request, session_id: int) -> None:
    """For a booking that committed already: :func:`plan_followups` in a transaction of its own."""
    async with transaction(request) as db:
        await plan_followups(request, db, session_id)
