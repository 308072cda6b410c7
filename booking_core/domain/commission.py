"""Doctor and manager commission on the examinations of a session.

Commission is earned on the line's gross amount (list price × quantity), independent of how the patient's
share was paid (package, insurance, loyalty): the doctor performed the examination either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Literal, TypeAlias

from booking_core.domain.invoice import ExaminationLine
from booking_core.domain.money import (
    MONEY_CONTEXT,
    NegativeAmountError,
    check_precision,
    quantize,
    require_decimal,
)

__all__ = ["CommissionKind", "CommissionRule", "commission_for", "session_commissions"]

CommissionKind: TypeAlias = Literal["percent", "fixed"]

_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class CommissionRule:
    """A commission rule.

    ``percent``: ``value`` % (0..100) of the line's gross amount; ``fixed``: ``value`` per unit of quantity.
    """

    kind: CommissionKind
    value: Decimal

    def __post_init__(self) -> None:
        if self.kind not in ("percent", "fixed"):
            raise ValueError(f"commission kind must be 'percent' or 'fixed', got {self.kind!r}")
        value = require_decimal(self.value, "commission value")
        if value < 0:
            raise NegativeAmountError(f"commission value must not be negative, got {value}")
        if self.kind == "percent" and value > _HUNDRED:
            raise ValueError(f"a percent commission must be between 0 and 100, got {value}")


def commission_for(rule: CommissionRule, line_amount: Decimal, quantity: int, currency: str) -> Decimal:
    """Commission for one line: ``value`` % of ``line_amount`` (its gross) or ``value`` × ``quantity``.

    Quantized ROUND_HALF_UP to the currency's minor units. A fixed value must itself be a valid amount of
    ``currency`` (:class:`~booking_core.domain.money.PrecisionError` otherwise).
    """
    amount = check_precision(line_amount, currency, what="line amount")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise TypeError(f"quantity must be an int, not {type(quantity).__name__}")
    if quantity < 1:
        raise ValueError(f"quantity must be at least 1, got {quantity}")
    with localcontext(MONEY_CONTEXT):
        if rule.kind == "percent":
            return quantize(amount * rule.value / _HUNDRED, currency)
        fixed = check_precision(rule.value, currency, what="fixed commission")
        return quantize(fixed * quantity, currency)


def session_commissions(
    lines: Sequence[tuple[ExaminationLine, CommissionRule | None, CommissionRule | None]],
    currency: str,
) -> tuple[Decimal, Decimal]:
    """Total ``(doctor, manager)`` commission for a session's examination lines.

    Each entry is ``(line, doctor_rule, manager_rule)``; a ``None`` rule earns nothing on that line. Each
    line's commission is rounded on its own, then summed, so the totals match a per-line statement.
    """
    doctor_total = quantize(Decimal(0), currency)
    manager_total = quantize(Decimal(0), currency)
    with localcontext(MONEY_CONTEXT):
        for line, doctor_rule, manager_rule in lines:
            unit_price = check_precision(line.unit_price, currency, what=f"unit price of {line.name!r}")
            gross = unit_price * line.quantity
            if doctor_rule is not None:
                doctor_total += commission_for(doctor_rule, gross, line.quantity, currency)
            if manager_rule is not None:
                manager_total += commission_for(manager_rule, gross, line.quantity, currency)
    return doctor_total, manager_total
