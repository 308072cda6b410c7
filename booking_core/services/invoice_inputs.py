"""What a visit's invoice is built from, gathered and checked before :func:`~booking_core.domain.invoice.build_invoice`
does the arithmetic: the branch's currency and tax, examination prices, typed-in consumables (valid amounts of the
currency), the patient's package, insurance for the year and loyalty points, and the Best Deal coupons redeemed on
the visit. Nothing here writes; :mod:`booking_core.services.invoicing` stores what is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import billing as billing_queries
from booking_core.db.queries import coupons as coupon_queries
from booking_core.db.tables import Branch, Examination, SessionLine
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
)
from booking_core.domain.money import check_precision, money_str
from booking_core.services import settings
from booking_core.services.errors import Invalid

__all__ = [
    "MAX_QUANTITY",
    "MAX_UNIT_PRICE",
    "ConsumableRequest",
    "Drawn",
    "ExaminationRequest",
    "LoyaltySettings",
    "build",
    "check_currency",
    "checked_amount",
    "checked_quantity",
    "consumable_from",
    "coupon_credits",
    "loyalty_settings",
    "session_inputs",
]

#: Line quantities are SMALLINT in the database; nobody books 1000 of one examination at a desk.
MAX_QUANTITY = 999
#: A sanity bound on typed-in prices; totals must fit NUMERIC(14, 2).
MAX_UNIT_PRICE = Decimal("1000000000")
_MAX_TOTAL = Decimal("1000000000000")


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
class Drawn:
    """Which of the patient's balances an invoice was built against (ids of the rows to spend on finalise)."""

    patient_package_id: int | None = None
    patient_insurance_id: int | None = None


async def coupon_credits(db: Db, session_id: int) -> list[CouponCredit]:
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


def checked_amount(value: Decimal, currency: str, what: str) -> Decimal:
    """A typed-in amount, valid in ``currency`` (no negatives, no finer than its minor units, not absurd)."""
    if isinstance(value, Decimal) and value.is_finite() and value > MAX_UNIT_PRICE:
        raise Invalid("invalid_amount", f"{what} is larger than {money_str(MAX_UNIT_PRICE, currency)} {currency}.")
    try:
        return check_precision(value, currency, what=what)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise Invalid("invalid_amount", str(exc)) from None


def checked_quantity(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUANTITY:
        raise Invalid("invalid_quantity", f"The quantity of {what} must be a whole number from 1 to {MAX_QUANTITY}.")
    return value


def consumable_from(item: ConsumableRequest, currency: str) -> Consumable:
    name = item.name.strip()
    if not name:
        raise Invalid("invalid_name", "A consumable needs a name.")
    price = checked_amount(item.unit_price, currency, f"unit price of {name!r}")
    return Consumable(
        name=name[:120], unit_price=price, quantity=checked_quantity(item.quantity, name), taxable=item.taxable
    )


def check_currency(exam: Examination, branch: Branch) -> None:
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


async def build(
    db: Db,
    *,
    branch: Branch,
    patient_id: int | None,
    lines: Sequence[ExaminationLine],
    consumables: Sequence[Consumable],
    loyalty_points: int,
    now: datetime,
    coupons: Sequence[CouponCredit] = (),
) -> tuple[Invoice, Drawn]:
    """Gather the patient's balances and build the invoice (nothing is written)."""
    package: PackageBalance | None = None
    insurance: InsurancePlan | None = None
    loyalty: LoyaltyRedemption | None = None
    drawn = Drawn()
    if patient_id is not None:
        wanted = {line.examination_id for line in lines}
        # The package that expires first among those covering something on this invoice.
        for owned, catalog, covers in await billing_queries.usable_packages(db, patient_id, now=now):
            if covers & wanted:
                package = PackageBalance(owned.id, catalog.name, covers, owned.remaining_uses)
                drawn = Drawn(patient_package_id=owned.id)
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
            drawn = Drawn(patient_package_id=drawn.patient_package_id, patient_insurance_id=member.id)
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


def session_inputs(lines: Sequence[SessionLine]) -> tuple[list[ExaminationLine], list[Consumable]]:
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
