"""Best Deal coupons at the front desk: issue (code shown once, as a QR), check a scan, redeem on a visit (its
discount becomes a line of the visit's invoice), undo a redemption made by mistake, void."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import segno
from aiohttp import web
from pydantic import BaseModel, Field

from booking_core.domain.money import money_str
from booking_core.services import coupon_redemptions as redemptions
from booking_core.services import coupons as service
from gateway.api import api
from gateway.api.catalog import Body
from gateway.api.common import caller, transaction
from gateway.api.fields import Amount, Currency, Id
from gateway.keys import SETTINGS

TAG = "coupons"
DESK = ("owner", "admin", "staff")
MANAGERS = ("owner", "admin")
# Long enough for any pasted code with spaces and dashes; anything that does not normalise is simply "unknown".
MAX_CODE_INPUT = 100


class CouponIn(Body):
    patient_id: Id = Field(description="The patient who bought it")
    title: str = Field(min_length=1, max_length=service.MAX_TITLE)
    description: str = Field("", max_length=service.MAX_DESCRIPTION)
    examination_id: Id | None = Field(None, description="What it is for (null: not tied to one examination)")
    branch_id: Id | None = Field(None, description="Where it can be redeemed (null: any branch)")
    price_paid: Amount
    currency: Currency
    valid_from: date
    valid_until: date = Field(description="Last day it can be redeemed (inclusive)")
    max_uses: int = Field(1, ge=1, le=service.MAX_USES, description="How many visits it can go on")


class CodeIn(Body):
    code: str = Field(max_length=MAX_CODE_INPUT, description="As scanned or typed; case, spaces and dashes ignored")
    branch_id: Id | None = Field(None, description="The desk's branch (default: yours)")


class RedeemIn(Body):
    code: str = Field(max_length=MAX_CODE_INPUT)
    branch_id: Id = Field(description="The branch redeeming it")
    session_id: Id = Field(description="The owner's visit (today's or a coming one) whose invoice gets the discount")


class UndoIn(Body):
    reason: str = Field(min_length=1, max_length=service.MAX_NOTE, description="Why (a desk mistake, say)")


class VoidIn(Body):
    reason: str = Field(min_length=1, max_length=service.MAX_NOTE)


class CouponOut(BaseModel):
    id: int
    code_hint: str = Field(description="Last characters of the code, to tell coupons apart")
    title: str
    description: str
    owner: str = Field(description="The patient's name, masked")
    patient_id: int | None
    examination_id: int | None
    examination_name: str | None
    branch_id: int | None
    branch_name: str | None
    price_paid: Decimal
    currency: str
    valid_from: date
    valid_until: date
    status: str
    max_uses: int
    uses: int = Field(description="Redemptions that stand")
    uses_left: int
    gives: str = Field(description="What it is worth at the desk, in a sentence")
    redeemed_at: datetime | None = Field(description="The latest standing redemption")
    redeemed_branch_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, view: service.CouponView) -> CouponOut:
        return cls(**vars(view), uses_left=view.uses_left, gives=view.gives)


class RedemptionOut(BaseModel):
    id: int
    session_id: int | None
    visit_starts_at: datetime | None
    redeemed_at: datetime
    redeemed_by: str | None
    undone_at: datetime | None
    undo_reason: str


class VisitChoiceOut(BaseModel):
    session_id: int
    starts_at: datetime
    doctor: str
    examinations: list[str]
    checked_in: bool
    has_coupon: bool = Field(description="This coupon already stands on the visit")


class IssuedCouponOut(BaseModel):
    code: str = Field(description="Shown this once; only its hash is kept")
    qr_svg: str = Field(description="The code as an inline SVG QR for the patient to keep")
    patient_id: int
    coupon: CouponOut


class CouponCheckOut(BaseModel):
    valid: bool
    result: service.Reason
    message: str
    coupon: CouponOut | None = Field(description="null when the code is unknown")
    redemptions: list[RedemptionOut]
    visits: list[VisitChoiceOut] = Field(description="The owner's visits at this branch it can go on, soonest first")
    suggested_session_id: int | None = Field(description="The visit being checked in, else the soonest")


class RedeemedOut(BaseModel):
    coupon: CouponOut
    redemption_id: int
    session_id: int
    invoice_id: int
    discount: str = Field(description="What the coupon takes off the visit's invoice, in the currency's minor units")
    currency: str


@api.route("POST", "/coupons", summary="Issue a Best Deal coupon a patient bought (the code is shown once)", tag=TAG,
           body=CouponIn, response=IssuedCouponOut, roles=DESK, status=201, errors=(404,))  # fmt: skip
async def issue_coupon(request: web.Request, body: CouponIn) -> IssuedCouponOut:
    async with transaction(request) as db:
        issued = await service.issue(
            db,
            actor=caller(request),
            secret=request.app[SETTINGS].SECRET_KEY,
            patient_id=body.patient_id,
            title=body.title,
            description=body.description,
            examination_id=body.examination_id,
            branch_id=body.branch_id,
            price_paid=body.price_paid,
            currency=body.currency,
            valid_from=body.valid_from,
            valid_until=body.valid_until,
            max_uses=body.max_uses,
        )
    return IssuedCouponOut(
        code=issued.code,
        qr_svg=segno.make(issued.code, error="m").svg_inline(scale=4),
        patient_id=issued.patient_id,
        coupon=CouponOut.of(issued.coupon),
    )


@api.route("POST", "/coupons/validate", summary="What a scanned coupon is and whether it can be redeemed (no change)",
           tag=TAG, body=CodeIn, response=CouponCheckOut, roles=DESK, errors=(404,))  # fmt: skip
async def validate_coupon(request: web.Request, body: CodeIn) -> CouponCheckOut:
    async with transaction(request) as db:
        check = await service.validate(
            db, body.code, actor=caller(request), secret=request.app[SETTINGS].SECRET_KEY, branch_id=body.branch_id
        )
    return CouponCheckOut(
        valid=check.valid,
        result=check.reason,
        message=check.message,
        coupon=CouponOut.of(check.coupon) if check.coupon is not None else None,
        redemptions=[RedemptionOut(**vars(r)) for r in check.redemptions],
        visits=[VisitChoiceOut(**(vars(v) | {"examinations": list(v.examinations)})) for v in check.visits],
        suggested_session_id=check.suggested,
    )


@api.route("POST", "/coupons/redeem", summary="Redeem a coupon on a visit: one use, one line on its invoice",
           tag=TAG, body=RedeemIn, response=RedeemedOut, roles=DESK, errors=(404, 409))  # fmt: skip
async def redeem_coupon(request: web.Request, body: RedeemIn) -> RedeemedOut:
    async with transaction(request) as db:
        done = await redemptions.redeem(
            db,
            body.code,
            actor=caller(request),
            secret=request.app[SETTINGS].SECRET_KEY,
            branch_id=body.branch_id,
            session_id=body.session_id,
        )
    return RedeemedOut(
        coupon=CouponOut.of(done.coupon),
        redemption_id=done.redemption_id,
        session_id=done.session_id,
        invoice_id=done.invoice_id,
        discount=money_str(done.discount, done.currency),
        currency=done.currency,
    )


@api.route("POST", "/coupons/redemptions/{redemption_id}/undo", summary="Undo a redemption made by mistake (its use "
           "comes back, its line leaves the draft invoice)", tag=TAG, body=UndoIn, response=CouponOut, roles=DESK,
           errors=(404, 409))  # fmt: skip
async def undo_redemption(request: web.Request, redemption_id: int, body: UndoIn) -> CouponOut:
    async with transaction(request) as db:
        view = await redemptions.undo_redemption(db, redemption_id, actor=caller(request), reason=body.reason)
    return CouponOut.of(view)


@api.route("POST", "/coupons/{coupon_id}/void", summary="Void an unused coupon (refund, sold in error)", tag=TAG,
           body=VoidIn, response=CouponOut, roles=MANAGERS, errors=(404, 409))  # fmt: skip
async def void_coupon(request: web.Request, coupon_id: int, body: VoidIn) -> CouponOut:
    async with transaction(request) as db:
        view = await service.void(db, coupon_id, actor=caller(request), reason=body.reason)
    return CouponOut.of(view)
