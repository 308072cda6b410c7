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

from booking_core.domain.invoice.build import build_invoice, loyalty_points_earned
from booking_core.domain.invoice.inputs import (
    Consumable,
    CouponCredit,
    ExaminationLine,
    InsurancePlan,
    InvoiceInput,
    LoyaltyRedemption,
    PackageBalance,
)
from booking_core.domain.invoice.result import Invoice, InvoiceLine, InvoiceTotals, LineKind, Step, StepKind

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
