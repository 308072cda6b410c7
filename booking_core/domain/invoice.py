"""The invoice built as you book: pure arithmetic, data in, breakdown out.

Each examination line is resolved in a fixed order, and every step is recorded on the line with its amount and
a sentence saying how it was derived, so staff can answer "why do I pay this?" from the invoice alone:

1. ``price``     list price = unit price × quantity.
2. ``package``   a prepaid package covers whole units while uses remain (one use per unit, in line order).
3. ``insurance`` on what is left: the patient first pays toward the remaining deductible, the insurer
   pays ``coverage_pct`` % of the rest, capped by the annual limit remaining; deductible and limit carry
   across lines (only lines the plan covers touch them).
4. ``tax``       branch tax rate on the patient's remaining share of a taxable line.

Consumables follow as their own lines (``consumable`` step + ``tax``), never covered by package or insurance.
Best Deal coupons redeemed on the visit come next, one ``coupon`` line each: a coupon for an examination pays one
unit of it (its list price, capped at what the patient still owes on that line); a coupon tied to no examination
is worth what the patient paid for it, capped at what is left to pay. A loyalty redemption comes last, as its own
line, capped at ``cap_pct`` % of everything the patient owes before it.

Sign convention: a step's ``amount`` is signed so that the steps of a line add up to the line's
``patient_amount``: ``price``, ``consumable`` and ``tax`` are positive; ``package``, ``insurance``,
``coupon`` and ``loyalty`` are negative (or zero). Totals in :class:`InvoiceTotals` are all non-negative magnitudes.

Rounding: every step's amount is quantized ROUND_HALF_UP to the currency's minor units as it is computed
(insurer share and tax are the only steps that can produce sub-unit values), and later steps work on those
rounded figures. Because totals are sums of already-rounded amounts, the identity

    patient_pays + insurer_pays + package_covered + coupon_discount + loyalty_discount == gross + tax + consumables

holds exactly (``tax`` includes the consumables' tax, ``consumables`` is their pre-tax amount). The loyalty
cap is a bound, not a charge, so it is rounded *down* to minor units; the discount is whole points × point
value, which is exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Literal, TypeAlias

from booking_core.domain.money import (
    MONEY_CONTEXT,
    NegativeAmountError,
    check_precision,
    minor_units,
    money_str,
    quantize,
    require_decimal,
)

__all__ = [
    "Consumable",
    "CouponCredit",
    "ExaminationLine",
    "InsurancePlan",
    "Invoice",
    "InvoiceInput",
    "InvoiceLine",
    "InvoiceTotals",
    "LineKind",
    "LoyaltyRedemption",
    "PackageBalance",
    "Step",
    "StepKind",
    "build_invoice",
    "loyalty_points_earned",
]

StepKind: TypeAlias = Literal["price", "package", "insurance", "tax", "consumable", "coupon", "loyalty"]
LineKind: TypeAlias = Literal["examination", "consumable", "coupon", "loyalty"]

_HUNDRED = Decimal(100)


def _require_count(value: object, what: str, *, minimum: int) -> int:
    # bool is an int subclass; "quantity=True" is a bug, not a quantity of one.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return value


def _require_non_negative(value: object, what: str) -> Decimal:
    amount = require_decimal(value, what)
    if amount < 0:
        raise NegativeAmountError(f"{what} must not be negative, got {amount}")
    return amount


def _require_percent(value: object, what: str) -> Decimal:
    pct = require_decimal(value, what)
    if not Decimal(0) <= pct <= _HUNDRED:
        raise ValueError(f"{what} must be between 0 and 100 (a percentage), got {pct}")
    return pct


# --------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ExaminationLine:
    """One examination booked in the session, at its list price."""

    examination_id: int
    name: str
    unit_price: Decimal
    quantity: int = 1
    taxable: bool = False

    def __post_init__(self) -> None:
        _require_non_negative(self.unit_price, f"unit price of {self.name!r}")
        _require_count(self.quantity, f"quantity of {self.name!r}", minimum=1)


@dataclass(frozen=True)
class Consumable:
    """An extra item sold with the session (syringe, bandage...); never covered by package or insurance."""

    name: str
    unit_price: Decimal
    quantity: int = 1
    taxable: bool = False

    def __post_init__(self) -> None:
        _require_non_negative(self.unit_price, f"unit price of {self.name!r}")
        _require_count(self.quantity, f"quantity of {self.name!r}", minimum=1)


@dataclass(frozen=True)
class PackageBalance:
    """A patient's prepaid package: which examinations it covers and how many uses remain."""

    package_id: int
    name: str
    examination_ids: frozenset[int]
    remaining_uses: int

    def __post_init__(self) -> None:
        _require_count(self.remaining_uses, f"remaining uses of package {self.name!r}", minimum=0)
        object.__setattr__(self, "examination_ids", frozenset(self.examination_ids))


@dataclass(frozen=True)
class InsurancePlan:
    """The patient's insurance as it stands before this invoice (deductible and limit still remaining)."""

    plan_id: int
    name: str
    coverage_pct: Decimal
    deductible_remaining: Decimal
    annual_limit_remaining: Decimal
    examination_ids: frozenset[int] | None = None  # None: the plan covers every examination

    def __post_init__(self) -> None:
        _require_percent(self.coverage_pct, f"coverage of insurance {self.name!r}")
        _require_non_negative(self.deductible_remaining, f"deductible remaining of insurance {self.name!r}")
        _require_non_negative(self.annual_limit_remaining, f"annual limit remaining of insurance {self.name!r}")
        if self.examination_ids is not None:
            object.__setattr__(self, "examination_ids", frozenset(self.examination_ids))


@dataclass(frozen=True)
class CouponCredit:
    """A Best Deal coupon redeemed on this visit (``redemption_id`` names the redemption, kept as the line's ref).

    ``examination_id`` set: it pays one unit of that examination. None: it is worth ``value`` (what was paid for it).
    """

    redemption_id: int
    title: str
    code_hint: str
    examination_id: int | None
    value: Decimal

    def __post_init__(self) -> None:
        _require_non_negative(self.value, f"value of coupon {self.title!r}")


@dataclass(frozen=True)
class LoyaltyRedemption:
    """Points the patient wants to redeem on this invoice."""

    points_available: int
    points_requested: int
    point_value: Decimal
    cap_pct: Decimal

    def __post_init__(self) -> None:
        _require_count(self.points_available, "loyalty points available", minimum=0)
        _require_count(self.points_requested, "loyalty points requested", minimum=0)
        value = _require_non_negative(self.point_value, "loyalty point value")
        if value == 0:
            raise ValueError("loyalty point value must be greater than 0")
        _require_percent(self.cap_pct, "loyalty cap")


@dataclass(frozen=True)
class InvoiceInput:
    """Everything the invoice needs; ``tax_rate`` is a fraction (``Decimal("0.11")`` for 11 %)."""

    currency: str
    tax_rate: Decimal
    lines: tuple[ExaminationLine, ...]
    consumables: tuple[Consumable, ...] = ()
    package: PackageBalance | None = None
    insurance: InsurancePlan | None = None
    loyalty: LoyaltyRedemption | None = None
    coupons: tuple[CouponCredit, ...] = ()

    def __post_init__(self) -> None:
        minor_units(self.currency)  # unknown currency → ValueError naming it
        rate = require_decimal(self.tax_rate, "tax rate")
        if not Decimal(0) <= rate <= Decimal(1):
            raise ValueError(f"tax rate must be a fraction between 0 and 1 (0.11 for 11%), got {rate}")
        # Accept any sequence from callers but keep the frozen value hashable and immutable.
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "consumables", tuple(self.consumables))
        object.__setattr__(self, "coupons", tuple(self.coupons))


# -------------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Step:
    """One derivation step of an invoice line; ``amount`` is signed (see the module docstring)."""

    kind: StepKind
    amount: Decimal
    explanation: str


@dataclass(frozen=True)
class InvoiceLine:
    """A line of the invoice with the steps that produced its patient and insurer amounts.

    For the loyalty line, ``quantity`` is the number of points used and ``unit_price`` the value of a point; for a
    coupon line, ``ref_id`` is the redemption and ``unit_price`` the discount.
    """

    kind: LineKind
    ref_id: int | None
    name: str
    quantity: int
    unit_price: Decimal
    steps: tuple[Step, ...]
    patient_amount: Decimal
    insurer_amount: Decimal


@dataclass(frozen=True)
class InvoiceTotals:
    """Invoice totals; every amount is a non-negative magnitude in the invoice currency."""

    gross: Decimal  # examinations at list price
    package_covered: Decimal
    insurer_pays: Decimal
    tax: Decimal  # examinations' and consumables' tax
    consumables: Decimal  # consumables before tax
    loyalty_discount: Decimal
    patient_pays: Decimal
    package_uses: int
    deductible_used: Decimal
    insurance_limit_used: Decimal
    loyalty_points_used: int
    coupon_discount: Decimal = Decimal(0)


@dataclass(frozen=True)
class Invoice:
    """The resolved invoice."""

    currency: str
    lines: tuple[InvoiceLine, ...]
    totals: InvoiceTotals

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able dict; amounts are strings in minor units ("150000" IDR, "12.50" USD)."""
        cur = self.currency
        t = self.totals
        return {
            "currency": cur,
            "lines": [
                {
                    "kind": line.kind,
                    "ref_id": line.ref_id,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price": money_str(line.unit_price, cur),
                    "steps": [
                        {"kind": s.kind, "amount": money_str(s.amount, cur), "explanation": s.explanation}
                        for s in line.steps
                    ],
                    "patient_amount": money_str(line.patient_amount, cur),
                    "insurer_amount": money_str(line.insurer_amount, cur),
                }
                for line in self.lines
            ],
            "totals": {
                "gross": money_str(t.gross, cur),
                "package_covered": money_str(t.package_covered, cur),
                "insurer_pays": money_str(t.insurer_pays, cur),
                "tax": money_str(t.tax, cur),
                "consumables": money_str(t.consumables, cur),
                "loyalty_discount": money_str(t.loyalty_discount, cur),
                "patient_pays": money_str(t.patient_pays, cur),
                "package_uses": t.package_uses,
                "deductible_used": money_str(t.deductible_used, cur),
                "insurance_limit_used": money_str(t.insurance_limit_used, cur),
                "loyalty_points_used": t.loyalty_points_used,
                "coupon_discount": money_str(t.coupon_discount, cur),
            },
        }


# ------------------------------------------------------------------------------------------------- building


def _pct(value: Decimal) -> str:
    """80 → "80", 12.50 → "12.5" (no exponent notation)."""
    return format(value.normalize(), "f")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Builder:
    """Walks the lines once, carrying package uses, deductible and limit from line to line."""

    def __init__(self, inp: InvoiceInput) -> None:
        self.inp = inp
        self.cur = inp.currency
        self.uses_left = inp.package.remaining_uses if inp.package else 0
        self.deductible_left = Decimal(0)
        self.limit_left = Decimal(0)
        if inp.insurance is not None:
            self.deductible_left = check_precision(
                inp.insurance.deductible_remaining, self.cur, what="insurance deductible remaining"
            )
            self.limit_left = check_precision(
                inp.insurance.annual_limit_remaining, self.cur, what="insurance annual limit remaining"
            )

    def q(self, amount: Decimal) -> Decimal:
        return quantize(amount, self.cur)

    def fmt(self, amount: Decimal) -> str:
        return format(self.q(amount), ",f")

    def _price_step(self, kind: StepKind, unit_price: Decimal, quantity: int) -> Step:
        gross = self.q(unit_price * quantity)
        if quantity == 1:
            explanation = f"list price {self.fmt(gross)}"
        else:
            explanation = f"{quantity} × {self.fmt(unit_price)} = {self.fmt(gross)}"
        return Step(kind, gross, explanation)

    def _tax_step(self, taxable: bool, base: Decimal) -> Step:
        if not taxable:
            return Step("tax", self.q(Decimal(0)), "not taxable")
        rate = self.inp.tax_rate
        tax = self.q(base * rate)
        return Step("tax", tax, f"tax {_pct(rate * _HUNDRED)}% of {self.fmt(base)} = {self.fmt(tax)}")

    def _package_step(self, line: ExaminationLine) -> Step | None:
        package = self.inp.package
        if package is None:
            return None
        label = f"package {package.name}"
        if line.examination_id not in package.examination_ids:
            return Step("package", self.q(Decimal(0)), f"{label}: does not include this examination")
        units = min(line.quantity, self.uses_left)
        if units == 0:
            return Step("package", self.q(Decimal(0)), f"{label}: no uses left")
        self.uses_left -= units
        covered = self.q(line.unit_price * units)
        which = "covered" if units == line.quantity else f"of {line.quantity} covered"
        explanation = (
            f"{label}: {units} {which} = {self.fmt(covered)} ({_plural(units, 'use')} consumed, {self.uses_left} left)"
        )
        return Step("package", self.q(-covered), explanation)

    def _insurance_step(self, line: ExaminationLine, remaining: Decimal) -> tuple[Step | None, Decimal]:
        """Return the step and the deductible paid on this line."""
        plan = self.inp.insurance
        if plan is None:
            return None, Decimal(0)
        label = f"insurance {plan.name}"
        zero = self.q(Decimal(0))
        if plan.examination_ids is not None and line.examination_id not in plan.examination_ids:
            return Step("insurance", zero, f"{label}: does not cover this examination"), zero
        if remaining == 0:
            return Step("insurance", zero, f"{label}: nothing left to cover"), zero
        deductible = min(remaining, self.deductible_left)
        self.deductible_left -= deductible
        rest = remaining - deductible
        if rest == 0:
            explanation = f"{label}: patient pays {self.fmt(deductible)} toward the deductible, nothing left to cover"
            return Step("insurance", zero, explanation), deductible
        share = self.q(rest * plan.coverage_pct / _HUNDRED)
        limit_before = self.limit_left
        insurer = min(share, limit_before)
        self.limit_left -= insurer
        explanation = f"{label}: {_pct(plan.coverage_pct)}% of {self.fmt(rest)}"
        if deductible:
            explanation += f" after deductible {self.fmt(deductible)}"
        explanation += f" = {self.fmt(share)}"
        if insurer < share:
            explanation += f", capped by annual limit remaining {self.fmt(limit_before)} = {self.fmt(insurer)}"
        return Step("insurance", self.q(-insurer), explanation), deductible

    def examination(self, line: ExaminationLine) -> tuple[InvoiceLine, Decimal]:
        """Resolve one examination line; also return the deductible it consumed."""
        check_precision(line.unit_price, self.cur, what=f"unit price of {line.name!r}")
        price = self._price_step("price", line.unit_price, line.quantity)
        steps = [price]
        remaining = price.amount
        package = self._package_step(line)
        if package is not None:
            steps.append(package)
            remaining += package.amount
        insurance, deductible = self._insurance_step(line, remaining)
        insurer = Decimal(0)
        if insurance is not None:
            steps.append(insurance)
            insurer = -insurance.amount
            remaining += insurance.amount
        tax = self._tax_step(line.taxable, remaining)
        steps.append(tax)
        invoice_line = InvoiceLine(
            kind="examination",
            ref_id=line.examination_id,
            name=line.name,
            quantity=line.quantity,
            unit_price=self.q(line.unit_price),
            steps=tuple(steps),
            patient_amount=self.q(remaining + tax.amount),
            insurer_amount=self.q(insurer),
        )
        return invoice_line, deductible

    def consumable(self, item: Consumable) -> InvoiceLine:
        check_precision(item.unit_price, self.cur, what=f"unit price of {item.name!r}")
        price = self._price_step("consumable", item.unit_price, item.quantity)
        tax = self._tax_step(item.taxable, price.amount)
        return InvoiceLine(
            kind="consumable",
            ref_id=None,
            name=item.name,
            quantity=item.quantity,
            unit_price=self.q(item.unit_price),
            steps=(price, tax),
            patient_amount=self.q(price.amount + tax.amount),
            insurer_amount=self.q(Decimal(0)),
        )

    def _coupon_worth(self, credit: CouponCredit, owed: list[Decimal]) -> tuple[Decimal, str]:
        """A coupon tied to no examination: worth what was paid for it, taken off the lines in order."""
        value = check_precision(credit.value, self.cur, what=f"value of coupon {credit.title!r}")
        left = _sum(owed)
        discount = min(value, left)
        explanation = f"worth {self.fmt(value)}, what was paid for it"
        if discount < value:
            explanation += f", capped at what is left to pay {self.fmt(left)}"
        remaining = discount
        for position, amount in enumerate(owed):
            taken = min(amount, remaining)
            owed[position] -= taken
            remaining -= taken
        return discount, explanation

    def _coupon_for_examination(
        self, examination_id: int, owed: list[Decimal], lines: list[InvoiceLine]
    ) -> tuple[Decimal, str]:
        """A coupon for an examination pays one unit of its first line, at most what is still owed on it."""
        for position, line in enumerate(lines):
            if line.kind == "examination" and line.ref_id == examination_id:
                discount = min(line.unit_price, owed[position])
                explanation = f"pays 1 × {line.name} at {self.fmt(line.unit_price)}"
                if discount < line.unit_price:
                    explanation += f", capped at what is left to pay on it {self.fmt(owed[position])}"
                owed[position] -= discount
                return discount, explanation
        return Decimal(0), "this visit has none of the examination it is for"

    def coupon(self, credit: CouponCredit, owed: list[Decimal], lines: list[InvoiceLine]) -> InvoiceLine:
        """One coupon line; ``owed`` is what the patient still owes on each of ``lines`` (coupons before it
        already taken off), and is reduced by this coupon's discount."""
        label = f"coupon {credit.title} (code ending {credit.code_hint})"
        if credit.examination_id is None:
            discount, explanation = self._coupon_worth(credit, owed)
        else:
            discount, explanation = self._coupon_for_examination(credit.examination_id, owed, lines)
        explanation = f"{label}: {explanation}"
        discount = self.q(discount)
        return InvoiceLine(
            kind="coupon",
            ref_id=credit.redemption_id,
            name=f"Coupon: {credit.title}",
            quantity=1,
            unit_price=discount,
            steps=(Step("coupon", self.q(-discount), explanation),),
            patient_amount=self.q(-discount),
            insurer_amount=self.q(Decimal(0)),
        )

    def loyalty(self, redemption: LoyaltyRedemption, total_before: Decimal) -> InvoiceLine:
        value = check_precision(redemption.point_value, self.cur, what="loyalty point value")
        points_wanted = min(redemption.points_requested, redemption.points_available)
        wanted = value * points_wanted
        # The cap bounds the discount, so it is rounded down: rounding must never let it grow past cap_pct %.
        cap = (total_before * redemption.cap_pct / _HUNDRED).quantize(
            Decimal(1).scaleb(-minor_units(self.cur)), rounding=ROUND_DOWN
        )
        allowed = min(wanted, cap)
        points = int(allowed // value)  # both non-negative, so // is floor: whole points only
        discount = self.q(value * points)  # exact: point value is valid in the currency
        explanation = f"loyalty: {_plural(points, 'point')} × {self.fmt(value)} = {self.fmt(discount)}"
        notes = []
        if redemption.points_requested > redemption.points_available:
            notes.append(f"requested {redemption.points_requested}, {redemption.points_available} available")
        if wanted > cap:
            notes.append(f"capped at {_pct(redemption.cap_pct)}% of {self.fmt(total_before)} = {self.fmt(cap)}")
        if notes:
            explanation += f" ({'; '.join(notes)})"
        return InvoiceLine(
            kind="loyalty",
            ref_id=None,
            name="Loyalty discount",
            quantity=points,
            unit_price=value,
            steps=(Step("loyalty", self.q(-discount), explanation),),
            patient_amount=self.q(-discount),
            insurer_amount=self.q(Decimal(0)),
        )


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, Decimal(0))


def build_invoice(inp: InvoiceInput) -> Invoice:
    """Resolve every line of ``inp`` (package → insurance → tax, then consumables, coupons, loyalty) and total it.

    Raises ``PrecisionError`` / ``NegativeAmountError`` (both ``ValueError``, from ``money``) for prices,
    and for the deductible, limit and point value, that are not valid amounts of the currency.
    """
    with localcontext(MONEY_CONTEXT):
        builder = _Builder(inp)
        exam_lines: list[InvoiceLine] = []
        deductible_used = Decimal(0)
        for line in inp.lines:
            invoice_line, deductible = builder.examination(line)
            exam_lines.append(invoice_line)
            deductible_used += deductible
        consumable_lines = [builder.consumable(item) for item in inp.consumables]

        def step_total(lines: Iterable[InvoiceLine], kind: StepKind) -> Decimal:
            return _sum(step.amount for line in lines for step in line.steps if step.kind == kind)

        lines = [*exam_lines, *consumable_lines]
        owed = [max(line.patient_amount, Decimal(0)) for line in lines]
        billed = list(lines)
        lines.extend(builder.coupon(credit, owed, billed) for credit in inp.coupons)
        total_before = _sum(line.patient_amount for line in lines)
        if inp.loyalty is not None:
            lines.append(builder.loyalty(inp.loyalty, total_before))

        package_uses = inp.package.remaining_uses - builder.uses_left if inp.package else 0
        insurer_pays = _sum(line.insurer_amount for line in lines)
        q = builder.q
        totals = InvoiceTotals(
            gross=q(step_total(exam_lines, "price")),
            package_covered=q(-step_total(exam_lines, "package")),
            insurer_pays=q(insurer_pays),
            tax=q(step_total(lines, "tax")),
            consumables=q(step_total(consumable_lines, "consumable")),
            loyalty_discount=q(-step_total(lines, "loyalty")),
            coupon_discount=q(-step_total(lines, "coupon")),
            patient_pays=q(_sum(line.patient_amount for line in lines)),
            package_uses=package_uses,
            deductible_used=q(deductible_used),
            insurance_limit_used=q(insurer_pays),
            loyalty_points_used=sum(line.quantity for line in lines if line.kind == "loyalty"),
        )
        return Invoice(currency=inp.currency, lines=tuple(lines), totals=totals)


def loyalty_points_earned(patient_paid: Decimal, earn_per: Decimal) -> int:
    """Points earned for a payment: one point per full ``earn_per`` paid (floor)."""
    paid = _require_non_negative(patient_paid, "amount paid")
    per = _require_non_negative(earn_per, "earn_per")
    if per == 0:
        raise ValueError("earn_per must be greater than 0")
    with localcontext(MONEY_CONTEXT):
        return int(paid // per)
