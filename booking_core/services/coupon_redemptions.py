"""A Best Deal coupon redeemed on a visit, and a redemption taken back.

Redeeming (:func:`redeem`) names the visit: the session is locked, the coupon's rules checked (dates, branch,
owner, examination, currency), one use taken with an atomic ``UPDATE ... WHERE uses < max_uses AND <valid today
here> RETURNING`` (of twenty desks redeeming a single-use coupon at once, exactly one wins, the others are told when
it was redeemed), a ``coupon_redemptions`` row written (a partial unique index: one standing redemption of a coupon
per visit) and the visit's invoice rebuilt, where the coupon is a line saying how its discount was worked out.
:func:`undo_redemption` takes a desk mistake back while the invoice is a draft (a cancelled visit's coupons come back
through :func:`booking_core.services.invoicing.void_draft`). Each leaves an audit row.

Lock order follows invoicing's (session → invoice → patient): session, then coupon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import coupons as queries
from booking_core.db.tables import Branch
from booking_core.domain.actors import Actor
from booking_core.domain.codes import hash_code, normalize_code
from booking_core.services import audit, coupons, invoicing
from booking_core.services.errors import Conflict, Invalid, NotFound, ServiceError

__all__ = ["Redeemed", "redeem", "undo_redemption"]


@dataclass(frozen=True)
class Redeemed:
    """A redemption just made: the coupon as it is now, the redemption, and the discount on the visit's invoice."""

    coupon: coupons.CouponView
    redemption_id: int
    session_id: int
    invoice_id: int
    discount: Decimal
    currency: str


def _refusal(reason: coupons.Reason, view: coupons.CouponView | None, tz: str) -> ServiceError:
    message = coupons.message_for(reason, view, tz)
    if view is None:
        return NotFound("unknown", message)
    details = {"redeemed_at": view.redeemed_at.isoformat() if view.redeemed_at else None}
    return Conflict(reason, message, details=details if reason == "already_redeemed" else None)


async def _check_visit(
    db: Db, view: coupons.CouponView, session_id: int, desk: Branch, today: date, actor: Actor
) -> None:
    """The coupon's rules for this visit, each refused with what to do instead (the session is locked)."""
    session = await invoicing.lock_open_session(db, session_id, actor)
    if session.branch_id != desk.id:
        raise Conflict(
            "visit_other_branch", "This visit is at another branch; redeem the coupon at that branch's desk."
        )
    if view.patient_id is None or session.patient_id != view.patient_id:
        raise Conflict(
            "other_patient", f"This visit is another patient's; the coupon belongs to {view.owner or 'someone else'}."
        )
    if session.starts_at < coupons.midnight(today, desk.tz):
        raise Conflict(
            "visit_past",
            f"This visit was on {coupons.when(session.starts_at, desk.tz)}; "
            "a coupon goes on today's visit or a coming one.",
        )
    if view.currency != desk.currency:
        raise Conflict("currency_mismatch", f"This coupon is in {view.currency}; {desk.name} bills in {desk.currency}.")
    if view.examination_id is not None and view.examination_id not in await invoicing.examinations_on(db, session.id):
        raise Conflict(
            "examination_missing",
            f"This coupon is for {view.examination_name}; the visit has none. Add it to the visit first.",
        )


async def redeem(
    db: Db, code: str, *, actor: Actor, secret: str, branch_id: int, session_id: int, now: datetime | None = None
) -> Redeemed:
    """Redeem a coupon at ``branch_id`` on the visit ``session_id``: one use, one invoice line, one audit row.

    Refusals: 404 ``unknown`` (no such code, or not a code at all) or ``not_found`` (no such visit here); 409
    ``already_redeemed`` (details: when; also the loser of a race for the last use), ``void``, ``expired``,
    ``not_yet_valid``, ``other_branch``, ``already_applied`` (it stands on this visit already), ``other_patient``,
    ``visit_other_branch``, ``visit_past``, ``examination_missing``, ``currency_mismatch``, ``session_closed``,
    ``invoice_closed``.
    """
    now = now or datetime.now(UTC)
    desk = await coupons.branch_for(db, actor, branch_id)
    normalized = normalize_code(code)
    row = None if normalized is None else await queries.by_hash(db, hash_code(normalized, pepper=secret))
    if row is None:
        raise _refusal("unknown", None, desk.tz)
    view = coupons.view_of(row)
    today = now.astimezone(ZoneInfo(desk.tz)).date()
    reason = coupons.reason_for(row[0], today=today, branch_id=desk.id)
    if reason != "valid":  # the coupon's own rules first; the UPDATE below checks them again, atomically
        raise _refusal(reason, view, desk.tz)
    await _check_visit(db, view, session_id, desk, today, actor)
    staff_id = actor.id if actor.kind == "staff" else None
    if not await queries.use(db, view.id, today=today, branch_id=desk.id, staff_id=staff_id, now=now):
        fresh = await queries.by_id(db, view.id)
        assert fresh is not None
        view = coupons.view_of(fresh)
        reason = coupons.reason_for(fresh[0], today=today, branch_id=desk.id)
        # Only a concurrent redeemer can make the UPDATE miss a coupon that now reads as valid.
        raise _refusal("already_redeemed" if reason == "valid" else reason, view, desk.tz)
    redemption_id = await queries.add_redemption(
        db, coupon_id=view.id, session_id=session_id, branch_id=desk.id, staff_id=staff_id, now=now
    )
    if redemption_id is None:  # the unique index: it stands on this visit already (the use taken rolls back)
        raise Conflict("already_applied", "This coupon is already on this visit's invoice.")
    record = await invoicing.refresh_session_invoice(db, session_id, actor=actor, now=now)
    discount = invoicing.coupon_discount(record, redemption_id)
    fresh = await queries.by_id(db, view.id)
    assert fresh is not None
    view = coupons.view_of(fresh)
    audit.record(
        db, actor, "coupon.redeemed", "coupon", view.id,
        {"code_hint": view.code_hint, "branch_id": desk.id, "title": view.title, "session_id": session_id,
         "redemption_id": redemption_id, "invoice_id": record.id, "discount": str(discount), "uses": view.uses},
    )  # fmt: skip
    return Redeemed(view, redemption_id, session_id, record.id, discount, record.currency)


async def undo_redemption(
    db: Db, redemption_id: int, *, actor: Actor, reason: str, now: datetime | None = None
) -> coupons.CouponView:
    """Take back a redemption made by mistake: its use is given back and its line leaves the visit's invoice.

    Refused (409) once the invoice is final (``invoice_closed``) or the visit is over (``session_closed``), and for
    a redemption already undone (``already_undone``); the row stays, with who undid it, when and why.
    """
    now = now or datetime.now(UTC)
    reason = reason.strip()
    if not 1 <= len(reason) <= coupons.MAX_NOTE:
        raise Invalid("invalid_reason", f"Say why, in 1 to {coupons.MAX_NOTE} characters.")
    found = await queries.lock_redemption(db, redemption_id)
    if found is None or found.session_id is None:
        raise NotFound("not_found", "There is no such redemption.")
    session_id, coupon_id = found.session_id, found.coupon_id
    await invoicing.lock_open_session(db, session_id, actor)  # 404 for another branch's visit
    found = await queries.lock_redemption(db, redemption_id)
    assert found is not None
    if found.undone_at is not None:
        raise Conflict("already_undone", "This redemption was already undone.")
    await queries.lock_coupon(db, coupon_id)
    staff_id = actor.id if actor.kind == "staff" else None
    await queries.mark_undone(db, redemption_id, staff_id=staff_id, reason=reason, now=now)
    await queries.give_back(db, coupon_id)
    record = await invoicing.refresh_session_invoice(db, session_id, actor=actor, now=now)
    row = await queries.by_id(db, coupon_id)
    assert row is not None
    view = coupons.view_of(row)
    audit.record(
        db, actor, "coupon.redemption_undone", "coupon", coupon_id,
        {"code_hint": view.code_hint, "redemption_id": redemption_id, "session_id": session_id,
         "invoice_id": record.id, "reason": reason, "uses": view.uses},
    )  # fmt: skip
    return view
