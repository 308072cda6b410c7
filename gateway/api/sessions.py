"""A session's detail and lifecycle: start, complete, cancel with a reason, permanent delete (owner)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from booking_core.domain.money import money_str
from booking_core.services import lifecycle, session_deletion
from gateway.api import api
from gateway.api.common import caller, follow_up, patient_facing, transaction
from gateway.api.registry import read_optional_json_body

EVERYONE = ("owner", "admin", "staff", "doctor")
FRONT_DESK = ("owner", "admin", "staff")
MANAGERS = ("owner", "admin")


class Ref(BaseModel):
    id: int
    name: str


class PatientRef(Ref):
    phone: str | None


class SessionLineOut(BaseModel):
    id: int
    kind: str
    examination_id: int | None
    name: str
    unit_price: str = Field(description='In the branch currency\'s minor units, e.g. "150000" (IDR)')
    quantity: int
    taxable: bool


class InvoiceSummary(BaseModel):
    id: int
    status: str
    currency: str
    gross: str
    package_covered: str
    insurer_pays: str
    tax: str
    consumables: str
    loyalty_discount: str
    patient_pays: str
    loyalty_points_used: int
    finalised_at: datetime | None


class SessionDetailOut(BaseModel):
    id: int
    booking_code: str
    status: str
    accepted: bool
    branch: Ref
    patient: PatientRef
    doctor: Ref
    room: Ref
    starts_at: datetime
    ends_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    cancel_note: str | None
    currency: str
    lines: list[SessionLineOut]
    invoice: InvoiceSummary | None
    doctor_commission: str | None = Field(description="Shown to owners and admins only")
    manager_commission: str | None = Field(description="Shown to owners and admins only")


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason_code: str = Field(min_length=1, max_length=40, description="One of GET /settings/cancel-reasons")
    note: str | None = Field(default=None, max_length=2000, description="Free text; required for some reasons")


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backdated: bool = Field(
        default=False,
        description="Enter a past visit after the fact (staff): allowed without acceptance, recorded at its booked "
        "time, audited with the reason",
    )
    reason: str | None = Field(default=None, max_length=500, description="Why it is back-dated (required with it)")


class DeleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: str | None = Field(default=None, max_length=40, description='Exactly "DELETE <booking_code>"')


class DeletedOut(BaseModel):
    deleted: bool = True
    session_id: int
    booking_code: str
    invoice_id: int | None
    snapshot: dict[str, Any]


class CancelReasonsOut(BaseModel):
    reasons: list[str]
    requires_note: list[str]


def _detail_out(found: lifecycle.SessionDetail, *, show_commission: bool) -> SessionDetailOut:
    s, cur = found.session, found.branch.currency

    def money(value: Any) -> str | None:
        return None if value is None else money_str(value, cur)

    invoice = found.invoice
    return SessionDetailOut(
        id=s.id,
        booking_code=s.booking_code,
        status=s.status,
        accepted=s.accepted,
        branch=Ref(id=found.branch.id, name=found.branch.name),
        patient=PatientRef(id=found.patient.id, name=found.patient.name, phone=found.patient.phone_e164),
        doctor=Ref(id=found.doctor.id, name=found.doctor.name),
        room=Ref(id=found.room.id, name=found.room.name),
        starts_at=s.starts_at,
        ends_at=s.ends_at,
        started_at=s.started_at,
        ended_at=s.ended_at,
        cancelled_at=s.cancelled_at,
        cancel_reason=s.cancel_reason,
        cancel_note=s.cancel_note,
        currency=cur,
        lines=[
            SessionLineOut(
                id=line.id,
                kind=line.kind,
                examination_id=line.examination_id,
                name=line.name,
                unit_price=money_str(line.unit_price, cur),
                quantity=line.quantity,
                taxable=line.taxable,
            )
            for line in found.lines
        ],
        invoice=None
        if invoice is None
        else InvoiceSummary(
            id=invoice.id,
            status=invoice.status,
            currency=invoice.currency,
            gross=money_str(invoice.gross, invoice.currency),
            package_covered=money_str(invoice.package_covered, invoice.currency),
            insurer_pays=money_str(invoice.insurer_pays, invoice.currency),
            tax=money_str(invoice.tax, invoice.currency),
            consumables=money_str(invoice.consumables, invoice.currency),
            loyalty_discount=money_str(invoice.loyalty_discount, invoice.currency),
            patient_pays=money_str(invoice.patient_pays, invoice.currency),
            loyalty_points_used=invoice.loyalty_points_used,
            finalised_at=invoice.finalised_at,
        ),
        doctor_commission=money(s.doctor_commission) if show_commission else None,
        manager_commission=money(s.manager_commission) if show_commission else None,
    )


async def _respond(request: web.Request, session_id: int) -> SessionDetailOut:
    actor = caller(request)
    async with transaction(request) as db:
        found = await lifecycle.detail(db, session_id, actor=actor)
        return _detail_out(found, show_commission=actor.role in MANAGERS)


@api.route("GET", "/sessions/{session_id}", summary="A session: patient, doctor, room, times, lines, invoice",
           tag="sessions", response=SessionDetailOut, roles=EVERYONE, errors=(404,))  # fmt: skip
async def get_session(request: web.Request, session_id: int) -> SessionDetailOut:
    return await _respond(request, session_id)


async def _step_options(request: web.Request) -> StepRequest:
    """The optional JSON body of a start or complete (``{"backdated": true, "reason": "..."}``); none is the usual."""
    return await read_optional_json_body(request, StepRequest) or StepRequest()


# Start and complete read their optional body themselves (shape: StepRequest) so a bare POST keeps working.
@api.route("POST", "/sessions/{session_id}/start",
           summary="Call the patient in: waiting → open (accepted visits, from their day; or back-dated with a reason)",
           tag="sessions", response=SessionDetailOut, roles=EVERYONE, errors=(404, 409, 422))  # fmt: skip
async def start_session(request: web.Request, session_id: int) -> SessionDetailOut:
    options = await _step_options(request)
    async with transaction(request) as db:
        started = await lifecycle.start(
            db, session_id, actor=caller(request), backdated=options.backdated, reason=options.reason
        )
        await follow_up(request, db, started)
    return await _respond(request, session_id)


@api.route("POST", "/sessions/{session_id}/complete",
           summary="Finish the visit: open → completed (frees the time, commissions, final invoice)",
           tag="sessions", response=SessionDetailOut, roles=EVERYONE, errors=(404, 409, 422))  # fmt: skip
async def complete_session(request: web.Request, session_id: int) -> SessionDetailOut:
    options = await _step_options(request)
    async with transaction(request) as db:
        completed = await lifecycle.complete(
            db, session_id, actor=caller(request), backdated=options.backdated, reason=options.reason
        )
        await follow_up(request, db, completed)
    return await _respond(request, session_id)


@api.route("POST", "/sessions/{session_id}/cancel", summary="Cancel with a reason (frees the time at once)",
           tag="sessions", body=CancelRequest, response=SessionDetailOut, roles=FRONT_DESK,
           errors=(404, 409))  # fmt: skip
async def cancel_session(request: web.Request, session_id: int, body: CancelRequest) -> SessionDetailOut:
    async with transaction(request) as db:
        cancelled = await lifecycle.cancel(
            db, session_id, actor=caller(request), reason_code=body.reason_code, note=body.note,
            **patient_facing(request),
        )  # fmt: skip
        await follow_up(request, db, cancelled)
    return await _respond(request, session_id)


async def _confirmation(request: web.Request) -> str | None:
    """The optional JSON body of a delete: no body at all is answered like a wrong phrase (422 with the phrase)."""
    body = await read_optional_json_body(request, DeleteRequest)
    return None if body is None else body.confirm


# The body is read by the handler (not declared on the route) so that a DELETE without any body still gets the
# 422 telling the owner which phrase to type; its shape is DeleteRequest.
@api.route("DELETE", "/sessions/{session_id}",
           summary='Delete a session for good (owner; body {"confirm": "DELETE <code>"}); its invoice is archived',
           tag="sessions", response=DeletedOut, roles=("owner",), errors=(400, 404, 422))  # fmt: skip
async def delete_session(request: web.Request, session_id: int) -> DeletedOut:
    confirm = await _confirmation(request)
    async with transaction(request) as db:
        deleted = await session_deletion.delete_permanently(db, session_id, actor=caller(request), confirm=confirm)
    return DeletedOut(
        session_id=deleted.session_id,
        booking_code=deleted.booking_code,
        invoice_id=deleted.invoice_id,
        snapshot=deleted.snapshot,
    )


@api.route("GET", "/settings/cancel-reasons", summary="The clinic's cancel reasons (and which need a note)",
           tag="sessions", response=CancelReasonsOut, roles=EVERYONE)  # fmt: skip
async def get_cancel_reasons(request: web.Request) -> CancelReasonsOut:
    async with transaction(request) as db:
        reasons = await lifecycle.cancel_reasons(db)
    return CancelReasonsOut(reasons=reasons.reasons, requires_note=reasons.requires_note)
