"""The arithmetic: every line resolved step by step in the order the package's docstring gives, then totalled."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_DOWN, Decimal, localcontext

from booking_core.domain.invoice.inputs import (
    HUNDRED,
    Consumable,
    CouponCredit,
    ExaminationLine,
    InvoiceInput,
    LoyaltyRedemption,
    require_non_negative,
)
from booking_core.domain.invoice.result import Invoice, InvoiceLine, InvoiceTotals, Step, StepKind
from booking_core.domain.money import MONEY_CONTEXT, check_precision, minor_units, quantize

__all__ = ["build_invoice", "loyalty_points_earned"]


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
        return Step("tax", tax, f"tax {_pct(rate * HUNDRED)}% of {self.fmt(base)} = {self.fmt(tax)}")

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
        share = self.q(rest * plan.coverage_pct / HUNDRED)
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
        cap = (total_before * redemption.cap_pct / HUNDRED).quantize(
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
    paid = require_non_negative(patient_paid, "amount paid")
    per = require_non_negative(earn_per, "earn_per")
    if per == 0:
        raise ValueError("earn_per must be greater than 0")
    with localcontext(MONEY_CONTEXT):
        return int(paid // per)
