"""The invoice built as you book: preview, the session's draft kept in step with its lines, and finalising it.

The arithmetic is :func:`booking_core.domain.invoice.build_invoice`; this module gathers what it needs (branch
currency and tax, examination prices, the patient's package, insurance and loyalty points), stores the result
(``invoices`` with totals and ``breakdown``, ``invoice_lines`` with their steps) and, on completion, spends what
the invoice used.

Locks, always taken in this order so two paths never wait on each other: session → invoice → patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import billing as billing_queries
from booking_core.db.queries import coupons as coupon_queries
from booking_core.db.queries import sessions as session_queries
from booking_core.db.tables import Branch, Examination, SessionLine
from booking_core.db.tables import Invoice as InvoiceRecord
from booking_core.db.tables import Session as SessionRecord
from booking_core.domain.actors import Actor
from booking_core.domain.invoice import (
    Consumable,
    CouponCredit,
    ExaminationLine,
    InsurancePlan,
    Invoice,
    InvoiceInput,
    LoyaltyRedemption,
    PackageBalance,
    build_invoice,
    loyalty_points_earned,
)
from booking_core.domain.lifecycle import ACTIVE_STATUSES, SessionStatus
from booking_core.domain.money import check_precision, money_str
from booking_core.services import audit, settings
from booking_core.services.errors import Conflict, Forbidden, Invalid, NotFound

__all__ = [
    "LOYALTY_REQUESTED",
    "MAX_QUANTITY",
    "MAX_UNIT_PRICE",
    "ConsumableRequest",
    "ExaminationRequest",
    "InvoiceView",
    "LoyaltySettings",
    "add_line",
    "archived",
    "check_session_access",
    "coupon_discount",
    "examinations_on",
    "finalise",
    "lock_open_session",
    "loyalty_settings",
    "preview",
    "refresh_session_invoice",
    "remove_line",
    "session_invoice",
    "set_line_quantity",
    "set_loyalty_points",
    "void_draft",
]

#: Line quantities are SMALLINT in the database; nobody books 1000 of one examination at a desk.
MAX_QUANTITY = 999
#: A sanity bound on typed-in prices; totals must fit NUMERIC(14, 2).
MAX_UNIT_PRICE = Decimal("1000000000")
_MAX_TOTAL = Decimal("1000000000000")
#: Key of the redemption staff asked for, kept next to the breakdown: the breakdown itself holds what was granted,
#: which the cap may have cut, and a later refresh must ask for the original number again.
LOYALTY_REQUESTED = "loyalty_points_requested"
#: Why a coupon redeemed on a visit got its use back when the visit was cancelled.
VISIT_CANCELLED = "The visit was cancelled."


@dataclass(frozen=True)
class ExaminationRequest:
    """An examination to put on a preview, by id."""

    examination_id: int
    quantity: int = 1


@dataclass(frozen=True)
class ConsumableRequest:
    """A consumable as typed by staff (validated against the branch currency before use)."""

    name: str
    unit_price: Decimal
    quantity: int = 1
    taxable: bool = False


@dataclass(frozen=True)
class LoyaltySettings:
    """``earn_per``: amount paid per point earned; ``point_value``: what one point is worth; ``cap_pct``: the most
    of an invoice points may pay."""

    earn_per: Decimal
    point_value: Decimal
    cap_pct: Decimal


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


@dataclass(frozen=True)
class _Drawn:
    """Which of the patient's balances an invoice was built against (ids of the rows to spend on finalise)."""

    patient_package_id: int | None = None
    patient_insurance_id: int | None = None


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


async def _coupon_credits(db: Db, session_id: int) -> list[CouponCredit]:
    """The Best Deal coupons redeemed on the session (undone ones excluded), oldest first."""
    try:
        return [
            CouponCredit(
                redemption_id=redemption.id,
                title=coupon.title,
                code_hint=coupon.code_hint,
                examination_id=coupon.examination_id,
                value=coupon.price_paid,
            )
            for redemption, coupon in await coupon_queries.standing_on_session(db, session_id)
        ]
    except (TypeError, ValueError) as exc:
        raise Invalid("invalid_amount", str(exc)) from None


def _amount(value: Decimal, currency: str, what: str) -> Decimal:
    """A typed-in amount, valid in ``currency`` (no negatives, no finer than its minor units, not absurd)."""
    if isinstance(value, Decimal) and value.is_finite() and value > MAX_UNIT_PRICE:
        raise Invalid("invalid_amount", f"{what} is larger than {money_str(MAX_UNIT_PRICE, currency)} {currency}.")
    try:
        return check_precision(value, currency, what=what)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise Invalid("invalid_amount", str(exc)) from None


def _quantity(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUANTITY:
        raise Invalid("invalid_quantity", f"The quantity of {what} must be a whole number from 1 to {MAX_QUANTITY}.")
    return value


def _consumable(item: ConsumableRequest, currency: str) -> Consumable:
    name = item.name.strip()
    if not name:
        raise Invalid("invalid_name", "A consumable needs a name.")
    price = _amount(item.unit_price, currency, f"unit price of {name!r}")
    return Consumable(name=name[:120], unit_price=price, quantity=_quantity(item.quantity, name), taxable=item.taxable)


def _check_currency(exam: Examination, branch: Branch) -> None:
    if exam.currency != branch.currency:
        raise Invalid(
            "currency_mismatch",
            f"{exam.name} is priced in {exam.currency} but the branch bills in {branch.currency}.",
        )


async def loyalty_settings(db: Db) -> LoyaltySettings:
    """The clinic's loyalty rules, each missing key falling back to the default."""
    defaults = settings.DEFAULT_SETTINGS["loyalty"]
    stored = await settings.get(db, "loyalty")
    merged = {**defaults, **(stored if isinstance(stored, dict) else {})}
    return LoyaltySettings(
        earn_per=Decimal(str(merged["earn_per"])),
        point_value=Decimal(str(merged["point_value"])),
        cap_pct=Decimal(str(merged["cap_pct"])),
    )


def _this_year(branch: Branch, now: datetime) -> int:
    """Insurance years are calendar years where the clinic is (1 January starts at local midnight)."""
    return now.astimezone(ZoneInfo(branch.tz)).year


async def _build(
    db: Db,
    *,
    branch: Branch,
    patient_id: int | None,
    lines: Sequence[ExaminationLine],
    consumables: Sequence[Consumable],
    loyalty_points: int,
    now: datetime,
    coupons: Sequence[CouponCredit] = (),
) -> tuple[Invoice, _Drawn]:
    """Gather the patient's balances and build the invoice (nothing is written)."""
    package: PackageBalance | None = None
    insurance: InsurancePlan | None = None
    loyalty: LoyaltyRedemption | None = None
    drawn = _Drawn()
    if patient_id is not None:
        wanted = {line.examination_id for line in lines}
        # The package that expires first among those covering something on this invoice.
        for owned, catalog, covers in await billing_queries.usable_packages(db, patient_id, now=now):
            if covers & wanted:
                package = PackageBalance(owned.id, catalog.name, covers, owned.remaining_uses)
                drawn = _Drawn(patient_package_id=owned.id)
                break
        membership = await billing_queries.insurance_for_year(db, patient_id, _this_year(branch, now))
        # A plan in another currency cannot pay toward this bill (its deductible and limit mean other money).
        if membership is not None and membership[1].currency == branch.currency:
            member, plan = membership
            insurance = InsurancePlan(
                plan_id=plan.id,
                name=plan.name,
                coverage_pct=plan.coverage_pct,
                deductible_remaining=max(plan.deductible - member.deductible_used, Decimal(0)),
                annual_limit_remaining=max(plan.annual_limit - member.limit_used, Decimal(0)),
            )
            drawn = _Drawn(patient_package_id=drawn.patient_package_id, patient_insurance_id=member.id)
    if loyalty_points:
        if patient_id is None:
            raise Invalid("patient_required", "Loyalty points can only be redeemed for a known patient.")
        rules = await loyalty_settings(db)
        balance = await billing_queries.loyalty_balance(db, patient_id)
        try:
            loyalty = LoyaltyRedemption(
                points_available=max(balance, 0),
                points_requested=loyalty_points,
                point_value=rules.point_value,
                cap_pct=rules.cap_pct,
            )
        except (TypeError, ValueError) as exc:
            raise Invalid("invalid_setting", f"The loyalty settings are not valid: {exc}") from None
    try:
        invoice = build_invoice(
            InvoiceInput(
                currency=branch.currency,
                tax_rate=branch.tax_rate,
                lines=tuple(lines),
                consumables=tuple(consumables),
                package=package,
                insurance=insurance,
                loyalty=loyalty,
                coupons=tuple(coupons),
            )
        )
    except (TypeError, ValueError) as exc:
        # Prices or balances that are not valid amounts of the branch currency (e.g. IDR 1500.50).
        raise Invalid("invalid_amount", str(exc)) from None
    totals = invoice.totals
    if max(totals.gross, totals.consumables + totals.tax, totals.patient_pays) >= _MAX_TOTAL:
        raise Invalid("invalid_amount", "The invoice total is too large.")
    return invoice, drawn


def _session_inputs(lines: Sequence[SessionLine]) -> tuple[list[ExaminationLine], list[Consumable]]:
    exams: list[ExaminationLine] = []
    consumables: list[Consumable] = []
    try:
        for line in lines:
            if line.kind == "examination" and line.examination_id is not None:
                exams.append(
                    ExaminationLine(line.examination_id, line.name, line.unit_price, line.quantity, line.taxable)
                )
            else:
                consumables.append(Consumable(line.name, line.unit_price, line.quantity, line.taxable))
    except (TypeError, ValueError) as exc:
        raise Invalid("invalid_amount", str(exc)) from None
    return exams, consumables


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


async def _rebuild(
    db: Db, session: SessionRecord, *, loyalty_points: int | None, now: datetime
) -> tuple[InvoiceRecord, Invoice, _Drawn]:
    """(Re)build and store the session's draft invoice; the caller holds the session lock."""
    branch = await session_queries.get_branch(db, session.branch_id)
    assert branch is not None
    record = await billing_queries.lock_or_create_invoice(
        db, session_id=session.id, patient_id=session.patient_id, branch_id=branch.id, currency=branch.currency
    )
    if record.status != "draft":
        raise Conflict("invoice_closed", f"The invoice is {record.status}; it can no longer change.")
    requested = loyalty_points if loyalty_points is not None else int(record.breakdown.get(LOYALTY_REQUESTED, 0) or 0)
    exams, consumables = _session_inputs(await session_queries.lines(db, session.id))
    invoice, drawn = await _build(
        db,
        branch=branch,
        patient_id=session.patient_id,
        lines=exams,
        consumables=consumables,
        loyalty_points=requested,
        now=now,
        coupons=await _coupon_credits(db, session.id),
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
        _check_currency(exam, branch)
        exam_lines.append(
            ExaminationLine(exam.id, exam.name, exam.price, _quantity(request.quantity, exam.name), exam.taxable)
        )
    items = [_consumable(item, branch.currency) for item in consumables]
    invoice, _ = await _build(
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
    record, _, _ = await _rebuild(db, session, loyalty_points=loyalty_points, now=now or datetime.now(UTC))
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


async def add_line(
    db: Db,
    session_id: int,
    *,
    actor: Actor,
    examination_id: int | None = None,
    quantity: int = 1,
    consumable: ConsumableRequest | None = None,
    now: datetime | None = None,
) -> SessionLine:
    """Add an examination (by id, at its list price) or a consumable to an active session; refreshes the invoice."""
    if (examination_id is None) == (consumable is None):
        raise Invalid("invalid_line", "Give either an examination id or a consumable.")
    session = await _locked_session(db, session_id, actor)
    _require_open_for_changes(session)
    branch = await session_queries.get_branch(db, session.branch_id)
    assert branch is not None
    if examination_id is not None:
        exam = (await session_queries.examinations_offered(db, branch.id, [examination_id])).get(examination_id)
        if exam is None:
            raise NotFound("not_found", f"There is no examination {examination_id} at this branch.")
        _check_currency(exam, branch)
        _amount(exam.price, branch.currency, f"price of {exam.name!r}")
        values: dict[str, Any] = {
            "kind": "examination",
            "examination_id": exam.id,
            "name": exam.name,
            "unit_price": exam.price,
            "quantity": _quantity(quantity, exam.name),
            "taxable": exam.taxable,
        }
    else:
        assert consumable is not None
        item = _consumable(consumable, branch.currency)
        values = {
            "kind": "consumable",
            "examination_id": None,
            "name": item.name,
            "unit_price": item.unit_price,
            "quantity": item.quantity,
            "taxable": item.taxable,
        }
    line = await session_queries.add_line(db, session.id, values)
    record, _, _ = await _rebuild(db, session, loyalty_points=None, now=now or datetime.now(UTC))
    audit.record(
        db,
        actor,
        "session.line_added",
        "session",
        session.id,
        {
            "line_id": line.id,
            "kind": line.kind,
            "examination_id": line.examination_id,
            "name": line.name,
            "quantity": line.quantity,
            "unit_price": money_str(line.unit_price, branch.currency),
            "invoice_id": record.id,
            "patient_pays": money_str(record.patient_pays, branch.currency),
        },
    )
    return line


async def remove_line(db: Db, session_id: int, line_id: int, *, actor: Actor, now: datetime | None = None) -> None:
    """Remove a line from an active session and refresh its invoice; the last examination stays (a visit is for
    something)."""
    session = await _locked_session(db, session_id, actor)
    _require_open_for_changes(session)
    current = await session_queries.lines(db, session.id)
    target = next((line for line in current if line.id == line_id), None)
    if target is None:
        raise NotFound("not_found", f"Session {session_id} has no line {line_id}.")
    if target.kind == "examination" and sum(1 for line in current if line.kind == "examination") == 1:
        raise Conflict("last_examination", "This is the session's only examination; cancel the session instead.")
    removed = await session_queries.delete_line(db, session.id, line_id)
    assert removed is not None
    record, _, _ = await _rebuild(db, session, loyalty_points=None, now=now or datetime.now(UTC))
    audit.record(
        db,
        actor,
        "session.line_removed",
        "session",
        session.id,
        {
            "line_id": line_id,
            "kind": removed.kind,
            "name": removed.name,
            "quantity": removed.quantity,
            "invoice_id": record.id,
            "patient_pays": money_str(record.patient_pays, record.currency),
        },
    )


async def set_line_quantity(
    db: Db, session_id: int, line_id: int, quantity: int, *, actor: Actor, now: datetime | None = None
) -> SessionLine:
    """Change how many of a line an active session has (1..999) and refresh its invoice; the same number again
    changes nothing."""
    session = await _locked_session(db, session_id, actor)
    _require_open_for_changes(session)
    current = next((line for line in await session_queries.lines(db, session.id) if line.id == line_id), None)
    if current is None:
        raise NotFound("not_found", f"Session {session_id} has no line {line_id}.")
    quantity = _quantity(quantity, current.name)
    if quantity == current.quantity:
        return current
    before = current.quantity
    line = await session_queries.set_line_quantity(db, session.id, line_id, quantity)
    assert line is not None
    record, _, _ = await _rebuild(db, session, loyalty_points=None, now=now or datetime.now(UTC))
    audit.record(
        db,
        actor,
        "session.line_changed",
        "session",
        session.id,
        {
            "line_id": line_id,
            "name": line.name,
            "quantity_before": before,
            "quantity": quantity,
            "invoice_id": record.id,
            "patient_pays": money_str(record.patient_pays, record.currency),
        },
    )
    return line


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
    record, invoice, drawn = await _rebuild(db, session, loyalty_points=None, now=now)
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
    exams, consumables = _session_inputs(await session_queries.lines(db, session.id))
    invoice, _ = await _build(
        db,
        branch=branch,
        patient_id=session.patient_id,
        lines=exams,
        consumables=consumables,
        loyalty_points=0,
        now=now or datetime.now(UTC),
        coupons=await _coupon_credits(db, session.id),
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
