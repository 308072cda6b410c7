"""Best Deal coupons: bought by a patient, shown as a QR code, checked at the front desk (redeemed on a visit by
:mod:`booking_core.services.coupon_redemptions`).

The code is drawn with :func:`~booking_core.domain.codes.new_coupon_code` (≈ 64 bits) and handed out once, when the
coupon is issued; the database keeps only its HMAC (``hash_code`` with the server secret) and the last four
characters as a hint for staff to tell coupons apart. A code that does not normalise and a code nobody holds get the
same answer, ``unknown``, so the endpoints are no oracle for what codes look like.

Checking a code (:func:`validate`) changes nothing: it says what the coupon gives, its validity, the uses left, its
redemptions (times in the branch's zone, formatted with babel) and the owner's visits it can go on, today's
checked-in visit first. Issuing and voiding leave an audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime

from booking_core.db.engine import Db
from booking_core.db.queries import coupons as queries
from booking_core.db.tables import Branch, Coupon
from booking_core.domain.actors import Actor
from booking_core.domain.codes import hash_code, mask_name, new_coupon_code, normalize_code
from booking_core.domain.lifecycle import ACTIVE_STATUSES
from booking_core.domain.money import format_money, quantize
from booking_core.services import audit
from booking_core.services.catalog import check_amount
from booking_core.services.errors import Conflict, Invalid, NotFound

__all__ = [
    "CODE_HINT_LENGTH",
    "CouponCheck",
    "CouponView",
    "IssuedCoupon",
    "Reason",
    "RedemptionView",
    "VisitChoice",
    "branch_for",
    "day",
    "issue",
    "message_for",
    "midnight",
    "reason_for",
    "redemptions_of",
    "validate",
    "view_of",
    "void",
    "when",
]

Reason = Literal["valid", "expired", "not_yet_valid", "already_redeemed", "void", "other_branch", "unknown"]
CODE_HINT_LENGTH = 4
MAX_TITLE = 120
MAX_DESCRIPTION = 2000
MAX_NOTE = 500
MAX_USES = 100
_ISSUE_ATTEMPTS = 3
#: Dates and times on the desk's screens and in refusals (babel, like the rest of the app).
LOCALE = "en"


@dataclass(frozen=True)
class CouponView:
    """A coupon as the front desk sees it: what it is for and whose it is (masked), never its code."""

    id: int
    code_hint: str
    title: str
    description: str
    owner: str  # the patient's name, masked ("S*** R*********")
    patient_id: int | None
    examination_id: int | None
    examination_name: str | None
    branch_id: int | None  # None: any branch
    branch_name: str | None
    price_paid: Decimal
    currency: str
    valid_from: date
    valid_until: date
    status: str
    max_uses: int
    uses: int
    redeemed_at: datetime | None  # the latest standing redemption
    redeemed_branch_id: int | None
    created_at: datetime

    @property
    def uses_left(self) -> int:
        return 0 if self.status == "void" else max(self.max_uses - self.uses, 0)

    @property
    def gives(self) -> str:
        """What it is worth at the desk, in a sentence (the invoice line says the same, with the amounts)."""
        if self.examination_name is not None:
            return f"Pays one {self.examination_name} on the visit's invoice."
        return f"Worth {format_money(self.price_paid, self.currency)} off the visit's invoice."


@dataclass(frozen=True)
class IssuedCoupon:
    """A new coupon and its code: the only time the code is ever available."""

    code: str
    patient_id: int
    coupon: CouponView


@dataclass(frozen=True)
class RedemptionView:
    """One use of a coupon: on which visit, when, by whom, and whether it was undone."""

    id: int
    session_id: int | None
    visit_starts_at: datetime | None
    redeemed_at: datetime
    redeemed_by: str | None
    undone_at: datetime | None
    undo_reason: str

    @property
    def standing(self) -> bool:
        return self.undone_at is None


@dataclass(frozen=True)
class VisitChoice:
    """One of the owner's visits a coupon can be redeemed on (today's or a coming one, at the desk's branch)."""

    session_id: int
    starts_at: datetime
    doctor: str
    examinations: tuple[str, ...]
    checked_in: bool
    has_coupon: bool  # this coupon already stands on it


@dataclass(frozen=True)
class CouponCheck:
    """What a scanned code is: ``valid``, or why not (``coupon`` is None only for ``unknown``).

    ``visits`` are the owner's visits it could go on, ``suggested`` the one the desk most likely means (checked in
    today, else the soonest); ``tz`` is the zone its times are shown in.
    """

    reason: Reason
    message: str
    coupon: CouponView | None
    redemptions: tuple[RedemptionView, ...] = ()
    visits: tuple[VisitChoice, ...] = ()
    suggested: int | None = None
    tz: str = "UTC"

    @property
    def valid(self) -> bool:
        return self.reason == "valid"


def view_of(row: queries.Row) -> CouponView:
    coupon, patient_name, examination_name, branch_name = row
    return CouponView(
        id=coupon.id,
        code_hint=coupon.code_hint,
        title=coupon.title,
        description=coupon.description,
        owner=mask_name(patient_name or ""),
        patient_id=coupon.patient_id,
        examination_id=coupon.examination_id,
        examination_name=examination_name,
        branch_id=coupon.branch_id,
        branch_name=branch_name,
        price_paid=quantize(coupon.price_paid, coupon.currency),
        currency=coupon.currency,
        valid_from=coupon.valid_from,
        valid_until=coupon.valid_until,
        status=coupon.status,
        max_uses=coupon.max_uses,
        uses=coupon.uses,
        redeemed_at=coupon.redeemed_at,
        redeemed_branch_id=coupon.redeemed_branch_id,
        created_at=coupon.created_at,
    )


def when(moment: datetime, tz: str) -> str:
    """``Mon 7 Dec 2026, 10:15`` in the branch's zone."""
    return format_datetime(moment.astimezone(ZoneInfo(tz)), "EEE d MMM y, HH:mm", locale=LOCALE)


def day(value: date) -> str:
    """``7 Dec 2026``."""
    return format_date(value, "d MMM y", locale=LOCALE)


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
    max_uses: int = 1,
) -> IssuedCoupon:
    """Issue a coupon the patient bought; the returned code is shown once (as a QR) and never stored in clear.

    ``branch_id`` None means any branch; staff tied to one branch issue coupons for their branch only (None becomes
    theirs). The price paid is checked against the currency's minor units; the examination and the branch, when
    given, must price in the coupon's currency. ``max_uses`` is how many visits it can go on (one, for most).
    """
    title, description, currency, price = _checked_terms(
        title, description, currency, price_paid, max_uses=max_uses, valid_from=valid_from, valid_until=valid_until
    )
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
        branch = await branch_for(db, actor, branch_id)
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
                "max_uses": max_uses,
                "uses": 0,
            },
        )
        if coupon_id is not None:
            break
    else:  # pragma: no cover - three 64-bit collisions in a row do not happen
        raise Conflict("code_collision", "Could not draw a fresh coupon code; try again.")
    row = await queries.by_id(db, coupon_id)
    assert row is not None
    view = view_of(row)
    audit.record(
        db, actor, "coupon.issued", "coupon", coupon_id,
        {"code_hint": view.code_hint, "patient_id": patient_id, "title": title, "price_paid": str(price),
         "currency": currency, "branch_id": branch_id, "examination_id": examination_id,
         "valid_from": valid_from.isoformat(), "valid_until": valid_until.isoformat(), "max_uses": max_uses},
    )  # fmt: skip
    return IssuedCoupon(code=code, patient_id=patient_id, coupon=view)


def _checked_terms(
    title: str,
    description: str,
    currency: str,
    price_paid: Decimal,
    *,
    max_uses: int,
    valid_from: date,
    valid_until: date,
) -> tuple[str, str, str, Decimal]:
    """A new coupon's own terms, checked: title, description, currency and price (its minor units), uses, dates."""
    title, description = title.strip(), description.strip()
    if not 1 <= len(title) <= MAX_TITLE:
        raise Invalid("invalid_title", f"A coupon needs a title of 1 to {MAX_TITLE} characters.")
    if len(description) > MAX_DESCRIPTION:
        raise Invalid("invalid_description", f"A description is at most {MAX_DESCRIPTION} characters.")
    currency = currency.strip().upper()
    price = check_amount(price_paid, currency, what="price paid")
    if isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 1 <= max_uses <= MAX_USES:
        raise Invalid("invalid_uses", f"A coupon is good for 1 to {MAX_USES} uses.")
    if valid_until < valid_from:
        raise Invalid("invalid_dates", "A coupon's last valid day cannot come before its first.")
    return title, description, currency, price


async def branch_for(db: Db, actor: Actor, branch_id: int) -> Branch:
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")
    branch = await queries.get_branch(db, branch_id)
    if branch is None:
        raise NotFound("not_found", "There is no such branch.")
    return branch


# --- checking


async def _lookup(db: Db, code: str, secret: str) -> queries.Row | None:
    normalized = normalize_code(code)
    if normalized is None:
        return None  # malformed is answered exactly like unknown
    return await queries.by_hash(db, hash_code(normalized, pepper=secret))


def reason_for(coupon: Coupon, *, today: date, branch_id: int | None) -> Reason:
    if coupon.status == "void":
        return "void"
    if coupon.status == "redeemed" or coupon.uses >= coupon.max_uses:
        return "already_redeemed"
    if branch_id is not None and coupon.branch_id is not None and coupon.branch_id != branch_id:
        return "other_branch"
    if today < coupon.valid_from:
        return "not_yet_valid"
    if today > coupon.valid_until:
        return "expired"
    return "valid"


def message_for(reason: Reason, view: CouponView | None, tz: str) -> str:
    if view is None or reason == "unknown":
        return "No coupon has this code."
    used = f"({when(view.redeemed_at, tz)})" if view.redeemed_at else "(on an earlier visit)"
    return {
        "valid": f"Valid: {view.title}.",
        "expired": f"This coupon expired after {day(view.valid_until)}.",
        "not_yet_valid": f"This coupon is valid from {day(view.valid_from)}.",
        "already_redeemed": f"This coupon was already redeemed {used}.",
        "void": "This coupon was voided.",
        "other_branch": f"This coupon is for {view.branch_name or 'another branch'} only.",
    }[reason]


async def _desk_branch(db: Db, actor: Actor, branch_id: int | None) -> Branch | None:
    if branch_id is None and actor.kind == "staff":
        branch_id = actor.branch_id
    return None if branch_id is None else await branch_for(db, actor, branch_id)


async def _zone(db: Db, desk: Branch | None, coupon: Coupon) -> str:
    """The desk's zone, else the coupon's branch's, else UTC: the local date and the times shown."""
    if desk is not None:
        return desk.tz
    if coupon.branch_id is not None:
        branch = await queries.get_branch(db, coupon.branch_id)
        if branch is not None:
            return branch.tz
    return "UTC"


async def redemptions_of(db: Db, coupon_id: int) -> tuple[RedemptionView, ...]:
    return tuple(
        RedemptionView(
            id=r.id,
            session_id=r.session_id,
            visit_starts_at=starts_at,
            redeemed_at=r.redeemed_at,
            redeemed_by=staff_name,
            undone_at=r.undone_at,
            undo_reason=r.undo_reason,
        )
        for r, starts_at, _branch_id, staff_name in await queries.redemptions(db, coupon_id)
    )


def midnight(today: date, tz: str) -> datetime:
    return datetime.combine(today, time(0), tzinfo=ZoneInfo(tz))


async def _visits(
    db: Db, view: CouponView, desk: Branch, today: date, redemptions: tuple[RedemptionView, ...]
) -> tuple[VisitChoice, ...]:
    if view.patient_id is None:
        return ()
    standing = {r.session_id for r in redemptions if r.standing}
    found = await queries.visits_of_patient(
        db,
        view.patient_id,
        branch_id=desk.id,
        since=midnight(today, desk.tz),
        statuses=[status.value for status in ACTIVE_STATUSES],
    )
    return tuple(
        VisitChoice(
            session_id=session.id,
            starts_at=session.starts_at,
            doctor=doctor,
            examinations=tuple(names),
            checked_in=checked_in,
            has_coupon=session.id in standing,
        )
        for session, doctor, names, checked_in in found
    )


def _suggested(visits: tuple[VisitChoice, ...]) -> int | None:
    """The visit being checked in (in today's queue) first, else the soonest; never one it already stands on."""
    open_ = [v for v in visits if not v.has_coupon]
    chosen = next((v for v in open_ if v.checked_in), None) or (open_[0] if open_ else None)
    return chosen.session_id if chosen else None


async def validate(
    db: Db, code: str, *, actor: Actor, secret: str, branch_id: int | None = None, now: datetime | None = None
) -> CouponCheck:
    """What a scanned code is, whether it can be redeemed here today and on which of the owner's visits; changes
    nothing.

    ``branch_id`` (default: the actor's branch) is the desk's branch, for ``other_branch``, the local date and
    the visits offered (none without a desk branch).
    """
    now = now or datetime.now(UTC)
    desk = await _desk_branch(db, actor, branch_id)
    row = await _lookup(db, code, secret)
    if row is None:
        return CouponCheck("unknown", message_for("unknown", None, "UTC"), None)
    view = view_of(row)
    tz = await _zone(db, desk, row[0])
    today = now.astimezone(ZoneInfo(tz)).date()
    reason = reason_for(row[0], today=today, branch_id=desk.id if desk else None)
    redemptions = await redemptions_of(db, view.id)
    visits = await _visits(db, view, desk, today, redemptions) if desk is not None else ()
    return CouponCheck(
        reason,
        message_for(reason, view, tz),
        view,
        redemptions,
        visits,
        _suggested(visits) if reason == "valid" else None,
        tz,
    )


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
    view = view_of(row)
    audit.record(db, actor, "coupon.voided", "coupon", coupon_id, {"code_hint": view.code_hint, "reason": reason})
    return view
