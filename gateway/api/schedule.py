"""Doctors' schedule applications: apply for a shift, staff accept or reject, the inbox's "Doctor" view."""

from __future__ import annotations

from datetime import date, datetime

from aiohttp import web
from pydantic import BaseModel, Field

from booking_core.services import schedule as service
from gateway.api import api
from gateway.api.catalog import Body
from gateway.api.common import caller, transaction
from gateway.api.fields import Id, WallTime

TAG = "schedule"
DECIDERS = ("owner", "admin", "staff")


class ApplicationIn(Body):
    doctor_id: Id | None = Field(None, description="Required for staff filing on a doctor's behalf; doctors omit it")
    branch_id: Id
    day: date
    starts: WallTime = Field(description="Branch wall time, e.g. 09:00")
    ends: WallTime
    note: str = Field("", max_length=service.MAX_NOTE)


class RejectIn(Body):
    reason: str = Field(min_length=1, max_length=service.MAX_REASON)


class ApplicationOut(BaseModel):
    id: int
    doctor_id: int
    doctor_name: str
    branch_id: int
    branch_name: str
    day: date
    starts: WallTime
    ends: WallTime
    status: str
    note: str
    decision_reason: str | None
    decided_by: int | None
    decided_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, view: service.ApplicationView) -> ApplicationOut:
        return cls(**vars(view))


class ApplicationList(BaseModel):
    items: list[ApplicationOut]


class ApplicationQuery(BaseModel):
    status: service.ApplicationStatus | None = None
    branch_id: Id | None = None
    doctor_id: Id | None = None
    day_from: date | None = Field(None, description="Only shifts on or after this day")
    limit: int = Field(200, ge=1, le=500)


@api.route("POST", "/schedule-applications", summary="Apply for an attendance shift", tag=TAG,
           body=ApplicationIn, response=ApplicationOut, status=201, errors=(404, 409))  # fmt: skip
async def apply_for_shift(request: web.Request, body: ApplicationIn) -> ApplicationOut:
    async with transaction(request) as db:
        view = await service.apply(
            db,
            actor=caller(request),
            doctor_id=body.doctor_id,
            branch_id=body.branch_id,
            day=body.day,
            starts=body.starts,
            ends=body.ends,
            note=body.note,
        )
    return ApplicationOut.of(view)


@api.route("GET", "/schedule-applications", summary="Schedule applications (the inbox's Doctor view)", tag=TAG,
           query=ApplicationQuery, response=ApplicationList, errors=(404,))  # fmt: skip
async def list_schedule_applications(request: web.Request, query: ApplicationQuery) -> ApplicationList:
    async with transaction(request) as db:
        views = await service.list_applications(
            db,
            actor=caller(request),
            status=query.status,
            branch_id=query.branch_id,
            doctor_id=query.doctor_id,
            day_from=query.day_from,
            limit=query.limit,
        )
    return ApplicationList(items=[ApplicationOut.of(v) for v in views])


@api.route("GET", "/schedule-applications/{application_id}", summary="One schedule application", tag=TAG,
           response=ApplicationOut, errors=(404,))  # fmt: skip
async def get_schedule_application(request: web.Request, application_id: int) -> ApplicationOut:
    async with transaction(request) as db:
        view = await service.get_application(db, application_id, actor=caller(request))
    return ApplicationOut.of(view)


@api.route("POST", "/schedule-applications/{application_id}/accept", summary="Accept: the doctor attends that shift",
           tag=TAG, response=ApplicationOut, roles=DECIDERS, errors=(404, 409))  # fmt: skip
async def accept_schedule_application(request: web.Request, application_id: int) -> ApplicationOut:
    async with transaction(request) as db:
        view = await service.accept(db, application_id, actor=caller(request))
    return ApplicationOut.of(view)


@api.route("POST", "/schedule-applications/{application_id}/reject", summary="Reject, with a reason for the doctor",
           tag=TAG, body=RejectIn, response=ApplicationOut, roles=DECIDERS, errors=(404, 409))  # fmt: skip
async def reject_schedule_application(request: web.Request, application_id: int, body: RejectIn) -> ApplicationOut:
    async with transaction(request) as db:
        view = await service.reject(db, application_id, reason=body.reason, actor=caller(request))
    return ApplicationOut.of(view)
