"""What building an invoice gives: its lines, each with the signed steps it was derived by, and the totals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeAlias

from booking_core.domain.money import money_str

__all__ = ["Invoice", "InvoiceLine", "InvoiceTotals", "LineKind", "Step", "StepKind"]

StepKind: TypeAlias = Literal["price", "package", "insurance", "tax", "consumable", "coupon", "loyalty"]
LineKind: TypeAlias = Literal["examination", "consumable", "coupon", "loyalty"]


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
