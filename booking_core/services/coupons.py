"""Best Deal coupons: bought by a patient, shown as a QR code, validated and redeemed once at the front desk.

The code is drawn with :func:`~booking_core.domain.codes.new_coupon_code` (≈ 64 bits) and handed out once, when the
coupon is issued; the database keeps only its HMAC (``hash_code`` with the server secret) and the last four
characters as a hint for staff to tell coupons apart. A code that does not normalise and a code nobody holds get the
same answer, ``unknown``, so the endpoints are no oracle for what codes look like.

Redeeming is one atomic ``UPDATE ... WHERE status = 'active' AND <valid today here> RETURNING``: of twenty front
desks scanning the same QR at once, exactly one redeems it and the others are told it was already redeemed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import coupons as queries
from booking_core.db.tables import Branch, Coupon
from booking_core.domain.actors import Actor
from booking_core.domain.codes import hash_code, mask_name, new_coupon_code, normalize_code
from booking_core.domain.money import quantize
from booking_core.services import audit
from booking_core.services.catalog import check_amount
from booking_core.services.errors import Conflict, Invalid, NotFound, ServiceError

__all__ = [
    "CODE_HINT_LENGTH",
    "CouponCheck",
    "CouponView",
    "IssuedCoupon",
    "Reason",
    "issue",
    "redeem",
    "validate",
    "void",
]

Reason = Literal["valid", "expired", "not_yet_valid", "already_redeemed", "void", "other_branch", "unknown"]
CODE_HINT_LENGTH = 4
MAX_TITLE = 120
MAX_DESCRIPTION = 2000
MAX_NOTE = 500
_ISSUE_ATTEMPTS = 3


@dataclass(frozen=True)
class CouponView:
    """A coupon as the front desk sees it: what it is for and whose it is (masked), never its code."""

    id: int
    code_hint: str
    title: str
    description: str
    owner: str  # the patient's name, masked ("S*** R*********")
    examination_id: int | None
    examination_name: str | None
    branch_id: int | None  # None: any branch
    branch_name: str | None
    price_paid: Decimal
    currency: str
    valid_from: date
    valid_until: date
    status: str
    redeemed_at: datetime | None
    redeemed_branch_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class IssuedCoupon:
    """A new coupon and its code: the only time the code is ever available."""

    code: str
    patient_id: int
    coupon: CouponView


@dataclass(frozen=True)
class CouponCheck:
    """What a scanned code is: ``valid``, or why not (``coupon`` is None only for ``unknown``)."""

    reason: Reason
    message: str
    coupon: CouponView | None

    @property
    def valid(self) -> bool:
        return self.reason == "valid"


def _view(row: queries.Row) -> CouponView:
    coupon, patient_name, examination_name, branch_name = row
    return CouponView(
        id=coupon.id,
        code_hint=coupon.code_hint,
        title=coupon.title,
        description=coupon.description,
        owner=mask_name(patient_name or ""),
        examination_id=coupon.examination_id,
        examination_name=examination_name,
        branch_id=coupon.branch_id,
        branch_name=branch_name,
        price_paid=quantize(coupon.price_paid, coupon.currency),
        currency=coupon.currency,
        valid_from=coupon.valid_from,
        valid_until=coupon.valid_until,
        status=coupon.status,
        redeemed_at=coupon.redeemed_at,
        redeemed_branch_id=coupon.redeemed_branch_id,
        created_at=coupon.created_at,
    )


# --- issuing


async def issue(
    db: Db,
    *,
    actor: Actor,
    secret: str,
    patient_id: int,
    title: str,
    price_paid: Decimal,
    currency: str,
    valid_from: date,
    valid_until: date,
    description: str = "",
    examination_id: int | None = None,
    branch_id: int | None = None,
) -> IssuedCoupon:
    """Issue a coupon the patient bought; the returned code is shown once (as a QR) and never stored in clear.

    ``branch_id`` None means any branch; staff tied to one branch issue coupons for their branch only (None becomes
    theirs). The price paid is checked against the currency's minor units; the examination and the branch, when
    given, must price in the coupon's currency.
    """
    title, description = title.strip(), description.strip()
    if not 1 <= len(title) <= MAX_TITLE:
        raise Invalid("invalid_title", f"A coupon needs a title of 1 to {MAX_TITLE} characters.")
    if len(description) > MAX_DESCRIPTION:
        raise Invalid("invalid_description", f"A description is at most {MAX_DESCRIPTION} characters.")
    currency = currency.strip().upper()
    price = check_amount(price_paid, currency, what="price paid")
    if valid_until < valid_from:
        raise Invalid("invalid_dates", "A coupon's last valid day cannot come before its first.")
    if actor.kind == "staff" and actor.branch_id is not None:
        branch_id = actor.branch_id if branch_id is None else branch_id
    if await queries.get_patient(db, patient_id) is None:
        raise NotFound("not_found", "There is no such patient.")
    if examination_id is not None:
        examination = await queries.get_examination(db, examination_id)
        if examination is None:
            raise NotFound("not_found", "There is no such examination.")
        if examination.currency != currency:
            raise Invalid("currency_mismatch", f"{examination.name} is priced in {examination.currency}.")
    if branch_id is not None:
        branch = await _branch(db, actor, branch_id)
        if branch.currency != currency:
            raise Invalid("currency_mismatch", f"{branch.name} charges in {branch.currency}.")

    for _ in range(_ISSUE_ATTEMPTS):
        code = new_coupon_code()
        coupon_id = await queries.insert_coupon(
            db,
            {
                "code_hash": hash_code(code, pepper=secret),
                "code_hint": code[-CODE_HINT_LENGTH:],
                "patient_id": patient_id,
                "title": title,
                "description": description,
                "examination_id": examination_id,
                "branch_id": branch_id,
                "price_paid": price,
                "currency": currency,
                "valid_from": valid_from,
                "valid_until": valid_until,
                "status": "active",
            },
        )
        if coupon_id is not None:
            break
    else:  # pragma: no cover - three 64-bit collisions in a row do not happen
        raise Conflict("code_collision", "Could not draw a fresh coupon code; try again.")
    row = await queries.by_id(db, coupon_id)
    assert row is not None
    view = _view(row)
    audit.record(
        db, actor, "coupon.issued", "coupon", coupon_id,
        {"code_hint": view.code_hint, "patient_id": patient_id, "title": title, "price_paid": str(price),
         "currency": currency, "branch_id": branch_id, "examination_id": examination_id,
         "valid_from": valid_from.isoformat(), "valid_until": valid_until.isoformat()},
    )  # fmt: skip
    return IssuedCoupon(code=code, patient_id=patient_id, coupon=view)


async def _branch(db: Db, actor: Actor, branch_id: int) -> Branch:
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")
    branch = await queries.get_branch(db, branch_id)
    if branch is None:
        raise NotFound("not_found", "There is no such branch.")
    return branch


# --- checking and redeeming


async def _lookup(db: Db, code: str, secret: str) -> queries.Row | None:
    normalized = normalize_code(code)
    if normalized is None:
        return None  # malformed is answered exactly like unknown
    return await queries.by_hash(db, hash_code(normalized, pepper=secret))


def _today(branch: Branch | None, fallback_tz: str | None, now: datetime) -> date:
    """The date at the desk: the redeeming branch's, else the coupon's branch's, else UTC."""
    tz = branch.tz if branch is not None else fallback_tz
    return now.astimezone(ZoneInfo(tz) if tz else UTC).date()


def _reason(coupon: Coupon, *, today: date, branch_id: int | None) -> Reason:
    if coupon.status == "void":
        return "void"
    if coupon.status == "redeemed":
        return "already_redeemed"
    if branch_id is not None and coupon.branch_id is not None and coupon.branch_id != branch_id:
        return "other_branch"
    if today < coupon.valid_from:
        return "not_yet_valid"
    if today > coupon.valid_until:
        return "expired"
    return "valid"


def _message(reason: Reason, view: CouponView | None) -> str:
    if view is None or reason == "unknown":
        return "No coupon has this code."
    when = view.redeemed_at.isoformat(timespec="minutes") if view.redeemed_at else "an earlier visit"
    return {
        "valid": f"Valid: {view.title}.",
        "expired": f"This coupon expired after {view.valid_until.isoformat()}.",
        "not_yet_valid": f"This coupon is valid from {view.valid_from.isoformat()}.",
        "already_redeemed": f"This coupon was already redeemed ({when}).",
        "void": "This coupon was voided.",
        "other_branch": f"This coupon is for {view.branch_name or 'another branch'} only.",
    }[reason]


async def _desk_branch(db: Db, actor: Actor, branch_id: int | None) -> Branch | None:
    if branch_id is None and actor.kind == "staff":
        branch_id = actor.branch_id
    return None if branch_id is None else await _branch(db, actor, branch_id)


async def validate(
    db: Db, code: str, *, actor: Actor, secret: str, branch_id: int | None = None, now: datetime | None = None
) -> CouponCheck:
    """What a scanned code is and whether it can be redeemed here today; changes nothing.

    ``branch_id`` (default: the actor's branch) is the desk's branch, for ``other_branch`` and the local date.
    """
    now = now or datetime.now(UTC)
    desk = await _desk_branch(db, actor, branch_id)
    row = await _lookup(db, code, secret)
    if row is None:
        return CouponCheck("unknown", _message("unknown", None), None)
    view = _view(row)
    coupon_tz = None
    if desk is None and row[0].branch_id is not None:
        coupon_branch = await queries.get_branch(db, row[0].branch_id)
        coupon_tz = coupon_branch.tz if coupon_branch is not None else None
    today = _today(desk, coupon_tz, now)
    reason = _reason(row[0], today=today, branch_id=desk.id if desk else None)
    return CouponCheck(reason, _message(reason, view), view)


async def redeem(
    db: Db, code: str, *, actor: Actor, secret: str, branch_id: int, now: datetime | None = None
) -> CouponView:
    """Redeem a coupon at ``branch_id``, exactly once.

    Refusals: 404 ``unknown`` (no such code, or not a code at all); 409 ``already_redeemed`` (details: when),
    ``void``, ``expired``, ``not_yet_valid``, ``other_branch``.
    """
    now = now or datetime.now(UTC)
    desk = await _branch(db, actor, branch_id)
    normalized = normalize_code(code)
    if normalized is None:
        raise _refusal("unknown", None)
    code_hash = hash_code(normalized, pepper=secret)
    today = _today(desk, None, now)
    coupon_id = await queries.redeem(
        db, code_hash, today=today, branch_id=desk.id, staff_id=actor.id if actor.kind == "staff" else None, now=now
    )
    row = await queries.by_hash(db, code_hash)
    if row is None:
        raise _refusal("unknown", None)
    view = _view(row)
    if coupon_id is None:
        reason = _reason(row[0], today=today, branch_id=desk.id)
        # Only a concurrent redeemer can make the UPDATE miss a coupon that now reads as valid.
        raise _refusal("already_redeemed" if reason == "valid" else reason, view)
    audit.record(
        db, actor, "coupon.redeemed", "coupon", view.id,
        {"code_hint": view.code_hint, "branch_id": desk.id, "title": view.title},
    )  # fmt: skip
    return view


def _refusal(reason: Reason, view: CouponView | None) -> ServiceError:
    message = _message(reason, view)
    if view is None:
        return NotFound("unknown", message)
    details = {"redeemed_at": view.redeemed_at.isoformat() if view.redeemed_at else None}
    return Conflict(reason, message, details=details if reason == "already_redeemed" else None)


async def void(db: Db, coupon_id: int, *, actor: Actor, reason: str) -> CouponView:
    """Void an active coupon (refunded, sold in error); a redeemed or void one is 409 with its status as code."""
    reason = reason.strip()
    if not 1 <= len(reason) <= MAX_NOTE:
        raise Invalid("invalid_reason", f"Give a reason of 1 to {MAX_NOTE} characters.")
    row = await queries.by_id(db, coupon_id)
    if row is None or (row[0].branch_id is not None and not actor.can_see_branch(row[0].branch_id)):
        raise NotFound("not_found", "There is no such coupon.")
    if not await queries.void(db, coupon_id, note=reason):
        row = await queries.by_id(db, coupon_id)
        assert row is not None
        status = row[0].status
        raise Conflict("already_redeemed" if status == "redeemed" else "void", f"This coupon is already {status}.")
    row = await queries.by_id(db, coupon_id)
    assert row is not None
    view = _view(row)
    audit.record(db, actor, "coupon.voided", "coupon", coupon_id, {"code_hint": view.code_hint, "reason": reason})
    return view
