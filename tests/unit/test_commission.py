"""Doctor and manager commission on a session's examinations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from booking_core.domain.commission import CommissionRule, commission_for, session_commissions
from booking_core.domain.invoice import ExaminationLine
from booking_core.domain.money import NegativeAmountError, PrecisionError

D = Decimal


def percent(value: str) -> CommissionRule:
    return CommissionRule("percent", D(value))


def fixed(value: str) -> CommissionRule:
    return CommissionRule("fixed", D(value))


@pytest.mark.parametrize(
    ("rule", "line_amount", "quantity", "currency", "expected"),
    [
        (percent("10"), D("150000"), 1, "IDR", "15000"),  # 10% × 150,000
        (percent("12.5"), D("33333"), 1, "IDR", "4167"),  # 12.5% × 33,333 = 4,166.625 → 4,167
        (percent("30"), D("200000"), 2, "IDR", "60000"),  # percent ignores quantity: 30% × 200,000
        (fixed("25000"), D("200000"), 2, "IDR", "50000"),  # 25,000 × 2
        (percent("0"), D("150000"), 1, "IDR", "0"),
        (percent("15"), D("45.50"), 1, "USD", "6.83"),  # 15% × 45.50 = 6.825 → 6.83 (HALF_UP)
        (fixed("7.50"), D("99.99"), 3, "USD", "22.50"),  # 7.50 × 3
        (fixed("7.5"), D("10.00"), 1, "USD", "7.50"),  # quantized to cents
    ],
)
def test_commission_for_a_line(
    rule: CommissionRule, line_amount: Decimal, quantity: int, currency: str, expected: str
) -> None:
    assert format(commission_for(rule, line_amount, quantity, currency), "f") == expected


def test_a_session_pays_doctor_and_manager_per_line() -> None:
    lines = [
        # consult 150,000: doctor 30% = 45,000; manager 5% = 7,500
        (ExaminationLine(1, "General consultation", D("150000")), percent("30"), percent("5")),
        # blood 2 × 100,000: doctor fixed 20,000 × 2 = 40,000; no manager rule
        (ExaminationLine(2, "Blood test", D("100000"), quantity=2), fixed("20000"), None),
        # ECG 75,000: no doctor rule; manager fixed 2,500
        (ExaminationLine(5, "ECG", D("75000")), None, fixed("2500")),
    ]
    # doctor 45,000 + 40,000 = 85,000; manager 7,500 + 2,500 = 10,000
    assert session_commissions(lines, "IDR") == (D("85000"), D("10000"))


def test_a_usd_session_rounds_each_line_before_summing() -> None:
    lines = [
        # 15% × 45.50 = 6.825 → 6.83, twice (two lines, rounded each)
        (ExaminationLine(3, "Chest X-ray", D("45.50")), percent("15"), None),
        (ExaminationLine(3, "Chest X-ray", D("45.50")), percent("15"), None),
        # manager: 2.5% × (3 × 12.50 = 37.50) = 0.9375 → 0.94
        (ExaminationLine(4, "Wound dressing", D("12.50"), quantity=3), None, percent("2.5")),
    ]
    # doctor 6.83 + 6.83 = 13.66 (not 13.65 from 15% × 91.00)
    doctor, manager = session_commissions(lines, "USD")
    assert (format(doctor, "f"), format(manager, "f")) == ("13.66", "0.94")


def test_a_session_without_rules_pays_nothing() -> None:
    doctor, manager = session_commissions([(ExaminationLine(1, "Consult", D("80.00")), None, None)], "USD")
    assert (format(doctor, "f"), format(manager, "f")) == ("0.00", "0.00")
    assert session_commissions([], "IDR") == (D("0"), D("0"))


def test_a_negative_commission_is_refused() -> None:
    with pytest.raises(NegativeAmountError, match="must not be negative"):
        fixed("-1000")
    with pytest.raises(NegativeAmountError):
        percent("-5")


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: percent("120"), ValueError, "between 0 and 100"),
        (lambda: CommissionRule("bonus", D("1")), ValueError, "'percent' or 'fixed'"),  # type: ignore[arg-type]
        (lambda: CommissionRule("fixed", 1500.0), TypeError, "float"),  # type: ignore[arg-type]
        (lambda: commission_for(fixed("1500.50"), D("150000"), 1, "IDR"), PrecisionError, "IDR has no minor"),
        (lambda: commission_for(percent("10"), D("-1"), 1, "IDR"), NegativeAmountError, "line amount"),
        (lambda: commission_for(percent("10"), D("100"), 0, "IDR"), ValueError, "at least 1"),
        (lambda: commission_for(percent("10"), D("100"), 1, "XYZ"), ValueError, "'XYZ'"),
        (
            lambda: session_commissions([(ExaminationLine(1, "Consult", D("1.5")), percent("1"), None)], "IDR"),
            PrecisionError,
            "1.5 is not a valid amount",
        ),
    ],
)
def test_invalid_commission_inputs_are_refused(make: object, error: type[Exception], message: str) -> None:
    assert callable(make)
    with pytest.raises(error, match=message):
        make()
