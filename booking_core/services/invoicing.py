"""The invoice built as you book: preview, the session's draft kept in step with its lines, and finalising it.

The arithmetic is :func:`booking_core.domain.invoice.build_invoice`; :mod:`booking_core.services.invoice_inputs`
gathers what it needs (branch currency and tax, examination prices, the patient's package, insurance, loyalty
points and the coupons redeemed on the visit). This module stores the result (``invoices`` with totals and
``breakdown``, ``invoice_lines`` with their steps), rebuilds it when the visit changes
(:mod:`booking_core.services.session_lines` for its lines, the coupons service for a redemption) and, on
completion, spends what the invoice used.

Locks, always taken in this order so two paths never wait on each other: session → invoice → patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import billing as billing_queries
from booking_core.db.queries import coupons as coupon_queries
from booking_core.db.queries import sessions as session_queries
from booking_core.db.tables import Invoice as InvoiceRecord
from booking_core.db.tables import Session as SessionRecord
from booking_core.domain.actors import Actor
from booking_core.domain.invoice import (
    ExaminationLine,
    Invoice,
    loyalty_points_earned,
)
from booking_core.domain.lifecycle import ACTIVE_STATUSES, SessionStatus
from booking_core.domain.money import money_str
from booking_core.services import audit
from booking_core.services.errors import Conflict, Forbidden, Invalid, NotFound
from booking_core.services.invoice_inputs import (
    ConsumableRequest,
    Drawn,
    ExaminationRequest,
    build,
    check_currency,
    checked_quantity,
    consumable_from,
    coupon_credits,
    loyalty_settings,
    session_inputs,
)

__all__ = [
    "LOYALTY_REQUESTED",
    "VISIT_CANCELLED",
    "InvoiceView",
    "archived",
    "check_session_access",
    "coupon_discount",
    "examinations_on",
    "finalise",
    "lock_open_session",
    "preview",
    "rebuild",
    "refresh_session_invoice",
    "session_invoice",
    "set_loyalty_points",
    "void_draft",
]

#: Key of the redemption staff asked for, kept next to the breakdown: the breakdown itself holds what was granted,
#: which the cap may have cut, and a later refresh must ask for the original number again.
LOYALTY_REQUESTED = "loyalty_points_requested"
#: Why a coupon redeemed on a visit got its use back when the visit was cancelled.
VISIT_CANCELLED = "The visit was cancelled."


@dataclass(frozen=True)
class InvoiceView:
    """An invoice as shown: stored (``id`` set) or built on the fly for a session that has none yet."""

    id: int | None
    session_id: int | None
    branch_id: int | None
    patient_id: int | None
    status: str
    currency: str
    breakdown: dict[str, Any]
    loyalty_points_used: int
    snapshot: dict[str, Any]
    finalised_at: datetime | None = None
    archived_at: datetime | None = None

    @classmethod
    def of(cls, record: InvoiceRecord) -> InvoiceView:
        return cls(
            id=record.id,
            session_id=record.session_id,
            branch_id=record.branch_id,
            patient_id=record.patient_id,
            status=record.status,
            currency=record.currency,
            breakdown=dict(record.breakdown or {}),
            loyalty_points_used=record.loyalty_points_used,
            snapshot=dict(record.snapshot or {}),
            finalised_at=record.finalised_at,
            archived_at=record.archived_at,
        )


# ------------------------------------------------------------------------------------------------ helpers


def check_session_access(actor: Actor, session: SessionRecord) -> None:
    """Another branch's session is 404 (never reveal it exists); a doctor may only act on their own sessions."""
    if not actor.can_see_branch(session.branch_id):
        raise NotFound("not_found", f"There is no session {session.id}.")
    if actor.kind == "staff" and actor.role == "doctor" and actor.doctor_id != session.doctor_id:
        raise Forbidden("not_your_session", "A doctor may only work on their own sessions.")


async def _locked_session(db: Db, session_id: int, actor: Actor) -> SessionRecord:
    session = await session_queries.lock_session(db, session_id)
    if session is None:
        raise NotFound("not_found", f"There is no session {session_id}.")
    check_session_access(actor, session)
    return session


def _require_open_for_changes(session: SessionRecord) -> None:
    if SessionStatus(session.status) not in ACTIVE_STATUSES:
        raise Conflict(
            "session_closed", f"The session is {session.status}; its lines and invoice can no longer change."
        )


async def lock_open_session(db: Db, session_id: int, actor: Actor) -> SessionRecord:
    """Lock a session whose invoice is about to change (a coupon on it, say): 404 when the actor may not see it,
    409 ``session_closed`` once it is completed or cancelled."""
    session = await _locked_session(db, session_id, actor)
    _require_open_for_changes(session)
    return session


async def examinations_on(db: Db, session_id: int) -> set[int]:
    """The examinations a session has lines for."""
    lines = await session_queries.lines(db, session_id)
    return {line.examination_id for line in lines if line.kind == "examination" and line.examination_id is not None}


def coupon_discount(record: InvoiceRecord, redemption_id: int) -> Decimal:
    """The discount a coupon redemption gives on a stored invoice (zero when its line is not there)."""
    for line in record.breakdown.get("lines", []):
        if line.get("kind") == "coupon" and line.get("ref_id") == redemption_id:
            return -Decimal(str(line["patient_amount"]))
    return Decimal(0)


def _line_rows(invoice: Invoice) -> list[dict[str, Any]]:
    described = invoice.to_dict()["lines"]
    assert isinstance(described, list)
    rows = []
    for position, (line, shown) in enumerate(zip(invoice.lines, described, strict=True)):
        quantity, unit_price, name = line.quantity, line.unit_price, line.name
        if line.kind == "loyalty":
            # Points can exceed a SMALLINT quantity; store the discount as one unit and say the points in the name.
            name = f"{line.name} ({line.quantity} points)"
            quantity, unit_price = 1, -line.patient_amount
        rows.append(
            {
                "position": position,
                "kind": line.kind,
                "ref_id": line.ref_id,
                "name": name[:120],
                "quantity": quantity,
                "unit_price": unit_price,
                "patient_amount": line.patient_amount,
                "insurer_amount": line.insurer_amount,
                "steps": shown["steps"],
            }
        )
    return rows


async def rebuild(
    db: Db, session: SessionRecord, *, loyalty_points: int | None, now: datetime
) -> tuple[InvoiceRecord, Invoice, Drawn]:
    """(Re)build and store the session's draft invoice; the caller holds the session lock."""
    branch = await session_queries.get_branch(db, session.branch_id)
    assert branch is not None
    record = await billing_queries.lock_or_create_invoice(
        db, session_id=session.id, patient_id=session.patient_id, branch_id=branch.id, currency=branch.currency
    )
    if record.status != "draft":
        raise Conflict("invoice_closed", f"The invoice is {record.status}; it can no longer change.")
    requested = loyalty_points if loyalty_points is not None else int(record.breakdown.get(LOYALTY_REQUESTED, 0) or 0)
    exams, consumables = session_inputs(await session_queries.lines(db, session.id))
    invoice, drawn = await build(
        db,
        branch=branch,
        patient_id=session.patient_id,
        lines=exams,
        consumables=consumables,
        loyalty_points=requested,
        now=now,
        coupons=await coupon_credits(db, session.id),
    )
    t = invoice.totals
    await billing_queries.update_invoice(
        db,
        record.id,
        {
            "currency": branch.currency,
            "gross": t.gross,
            "package_covered": t.package_covered,
            "insurer_pays": t.insurer_pays,
            "tax": t.tax,
            "consumables": t.consumables,
            "loyalty_discount": t.loyalty_discount,
            "coupon_discount": t.coupon_discount,
            "patient_pays": t.patient_pays,
            "loyalty_points_used": t.loyalty_points_used,
            "breakdown": {**invoice.to_dict(), LOYALTY_REQUESTED: requested},
        },
    )
    await billing_queries.replace_invoice_lines(db, record.id, _line_rows(invoice))
    await db.refresh(record)
    return record, invoice, drawn


# ------------------------------------------------------------------------------------------------ use cases


async def preview(
    db: Db,
    *,
    branch_id: int,
    patient_id: int | None,
    lines: Sequence[ExaminationRequest],
    consumables: Sequence[ConsumableRequest] = (),
    loyalty_points: int = 0,
    now: datetime | None = None,
) -> Invoice:
    """Build the invoice these examinations and consumables would get at the branch, without saving anything.

    Raises NotFound for an unknown branch or patient or an examination the branch does not offer, and Invalid
    (``invalid_amount``, ``invalid_quantity``, ``currency_mismatch``, ...) for input the invoice cannot take.
    """
    now = now or datetime.now(UTC)
    branch = await session_queries.get_branch(db, branch_id)
    if branch is None:
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    if patient_id is not None and await session_queries.get_patient(db, patient_id) is None:
        raise NotFound("not_found", f"There is no patient {patient_id}.")
    if isinstance(loyalty_points, bool) or not isinstance(loyalty_points, int) or loyalty_points < 0:
        raise Invalid("invalid_points", "Loyalty points must be a whole number, 0 or more.")
    offered = await session_queries.examinations_offered(db, branch.id, [r.examination_id for r in lines])
    exam_lines = []
    for request in lines:
        exam = offered.get(request.examination_id)
        if exam is None:
            raise NotFound("not_found", f"There is no examination {request.examination_id} at this branch.")
        check_currency(exam, branch)
        exam_lines.append(
            ExaminationLine(exam.id, exam.name, exam.price, checked_quantity(request.quantity, exam.name), exam.taxable)
        )
    items = [consumable_from(item, branch.currency) for item in consumables]
    invoice, _ = await build(
        db,
        branch=branch,
        patient_id=patient_id,
        lines=exam_lines,
        consumables=items,
        loyalty_points=loyalty_points,
        now=now,
    )
    return invoice


async def refresh_session_invoice(
    db: Db, session_id: int, *, actor: Actor, loyalty_points: int | None = None, now: datetime | None = None
) -> InvoiceRecord:
    """(Re)build the session's draft invoice from its lines; call it whenever the lines change.

    ``loyalty_points`` None keeps the redemption asked for before. Refused (409 ``session_closed``) once the
    session is completed or cancelled.
    """
    session = await _locked_session(db, session_id, actor)
    _require_open_for_changes(session)
    record, _, _ = await rebuild(db, session, loyalty_points=loyalty_points, now=now or datetime.now(UTC))
    return record


async def set_loyalty_points(
    db: Db, session_id: int, points: int, *, actor: Actor, now: datetime | None = None
) -> InvoiceRecord:
    """Ask to redeem ``points`` on the session's invoice (0 removes the redemption); the cap still applies."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise Invalid("invalid_points", "Loyalty points must be a whole number, 0 or more.")
    record = await refresh_session_invoice(db, session_id, actor=actor, loyalty_points=points, now=now)
    audit.record(
        db,
        actor,
        "invoice.loyalty_requested",
        "invoice",
        record.id,
        {"session_id": session_id, "points_requested": points, "points_used": record.loyalty_points_used},
    )
    return record


async def finalise(db: Db, session_id: int, *, actor: Actor, now: datetime | None = None) -> InvoiceRecord:
    """Finalise a completed session's invoice and spend what it used. Finalising twice changes nothing more.

    The invoice is rebuilt first against the patient's balances as they are now (locked), so what is spent is
    exactly what the final invoice says: package uses (guarded so they never go below zero), insurance deductible
    and limit, loyalty points redeemed (a negative ledger row) and earned on what the patient pays (a positive one).
    """
    now = now or datetime.now(UTC)
    session = await _locked_session(db, session_id, actor)
    if session.status != SessionStatus.COMPLETED:
        raise Conflict("session_not_completed", "An invoice is finalised when its session is completed.")
    existing = await billing_queries.invoice_for_session(db, session.id, lock=True)
    if existing is not None and existing.status == "final":
        return existing
    await billing_queries.lock_patient(db, session.patient_id)
    record, invoice, drawn = await rebuild(db, session, loyalty_points=None, now=now)
    t = invoice.totals
    if t.package_uses:
        assert drawn.patient_package_id is not None
        if not await billing_queries.use_package(db, drawn.patient_package_id, t.package_uses):
            raise Conflict("package_used_up", "The patient's package has no uses left for this invoice.")
    if drawn.patient_insurance_id is not None and (t.deductible_used or t.insurance_limit_used):
        await billing_queries.add_insurance_usage(
            db, drawn.patient_insurance_id, deductible=t.deductible_used, limit=t.insurance_limit_used
        )
    if t.loyalty_points_used:
        await billing_queries.add_loyalty_entry(
            db, patient_id=session.patient_id, delta=-t.loyalty_points_used, reason="redeemed", invoice_id=record.id
        )
    rules = await loyalty_settings(db)
    try:
        earned = loyalty_points_earned(t.patient_pays, rules.earn_per)
    except (TypeError, ValueError) as exc:
        raise Invalid("invalid_setting", f"The loyalty settings are not valid: {exc}") from None
    if earned:
        await billing_queries.add_loyalty_entry(
            db, patient_id=session.patient_id, delta=earned, reason="earned", invoice_id=record.id
        )
    await billing_queries.update_invoice(db, record.id, {"status": "final", "finalised_at": now})
    await db.refresh(record)
    cur = record.currency
    audit.record(
        db,
        actor,
        "invoice.finalised",
        "invoice",
        record.id,
        {
            "session_id": session.id,
            "patient_pays": money_str(t.patient_pays, cur),
            "insurer_pays": money_str(t.insurer_pays, cur),
            "package_uses": t.package_uses,
            "patient_package_id": drawn.patient_package_id,
            "deductible_used": money_str(t.deductible_used, cur),
            "insurance_limit_used": money_str(t.insurance_limit_used, cur),
            "patient_insurance_id": drawn.patient_insurance_id,
            "loyalty_points_used": t.loyalty_points_used,
            "loyalty_points_earned": earned,
        },
    )
    return record


async def void_draft(db: Db, session_id: int, *, actor: Actor, now: datetime | None = None) -> InvoiceRecord | None:
    """Void the draft invoice of a cancelled session (nothing will be billed); a final invoice is left alone.

    Coupons redeemed on the visit get their use back (the redemption is marked undone, "visit cancelled").
    """
    record = await billing_queries.invoice_for_session(db, session_id, lock=True)
    if record is None or record.status != "draft":
        return record
    await _give_back_coupons(db, session_id, actor=actor, now=now or datetime.now(UTC))
    await billing_queries.update_invoice(db, record.id, {"status": "void"})
    await db.refresh(record)
    audit.record(db, actor, "invoice.voided", "invoice", record.id, {"session_id": session_id})
    return record


async def _give_back_coupons(db: Db, session_id: int, *, actor: Actor, now: datetime) -> None:
    staff_id = actor.id if actor.kind == "staff" else None
    for redemption, coupon in await coupon_queries.standing_on_session(db, session_id):
        await coupon_queries.lock_coupon(db, coupon.id)
        await coupon_queries.mark_undone(db, redemption.id, staff_id=staff_id, reason=VISIT_CANCELLED, now=now)
        await coupon_queries.give_back(db, coupon.id)
        audit.record(
            db, actor, "coupon.redemption_undone", "coupon", coupon.id,
            {"code_hint": coupon.code_hint, "redemption_id": redemption.id, "session_id": session_id,
             "reason": VISIT_CANCELLED},
        )  # fmt: skip


async def session_invoice(db: Db, session_id: int, *, actor: Actor, now: datetime | None = None) -> InvoiceView:
    """The session's invoice; a session booked without one gets a draft built on the fly (not saved)."""
    session = await session_queries.get_session(db, session_id)
    if session is None:
        raise NotFound("not_found", f"There is no session {session_id}.")
    check_session_access(actor, session)
    record = await billing_queries.invoice_for_session(db, session.id)
    if record is not None:
        return InvoiceView.of(record)
    branch = await session_queries.get_branch(db, session.branch_id)
    assert branch is not None
    exams, consumables = session_inputs(await session_queries.lines(db, session.id))
    invoice, _ = await build(
        db,
        branch=branch,
        patient_id=session.patient_id,
        lines=exams,
        consumables=consumables,
        loyalty_points=0,
        now=now or datetime.now(UTC),
        coupons=await coupon_credits(db, session.id),
    )
    return InvoiceView(
        id=None,
        session_id=session.id,
        branch_id=branch.id,
        patient_id=session.patient_id,
        status="draft",
        currency=branch.currency,
        breakdown={**invoice.to_dict(), LOYALTY_REQUESTED: 0},
        loyalty_points_used=0,
        snapshot={},
    )


async def archived(db: Db, *, actor: Actor, limit: int = 50, offset: int = 0) -> list[InvoiceView]:
    """Invoices kept after their session was permanently deleted (owner / admin; a branch admin sees theirs)."""
    if actor.kind == "staff" and actor.role not in ("owner", "admin"):
        raise Forbidden("forbidden", "Only an owner or admin may read the invoice archive.")
    branch_id = actor.branch_id if actor.kind == "staff" else None
    rows = await billing_queries.archived_invoices(db, branch_id=branch_id, limit=limit, offset=offset)
    return [InvoiceView.of(row) for row in rows]
