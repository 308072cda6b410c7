"""The invoice built as you book: preview, a session's lines and invoice, loyalty redemption, the archive."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from booking_core.domain.invoice import Invoice
from booking_core.services import invoice_inputs, invoicing, session_lines
from gateway.api import api
from gateway.api.common import caller, check_branch, transaction
from gateway.api.fields import Id

EVERYONE = ("owner", "admin", "staff", "doctor")
FRONT_DESK = ("owner", "admin", "staff")
MANAGERS = ("owner", "admin")

MONEY = 'Decimal as a string in the currency\'s minor units ("150000" IDR, "12.50" USD)'


class ConsumableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    unit_price: Decimal = Field(allow_inf_nan=False, description=MONEY)  # its size is the service's (invalid_amount)
    quantity: int = Field(default=1, ge=1, le=invoice_inputs.MAX_QUANTITY)
    taxable: bool = False

    def request(self) -> invoice_inputs.ConsumableRequest:
        return invoice_inputs.ConsumableRequest(self.name, self.unit_price, self.quantity, self.taxable)


class ExaminationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    examination_id: Id
    quantity: int = Field(default=1, ge=1, le=invoice_inputs.MAX_QUANTITY)


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    branch_id: Id
    patient_id: Id | None = Field(default=None, description="Applies their package, insurance and points")
    examinations: list[ExaminationIn] = Field(default_factory=list, max_length=50)
    consumables: list[ConsumableIn] = Field(default_factory=list, max_length=50)
    loyalty_points: int = Field(default=0, ge=0, le=10_000_000)


class AddLineRequest(BaseModel):
    """Either ``examination_id`` (at its list price) or a ``consumable``."""

    model_config = ConfigDict(extra="forbid")

    examination_id: Id | None = None
    quantity: int = Field(default=1, ge=1, le=invoice_inputs.MAX_QUANTITY, description="For an examination")
    consumable: ConsumableIn | None = None

    @model_validator(mode="after")
    def _one_of(self) -> AddLineRequest:
        if (self.examination_id is None) == (self.consumable is None):
            raise ValueError("give either examination_id or consumable")
        return self


class LoyaltyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: int = Field(ge=0, le=10_000_000, description="Points to redeem; 0 removes the redemption")


class ArchiveQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class StepOut(BaseModel):
    kind: str
    amount: str = Field(description="Signed: the steps of a line add up to its patient_amount")
    explanation: str


class InvoiceLineOut(BaseModel):
    kind: str
    ref_id: int | None
    name: str
    quantity: int
    unit_price: str
    steps: list[StepOut]
    patient_amount: str
    insurer_amount: str


class TotalsOut(BaseModel):
    gross: str
    package_covered: str
    insurer_pays: str
    tax: str
    consumables: str
    loyalty_discount: str
    coupon_discount: str = Field("0", description="Best Deal coupons redeemed on the visit")
    patient_pays: str
    package_uses: int
    deductible_used: str
    insurance_limit_used: str
    loyalty_points_used: int


class InvoiceOut(BaseModel):
    id: int | None = Field(description="None for a preview (nothing saved)")
    session_id: int | None
    branch_id: int | None
    patient_id: int | None
    status: str = Field(description="preview, draft, final or void")
    currency: str
    lines: list[InvoiceLineOut]
    totals: TotalsOut
    loyalty_points_requested: int
    finalised_at: datetime | None = None
    archived_at: datetime | None = None
    snapshot: dict[str, Any] | None = Field(default=None, description="What a deleted session was (archive only)")


class ArchiveOut(BaseModel):
    invoices: list[InvoiceOut]


class LineOut(BaseModel):
    id: int
    session_id: int
    kind: str
    examination_id: int | None
    name: str
    quantity: int
    taxable: bool
    invoice: InvoiceOut


def _from_breakdown(breakdown: dict[str, Any], **meta: Any) -> InvoiceOut:
    return InvoiceOut(
        lines=[InvoiceLineOut.model_validate(line) for line in breakdown.get("lines", [])],
        totals=TotalsOut.model_validate(breakdown["totals"]),
        loyalty_points_requested=int(breakdown.get(invoicing.LOYALTY_REQUESTED, 0) or 0),
        **meta,
    )


def _view_out(view: invoicing.InvoiceView, *, with_snapshot: bool = False) -> InvoiceOut:
    return _from_breakdown(
        view.breakdown,
        id=view.id,
        session_id=view.session_id,
        branch_id=view.branch_id,
        patient_id=view.patient_id,
        status=view.status,
        currency=view.currency,
        finalised_at=view.finalised_at,
        archived_at=view.archived_at,
        snapshot=view.snapshot if with_snapshot else None,
    )


def _preview_out(invoice: Invoice, body: PreviewRequest) -> InvoiceOut:
    return _from_breakdown(
        {**invoice.to_dict(), invoicing.LOYALTY_REQUESTED: body.loyalty_points},
        id=None,
        session_id=None,
        branch_id=body.branch_id,
        patient_id=body.patient_id,
        status="preview",
        currency=invoice.currency,
    )


@api.route("POST", "/invoices/preview", summary="What an invoice would be, step by step (nothing is saved)",
           tag="invoices", body=PreviewRequest, response=InvoiceOut, roles=EVERYONE, errors=(404,))  # fmt: skip
async def preview_invoice(request: web.Request, body: PreviewRequest) -> InvoiceOut:
    check_branch(caller(request), body.branch_id)
    async with transaction(request) as db:
        invoice = await invoicing.preview(
            db,
            branch_id=body.branch_id,
            patient_id=body.patient_id,
            lines=[invoice_inputs.ExaminationRequest(e.examination_id, e.quantity) for e in body.examinations],
            consumables=[c.request() for c in body.consumables],
            loyalty_points=body.loyalty_points,
        )
    return _preview_out(invoice, body)


@api.route("GET", "/sessions/{session_id}/invoice", summary="The session's invoice with every line's steps",
           tag="invoices", response=InvoiceOut, roles=EVERYONE, errors=(404,))  # fmt: skip
async def get_session_invoice(request: web.Request, session_id: int) -> InvoiceOut:
    async with transaction(request) as db:
        view = await invoicing.session_invoice(db, session_id, actor=caller(request))
    return _view_out(view)


@api.route("POST", "/sessions/{session_id}/lines", summary="Add an examination or a consumable (refreshes the invoice)",
           tag="invoices", body=AddLineRequest, response=LineOut, roles=EVERYONE, status=201,
           errors=(404, 409))  # fmt: skip
async def add_session_line(request: web.Request, session_id: int, body: AddLineRequest) -> LineOut:
    actor = caller(request)
    async with transaction(request) as db:
        line = await session_lines.add_line(
            db,
            session_id,
            actor=actor,
            examination_id=body.examination_id,
            quantity=body.quantity,
            consumable=body.consumable.request() if body.consumable else None,
        )
        view = await invoicing.session_invoice(db, session_id, actor=actor)
        return LineOut(
            id=line.id,
            session_id=line.session_id,
            kind=line.kind,
            examination_id=line.examination_id,
            name=line.name,
            quantity=line.quantity,
            taxable=line.taxable,
            invoice=_view_out(view),
        )


@api.route("DELETE", "/sessions/{session_id}/lines/{line_id}", summary="Remove a line (refreshes the invoice)",
           tag="invoices", response=InvoiceOut, roles=EVERYONE, errors=(404, 409))  # fmt: skip
async def remove_session_line(request: web.Request, session_id: int, line_id: int) -> InvoiceOut:
    actor = caller(request)
    async with transaction(request) as db:
        await session_lines.remove_line(db, session_id, line_id, actor=actor)
        view = await invoicing.session_invoice(db, session_id, actor=actor)
    return _view_out(view)


@api.route("PUT", "/sessions/{session_id}/invoice/loyalty", summary="Redeem loyalty points on the session's invoice",
           tag="invoices", body=LoyaltyRequest, response=InvoiceOut, roles=FRONT_DESK, errors=(404, 409))  # fmt: skip
async def set_invoice_loyalty(request: web.Request, session_id: int, body: LoyaltyRequest) -> InvoiceOut:
    actor = caller(request)
    async with transaction(request) as db:
        await invoicing.set_loyalty_points(db, session_id, body.points, actor=actor)
        view = await invoicing.session_invoice(db, session_id, actor=actor)
    return _view_out(view)


@api.route("GET", "/invoices/archive", summary="Invoices of permanently deleted sessions, with what they were for",
           tag="invoices", query=ArchiveQuery, response=ArchiveOut, roles=MANAGERS)  # fmt: skip
async def invoice_archive(request: web.Request, query: ArchiveQuery) -> ArchiveOut:
    async with transaction(request) as db:
        views = await invoicing.archived(db, actor=caller(request), limit=query.limit, offset=query.offset)
    return ArchiveOut(invoices=[_view_out(view, with_snapshot=True) for view in views])
