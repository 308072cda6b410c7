"""What an invoice is built from, each part checked as it is made (amounts are ``Decimal``, counts are ints, a
percentage is 0 to 100), so the arithmetic in :mod:`.build` can trust its input."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from booking_core.domain.money import NegativeAmountError, minor_units, require_decimal

__all__ = [
    "Consumable",
    "CouponCredit",
    "ExaminationLine",
    "InsurancePlan",
    "InvoiceInput",
    "LoyaltyRedemption",
    "PackageBalance",
    "require_count",
    "require_non_negative",
    "require_percent",
]

HUNDRED = Decimal(100)


def require_count(value: object, what: str, *, minimum: int) -> int:
    # bool is an int subclass; "quantity=True" is a bug, not a quantity of one.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return value


def require_non_negative(value: object, what: str) -> Decimal:
    amount = require_decimal(value, what)
    if amount < 0:
        raise NegativeAmountError(f"{what} must not be negative, got {amount}")
    return amount


def require_percent(value: object, what: str) -> Decimal:
    pct = require_decimal(value, what)
    if not Decimal(0) <= pct <= HUNDRED:
        raise ValueError(f"{what} must be between 0 and 100 (a percentage), got {pct}")
    return pct


@dataclass(frozen=True)
class ExaminationLine:
    """One examination booked in the session, at its list price."""

    examination_id: int
    name: str
    unit_price: Decimal
    quantity: int = 1
    taxable: bool = False

    def __post_init__(self) -> None:
        require_non_negative(self.unit_price, f"unit price of {self.name!r}")
        require_count(self.quantity, f"quantity of {self.name!r}", minimum=1)


@dataclass(frozen=True)
class Consumable:
    """An extra item sold with the session (syringe, bandage...); never covered by package or insurance."""

    name: str
    unit_price: Decimal
    quantity: int = 1
    taxable: bool = False

    def __post_init__(self) -> None:
        require_non_negative(self.unit_price, f"unit price of {self.name!r}")
        require_count(self.quantity, f"quantity of {self.name!r}", minimum=1)


@dataclass(frozen=True)
class PackageBalance:
    """A patient's prepaid package: which examinations it covers and how many uses remain."""

    package_id: int
    name: str
    examination_ids: frozenset[int]
    remaining_uses: int

    def __post_init__(self) -> None:
        require_count(self.remaining_uses, f"remaining uses of package {self.name!r}", minimum=0)
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
        require_percent(self.coverage_pct, f"coverage of insurance {self.name!r}")
        require_non_negative(self.deductible_remaining, f"deductible remaining of insurance {self.name!r}")
        require_non_negative(self.annual_limit_remaining, f"annual limit remaining of insurance {self.name!r}")
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
        require_non_negative(self.value, f"value of coupon {self.title!r}")


@dataclass(frozen=True)
class LoyaltyRedemption:
    """Points the patient wants to redeem on this invoice."""

    points_available: int
    points_requested: int
    point_value: Decimal
    cap_pct: Decimal

    def __post_init__(self) -> None:
        require_count(self.points_available, "loyalty points available", minimum=0)
        require_count(self.points_requested, "loyalty points requested", minimum=0)
        value = require_non_negative(self.point_value, "loyalty point value")
        if value == 0:
            raise ValueError("loyalty point value must be greater than 0")
        require_percent(self.cap_pct, "loyalty cap")


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
