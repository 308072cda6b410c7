"""The invoice built as you book: hand-computed tables, explanations, validation and a hypothesis property."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking_core.domain.invoice import (
    Consumable,
    CouponCredit,
    ExaminationLine,
    InsurancePlan,
    Invoice,
    InvoiceInput,
    InvoiceTotals,
    LoyaltyRedemption,
    PackageBalance,
    build_invoice,
    loyalty_points_earned,
)
from booking_core.domain.money import NegativeAmountError, PrecisionError, minor_units

D = Decimal

# The clinic's catalogue, IDR branch
CONSULT = ExaminationLine(1, "General consultation", D("150000"), taxable=True)
BLOOD = ExaminationLine(2, "Blood test", D("100000"))
BLOOD_X2 = ExaminationLine(2, "Blood test", D("100000"), quantity=2)
SMALL = ExaminationLine(4, "Wound dressing", D("33333"), taxable=True)
# ... and the Singapore branch, USD for simplicity
CONSULT_USD = ExaminationLine(1, "General consultation", D("80.00"), taxable=True)
XRAY_USD = ExaminationLine(3, "Chest X-ray", D("45.50"))
LAB_USD_X3 = ExaminationLine(2, "Blood test", D("33.33"), quantity=3, taxable=True)
DRESSING_USD = ExaminationLine(4, "Wound dressing", D("12.50"), taxable=True)

BPJS = "BPJS Gold"


def plan(pct: str, deductible: str, limit: str, examination_ids: frozenset[int] | None = None) -> InsurancePlan:
    return InsurancePlan(3, BPJS, D(pct), D(deductible), D(limit), examination_ids)


def package(uses: int, *examination_ids: int) -> PackageBalance:
    return PackageBalance(7, "Family checkup", frozenset(examination_ids), uses)


def totals(
    *,
    gross: str,
    patient_pays: str,
    package_covered: str = "0",
    insurer_pays: str = "0",
    tax: str = "0",
    consumables: str = "0",
    loyalty_discount: str = "0",
    package_uses: int = 0,
    deductible_used: str = "0",
    loyalty_points_used: int = 0,
) -> InvoiceTotals:
    # insurance_limit_used is always what the insurer pays on this invoice.
    return InvoiceTotals(
        gross=D(gross),
        package_covered=D(package_covered),
        insurer_pays=D(insurer_pays),
        tax=D(tax),
        consumables=D(consumables),
        loyalty_discount=D(loyalty_discount),
        patient_pays=D(patient_pays),
        package_uses=package_uses,
        deductible_used=D(deductible_used),
        insurance_limit_used=D(insurer_pays),
        loyalty_points_used=loyalty_points_used,
    )


@dataclass(frozen=True)
class Case:
    id: str
    inp: InvoiceInput
    expected: InvoiceTotals
    patient_by_line: tuple[str, ...]  # patient_amount of each invoice line, in order


def idr(*lines: ExaminationLine, tax: str = "0", **options: object) -> InvoiceInput:
    return InvoiceInput("IDR", D(tax), lines, **options)  # type: ignore[arg-type]


def usd(*lines: ExaminationLine, tax: str = "0", **options: object) -> InvoiceInput:
    return InvoiceInput("USD", D(tax), lines, **options)  # type: ignore[arg-type]


CASES = [
    # Package (3 uses) includes the blood test only: consult 150,000 paid, blood 100,000 covered.
    # gross 250,000; covered 100,000; patient 150,000; 1 use consumed.
    Case(
        "idr-package-covers-one-of-two-lines",
        idr(CONSULT, BLOOD, package=package(3, 2)),
        totals(gross="250000", package_covered="100000", package_uses=1, patient_pays="150000"),
        ("150000", "0"),
    ),
    # Same in USD: consult 80.00 paid, X-ray 45.50 covered. gross 125.50; patient 80.00.
    Case(
        "usd-package-covers-one-of-two-lines",
        usd(CONSULT_USD, XRAY_USD, package=package(2, 3)),
        totals(gross="125.50", package_covered="45.50", package_uses=1, patient_pays="80.00"),
        ("80.00", "0.00"),
    ),
    # Two blood tests, 1 use left: 2 × 100,000 = 200,000; one unit covered (100,000); patient 100,000.
    Case(
        "idr-package-with-one-use-left-and-quantity-two",
        idr(BLOOD_X2, package=package(1, 2)),
        totals(gross="200000", package_covered="100000", package_uses=1, patient_pays="100000"),
        ("100000",),
    ),
    # 80%, deductible 200,000 remaining. Consult 150,000: all deductible, insurer 0, 50,000 deductible left.
    # Blood 100,000: 50,000 deductible, 80% × 50,000 = 40,000 insurer. Patient 250,000 − 40,000 = 210,000.
    Case(
        "idr-deductible-spans-two-lines",
        idr(CONSULT, BLOOD, insurance=plan("80", "200000", "1000000")),
        totals(gross="250000", insurer_pays="40000", deductible_used="200000", patient_pays="210000"),
        ("150000", "60000"),
    ),
    # 70%, deductible 100.00. Consult 80.00: all deductible (20.00 left). X-ray 45.50: 20.00 deductible,
    # 70% × 25.50 = 17.85 insurer. Patient 125.50 − 17.85 = 107.65.
    Case(
        "usd-deductible-spans-two-lines",
        usd(CONSULT_USD, XRAY_USD, insurance=plan("70", "100.00", "500.00")),
        totals(gross="125.50", insurer_pays="17.85", deductible_used="100.00", patient_pays="107.65"),
        ("80.00", "27.65"),
    ),
    # 80%, limit 150,000. Consult: 80% × 150,000 = 120,000 (30,000 limit left).
    # Blood: 80% × 100,000 = 80,000 capped to 30,000.
    # Insurer 150,000; patient 250,000 − 150,000 = 100,000 (30,000 + 70,000).
    Case(
        "idr-annual-limit-caps-the-insurer",
        idr(CONSULT, BLOOD, insurance=plan("80", "0", "150000")),
        totals(gross="250000", insurer_pays="150000", patient_pays="100000"),
        ("30000", "70000"),
    ),
    # 90%, limit 50.00. Consult: 90% × 80.00 = 72.00 capped to 50.00.
    # X-ray: 90% × 45.50 = 40.95 capped to 0 (limit used up).
    # Insurer 50.00; patient 125.50 − 50.00 = 75.50.
    Case(
        "usd-annual-limit-caps-the-insurer",
        usd(CONSULT_USD, XRAY_USD, insurance=plan("90", "0", "50.00")),
        totals(gross="125.50", insurer_pays="50.00", patient_pays="75.50"),
        ("30.00", "45.50"),
    ),
    # Tax 11% after 80% insurance. Consult (taxable): 150,000 − 120,000 = 30,000 + 11% = 3,300 → 33,300.
    # Blood (not taxable): 100,000 − 80,000 = 20,000. Insurer 200,000; patient 53,300.
    Case(
        "idr-tax-only-on-taxable-lines-after-insurance",
        idr(CONSULT, BLOOD, tax="0.11", insurance=plan("80", "0", "1000000")),
        totals(gross="250000", insurer_pays="200000", tax="3300", patient_pays="53300"),
        ("33300", "20000"),
    ),
    # Tax 7% after 50% insurance. Consult: 80.00 − 40.00 = 40.00 + 2.80 = 42.80. X-ray: 45.50 − 22.75 = 22.75.
    # Insurer 62.75; patient 65.55.
    Case(
        "usd-tax-only-on-taxable-lines-after-insurance",
        usd(CONSULT_USD, XRAY_USD, tax="0.07", insurance=plan("50", "0", "1000.00")),
        totals(gross="125.50", insurer_pays="62.75", tax="2.80", patient_pays="65.55"),
        ("42.80", "22.75"),
    ),
    # Blood 100,000 (not taxable). Syringes 3 × 5,000 = 15,000 + 11% = 1,650.
    # Bandages 2 × 2,500 = 5,000, not taxable.
    # Consumables 20,000; tax 1,650; patient 100,000 + 16,650 + 5,000 = 121,650.
    Case(
        "idr-consumables-taxed-by-their-own-flag",
        idr(
            BLOOD,
            tax="0.11",
            consumables=(
                Consumable("Syringe", D("5000"), 3, True),
                Consumable("Bandage", D("2500"), 2, False),
            ),
        ),
        totals(gross="100000", consumables="20000", tax="1650", patient_pays="121650"),
        ("100000", "16650", "5000"),
    ),
    # Gloves 4 × 1.25 = 5.00 + 8% = 0.40. X-ray 45.50. Patient 50.90.
    Case(
        "usd-consumables-taxed",
        usd(XRAY_USD, tax="0.08", consumables=(Consumable("Gloves", D("1.25"), 4, True),)),
        totals(gross="45.50", consumables="5.00", tax="0.40", patient_pays="50.90"),
        ("45.50", "5.40"),
    ),
    # 2,000 points × 100 = 200,000 wanted; cap 10% × 150,000 = 15,000 → 150 points, 15,000. Patient 135,000.
    Case(
        "idr-loyalty-capped-by-cap-pct",
        idr(CONSULT, loyalty=LoyaltyRedemption(5000, 2000, D("100"), D("10"))),
        totals(gross="150000", loyalty_discount="15000", loyalty_points_used=150, patient_pays="135000"),
        ("150000", "-15000"),
    ),
    # Cap 10% × 33,333 = 3,333.3 → at most 3,333; whole points of 100: 33 points = 3,300. Patient 30,033.
    Case(
        "idr-loyalty-uses-whole-points-under-the-cap",
        idr(SMALL, loyalty=LoyaltyRedemption(5000, 2000, D("100"), D("10"))),
        totals(gross="33333", loyalty_discount="3300", loyalty_points_used=33, patient_pays="30033"),
        ("33333", "-3300"),
    ),
    # Requested 100, only 30 available: 30 × 100 = 3,000 (cap 50% = 75,000 not reached). Patient 147,000.
    Case(
        "idr-loyalty-limited-by-points-available",
        idr(CONSULT, loyalty=LoyaltyRedemption(30, 100, D("100"), D("50"))),
        totals(gross="150000", loyalty_discount="3000", loyalty_points_used=30, patient_pays="147000"),
        ("150000", "-3000"),
    ),
    # 1,000 points × 0.05 = 50.00 wanted; cap 25% × 80.00 = 20.00 → 400 points. Patient 60.00.
    Case(
        "usd-loyalty-capped-by-cap-pct",
        usd(CONSULT_USD, loyalty=LoyaltyRedemption(1000, 1000, D("0.05"), D("25"))),
        totals(gross="80.00", loyalty_discount="20.00", loyalty_points_used=400, patient_pays="60.00"),
        ("80.00", "-20.00"),
    ),
    # 12 points available of 500 requested × 0.25 = 3.00 (cap 100% not reached). Patient 42.50.
    Case(
        "usd-loyalty-limited-by-points-available",
        usd(XRAY_USD, loyalty=LoyaltyRedemption(12, 500, D("0.25"), D("100"))),
        totals(gross="45.50", loyalty_discount="3.00", loyalty_points_used=12, patient_pays="42.50"),
        ("45.50", "-3.00"),
    ),
    # Everything, IDR, tax 11%; package (1 use) includes blood; BPJS 80%, deductible 30,000, limit 150,000.
    # Consult 150,000: deductible 30,000; 80% × 120,000 = 96,000 (54,000 limit left); share 54,000;
    #   tax 11% × 54,000 = 5,940 → 59,940.
    # Blood 2 × 100,000 = 200,000: package 1 unit 100,000; 80% × 100,000 = 80,000 capped to 54,000;
    #   share 46,000 (not taxable).
    # Syringes 2 × 5,000 = 10,000 + 1,100 tax = 11,100.
    # Before loyalty 59,940 + 46,000 + 11,100 = 117,040; cap 10% = 11,704; 800 × 100 = 80,000 wanted
    #   → 117 points = 11,700. Patient 105,340.
    # Check: 105,340 + 150,000 + 100,000 + 11,700 = 367,040 = 350,000 + 7,040 + 10,000.
    Case(
        "idr-everything-together",
        idr(
            CONSULT,
            BLOOD_X2,
            tax="0.11",
            consumables=(Consumable("Syringe", D("5000"), 2, True),),
            package=package(1, 2),
            insurance=plan("80", "30000", "150000"),
            loyalty=LoyaltyRedemption(1000, 800, D("100"), D("10")),
        ),
        totals(
            gross="350000",
            package_covered="100000",
            insurer_pays="150000",
            tax="7040",
            consumables="10000",
            loyalty_discount="11700",
            patient_pays="105340",
            package_uses=1,
            deductible_used="30000",
            loyalty_points_used=117,
        ),
        ("59940", "46000", "11100", "-11700"),
    ),
    # Everything, USD, tax 8%; package (1 use) includes blood; 75%, deductible 25.00, limit 1,000.00.
    # Consult 80.00: deductible 25.00; 75% × 55.00 = 41.25; share 38.75 + 8% 3.10 = 41.85.
    # Blood 3 × 33.33 = 99.99: package 1 unit 33.33 → 66.66; 75% = 49.995 → 50.00 (HALF_UP);
    #   share 16.66 + 8% 1.3328 → 1.33 = 17.99.
    # Gloves 4 × 1.25 = 5.00 + 0.40 = 5.40.
    # Before loyalty 41.85 + 17.99 + 5.40 = 65.24; cap 15% = 9.786 → 9.78; 300 × 0.10 = 30.00 wanted
    #   → 97 points = 9.70. Patient 55.54.
    # Check: 55.54 + 91.25 + 33.33 + 9.70 = 189.82 = 179.99 + 4.83 + 5.00.
    Case(
        "usd-everything-together",
        usd(
            CONSULT_USD,
            LAB_USD_X3,
            tax="0.08",
            consumables=(Consumable("Gloves", D("1.25"), 4, True),),
            package=package(1, 2),
            insurance=plan("75", "25.00", "1000.00"),
            loyalty=LoyaltyRedemption(300, 300, D("0.10"), D("15")),
        ),
        totals(
            gross="179.99",
            package_covered="33.33",
            insurer_pays="91.25",
            tax="4.83",
            consumables="5.00",
            loyalty_discount="9.70",
            patient_pays="55.54",
            package_uses=1,
            deductible_used="25.00",
            loyalty_points_used=97,
        ),
        ("41.85", "17.99", "5.40", "-9.70"),
    ),
    # 11% × 33,333 = 3,666.63 → 3,667. Patient 37,000.
    Case(
        "idr-tax-rounds-half-up",
        idr(SMALL, tax="0.11"),
        totals(gross="33333", tax="3667", patient_pays="37000"),
        ("37000",),
    ),
    # 50% × 33,333 = 16,666.5 → insurer 16,667 (half-even would say 16,666); share 16,666;
    # tax 11% × 16,666 = 1,833.26 → 1,833. Patient 18,499.
    Case(
        "idr-insurer-share-rounds-half-up",
        idr(SMALL, tax="0.11", insurance=plan("50", "0", "1000000")),
        totals(gross="33333", insurer_pays="16667", tax="1833", patient_pays="18499"),
        ("18499",),
    ),
    # 5% × 12.50 = 0.625 → 0.63 (half-even would say 0.62). Patient 13.13.
    Case(
        "usd-tax-rounds-half-up",
        usd(DRESSING_USD, tax="0.05"),
        totals(gross="12.50", tax="0.63", patient_pays="13.13"),
        ("13.13",),
    ),
]


CASE = {c.id: c for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_invoice_matches_the_hand_computed_totals(case: Case) -> None:
    invoice = build_invoice(case.inp)
    assert invoice.totals == case.expected
    assert tuple(line.patient_amount for line in invoice.lines) == tuple(D(a) for a in case.patient_by_line)
    # Amounts carry the currency's minor units, so "12.50" stays "12.50" all the way to the API.
    payload = invoice.to_dict()
    assert [line["patient_amount"] for line in payload["lines"]] == list(case.patient_by_line)  # type: ignore[attr-defined]


def _explanations(invoice: Invoice, line_index: int) -> list[str]:
    return [step.explanation for step in invoice.lines[line_index].steps]


def test_each_line_explains_how_it_was_derived() -> None:
    invoice = build_invoice(CASE["idr-everything-together"].inp)
    assert _explanations(invoice, 0) == [
        "list price 150,000",
        "package Family checkup: does not include this examination",
        "insurance BPJS Gold: 80% of 120,000 after deductible 30,000 = 96,000",
        "tax 11% of 54,000 = 5,940",
    ]
    assert _explanations(invoice, 1) == [
        "2 × 100,000 = 200,000",
        "package Family checkup: 1 of 2 covered = 100,000 (1 use consumed, 0 left)",
        "insurance BPJS Gold: 80% of 100,000 = 80,000, capped by annual limit remaining 54,000 = 54,000",
        "not taxable",
    ]
    assert _explanations(invoice, 2) == ["2 × 5,000 = 10,000", "tax 11% of 10,000 = 1,100"]
    assert _explanations(invoice, 3) == [
        "loyalty: 117 points × 100 = 11,700 (capped at 10% of 117,040 = 11,704)",
    ]
    assert [step.kind for step in invoice.lines[1].steps] == ["price", "package", "insurance", "tax"]


def test_steps_are_signed_so_they_add_up_to_the_line() -> None:
    invoice = build_invoice(CASE["idr-everything-together"].inp)
    blood = invoice.lines[1]
    assert [step.amount for step in blood.steps] == [D("200000"), D("-100000"), D("-54000"), D("0")]
    assert blood.insurer_amount == D("54000")
    for line in invoice.lines:
        assert sum((step.amount for step in line.steps), D(0)) == line.patient_amount


def test_a_deductible_that_eats_the_whole_line_is_explained() -> None:
    invoice = build_invoice(CASE["idr-deductible-spans-two-lines"].inp)
    assert _explanations(invoice, 0)[1] == (
        "insurance BPJS Gold: patient pays 150,000 toward the deductible, nothing left to cover"
    )
    assert _explanations(invoice, 1)[1] == "insurance BPJS Gold: 80% of 50,000 after deductible 50,000 = 40,000"


def test_a_package_with_no_uses_left_says_so() -> None:
    invoice = build_invoice(idr(BLOOD, BLOOD, package=package(1, 2)))
    assert _explanations(invoice, 0)[1] == ("package Family checkup: 1 covered = 100,000 (1 use consumed, 0 left)")
    assert _explanations(invoice, 1)[1] == "package Family checkup: no uses left"
    assert invoice.totals.package_uses == 1


def test_insurance_skips_examinations_outside_the_plan_and_keeps_the_deductible() -> None:
    # The plan covers the blood test only: the consult neither uses the deductible nor gets cover.
    # Blood 100,000: deductible 10,000; 80% × 90,000 = 72,000. Patient 150,000 + 28,000 = 178,000.
    inp = idr(CONSULT, BLOOD, insurance=plan("80", "10000", "1000000", frozenset({2})))
    invoice = build_invoice(inp)
    assert _explanations(invoice, 0)[1] == "insurance BPJS Gold: does not cover this examination"
    assert invoice.totals.deductible_used == D("10000")
    assert invoice.totals.insurer_pays == D("72000")
    assert invoice.totals.patient_pays == D("178000")


def test_a_line_fully_covered_by_the_package_leaves_nothing_for_insurance() -> None:
    invoice = build_invoice(idr(BLOOD, package=package(5, 2), insurance=plan("80", "50000", "1000000")))
    assert _explanations(invoice, 0)[2] == "insurance BPJS Gold: nothing left to cover"
    assert invoice.totals.deductible_used == D("0")
    assert invoice.totals.patient_pays == D("0")


def test_the_loyalty_line_says_when_points_were_short() -> None:
    invoice = build_invoice(CASE["idr-loyalty-limited-by-points-available"].inp)
    loyalty = invoice.lines[-1]
    assert loyalty.kind == "loyalty"
    assert (loyalty.quantity, loyalty.unit_price) == (30, D("100"))
    assert loyalty.steps[0].explanation == "loyalty: 30 points × 100 = 3,000 (requested 100, 30 available)"


def test_a_coupon_for_an_examination_pays_one_unit_and_says_so() -> None:
    facial = CouponCredit(11, "Best Deal: blood test", "WXYZ", 2, D("50000"))
    invoice = build_invoice(InvoiceInput("IDR", D("0.11"), (CONSULT, BLOOD_X2), coupons=(facial,)))
    line = invoice.lines[-1]
    assert (line.kind, line.ref_id, line.name) == ("coupon", 11, "Coupon: Best Deal: blood test")
    assert line.patient_amount == D("-100000")  # one blood test at its list price, not what the coupon cost
    assert line.steps[0].explanation == (
        "coupon Best Deal: blood test (code ending WXYZ): pays 1 × Blood test at 100,000"
    )
    assert invoice.totals.coupon_discount == D("100000")
    assert invoice.totals.patient_pays == D("166500") + D("200000") - D("100000")


def test_a_coupon_pays_at_most_what_is_left_on_its_line_and_nothing_for_an_examination_not_booked() -> None:
    covered = package(1, 2)  # the package pays the first blood test
    first = CouponCredit(1, "Blood test", "AAAA", 2, D("0"))
    second = CouponCredit(2, "Blood test", "BBBB", 2, D("0"))
    missing = CouponCredit(3, "X-ray", "CCCC", 3, D("0"))
    invoice = build_invoice(
        InvoiceInput("IDR", D("0.11"), (BLOOD_X2,), package=covered, coupons=(first, second, missing))
    )
    amounts = [line.patient_amount for line in invoice.lines if line.kind == "coupon"]
    assert amounts == [D("-100000"), D("0"), D("0")]
    explanations = [line.steps[0].explanation for line in invoice.lines if line.kind == "coupon"]
    assert explanations[1].endswith("pays 1 × Blood test at 100,000, capped at what is left to pay on it 0")
    assert explanations[2].endswith("this visit has none of the examination it is for")
    assert invoice.totals.patient_pays == 0


def test_a_voucher_is_worth_what_was_paid_capped_at_what_is_left_and_loyalty_comes_after() -> None:
    voucher = CouponCredit(5, "Voucher", "VVVV", None, D("500000"))
    points = LoyaltyRedemption(points_available=1000, points_requested=1000, point_value=D("100"), cap_pct=D("50"))
    invoice = build_invoice(InvoiceInput("IDR", D("0.11"), (CONSULT,), coupons=(voucher,), loyalty=points))
    coupon = next(line for line in invoice.lines if line.kind == "coupon")
    assert coupon.patient_amount == D("-166500")
    assert coupon.steps[0].explanation.endswith(
        "worth 500,000, what was paid for it, capped at what is left to pay 166,500"
    )
    assert invoice.totals.loyalty_discount == 0 and invoice.totals.patient_pays == 0


def test_the_invoice_converts_to_plain_json() -> None:
    invoice = build_invoice(CASE["usd-everything-together"].inp)
    payload = invoice.to_dict()
    assert json.loads(json.dumps(payload)) == payload
    assert payload["currency"] == "USD"
    assert payload["totals"] == {
        "gross": "179.99",
        "package_covered": "33.33",
        "insurer_pays": "91.25",
        "tax": "4.83",
        "consumables": "5.00",
        "loyalty_discount": "9.70",
        "patient_pays": "55.54",
        "package_uses": 1,
        "deductible_used": "25.00",
        "insurance_limit_used": "91.25",
        "loyalty_points_used": 97,
        "coupon_discount": "0.00",
    }
    lab = payload["lines"][1]  # type: ignore[index]
    assert lab["kind"] == "examination"
    assert lab["ref_id"] == 2
    assert lab["unit_price"] == "33.33"
    assert [s["amount"] for s in lab["steps"]] == ["99.99", "-33.33", "-50.00", "1.33"]
    assert lab["insurer_amount"] == "50.00"


def test_idr_amounts_are_whole_rupiah_in_json() -> None:
    payload = build_invoice(idr(CONSULT)).to_dict()
    assert payload["totals"]["patient_pays"] == "150000"  # type: ignore[index]
    assert payload["lines"][0]["steps"][0] == {  # type: ignore[index]
        "kind": "price",
        "amount": "150000",
        "explanation": "list price 150,000",
    }


# ----------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("inp", "message"),
    [
        (
            idr(ExaminationLine(1, "Consult", D("1500.50"))),
            "IDR has no minor units: 1500.50 is not a valid amount",
        ),
        (usd(ExaminationLine(1, "Consult", D("12.505"))), "USD allows 2 decimal places: 12.505"),
        (idr(BLOOD, consumables=(Consumable("Syringe", D("0.5")),)), "IDR has no minor units: 0.5"),
        (idr(BLOOD, insurance=plan("80", "100.5", "1000")), "IDR has no minor units: 100.5"),
        (usd(XRAY_USD, insurance=plan("80", "0", "10.001")), "USD allows 2 decimal places: 10.001"),
        (idr(BLOOD, loyalty=LoyaltyRedemption(10, 10, D("0.5"), D("10"))), "IDR has no minor units: 0.5"),
    ],
)
def test_amounts_finer_than_the_currency_are_refused(inp: InvoiceInput, message: str) -> None:
    with pytest.raises(PrecisionError, match=message.replace(".", r"\.")):
        build_invoice(inp)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ExaminationLine(1, "Consult", D("-150000")),
        lambda: Consumable("Syringe", D("-1")),
        lambda: plan("80", "-1", "1000"),
        lambda: plan("80", "0", "-1000"),
    ],
)
def test_negative_amounts_are_refused(make: object) -> None:
    assert callable(make)
    with pytest.raises(NegativeAmountError, match="must not be negative"):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: ExaminationLine(1, "Consult", 150000.0),  # type: ignore[arg-type]
        lambda: Consumable("Syringe", 0.5),  # type: ignore[arg-type]
        lambda: InvoiceInput("USD", 0.11, ()),  # type: ignore[arg-type]
        lambda: InsurancePlan(3, BPJS, 80.0, D("0"), D("0")),  # type: ignore[arg-type]
        lambda: LoyaltyRedemption(1, 1, 0.1, D("10")),  # type: ignore[arg-type]
        lambda: loyalty_points_earned(D("100"), 10.0),  # type: ignore[arg-type]
    ],
)
def test_float_input_is_refused(make: object) -> None:
    assert callable(make)
    with pytest.raises(TypeError, match="float"):
        make()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ExaminationLine(1, "Consult", D("1"), quantity=0),
            "quantity of 'Consult' must be at least 1",
        ),
        (lambda: Consumable("Syringe", D("1"), quantity=-2), "quantity of 'Syringe' must be at least 1"),
        (lambda: InvoiceInput("USD", D("1.1"), ()), "tax rate must be a fraction between 0 and 1"),
        (lambda: InvoiceInput("USD", D("-0.01"), ()), "tax rate must be a fraction between 0 and 1"),
        (lambda: InvoiceInput("XYZ", D("0"), ()), "unknown currency 'XYZ'"),
        (lambda: plan("100.5", "0", "0"), "coverage of insurance 'BPJS Gold' must be between 0 and 100"),
        (lambda: plan("-1", "0", "0"), "coverage of insurance 'BPJS Gold' must be between 0 and 100"),
        (lambda: LoyaltyRedemption(1, 1, D("0"), D("10")), "point value must be greater than 0"),
        (lambda: LoyaltyRedemption(1, 1, D("1"), D("101")), "loyalty cap must be between 0 and 100"),
        (lambda: LoyaltyRedemption(-1, 1, D("1"), D("10")), "points available must be at least 0"),
        (lambda: PackageBalance(7, "Checkup", frozenset({1}), -1), "remaining uses .* must be at least 0"),
    ],
)
def test_nonsense_inputs_are_refused_with_a_clear_message(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=message):
        make()


def test_a_boolean_is_not_a_quantity() -> None:
    with pytest.raises(TypeError, match="quantity"):
        ExaminationLine(1, "Consult", D("1"), quantity=True)


# --------------------------------------------------------------------------------------------- loyalty earned


@pytest.mark.parametrize(
    ("paid", "earn_per", "points"),
    [
        (D("105340"), D("10000"), 10),  # 10.534 → 10
        (D("9999"), D("10000"), 0),
        (D("10000"), D("10000"), 1),
        (D("55.54"), D("1.00"), 55),
        (D("0"), D("1.00"), 0),
    ],
)
def test_points_are_earned_per_full_amount_paid(paid: Decimal, earn_per: Decimal, points: int) -> None:
    assert loyalty_points_earned(paid, earn_per) == points


def test_earning_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="earn_per"):
        loyalty_points_earned(D("100"), D("0"))


# ------------------------------------------------------------------------------------------------- property

CURRENCIES = ("IDR", "USD", "KWD")


@st.composite
def invoice_inputs(draw: st.DrawFn) -> InvoiceInput:
    currency = draw(st.sampled_from(CURRENCIES))
    exp = -minor_units(currency)

    def money(max_units: int) -> Decimal:
        return D(draw(st.integers(0, max_units))).scaleb(exp)

    def pct() -> Decimal:
        return D(draw(st.integers(0, 10000))).scaleb(-2)  # 0.00 .. 100.00 %

    lines = tuple(
        ExaminationLine(
            draw(st.integers(1, 4)),
            "Examination",
            money(5_000_000),
            quantity=draw(st.integers(1, 4)),
            taxable=draw(st.booleans()),
        )
        for _ in range(draw(st.integers(0, 5)))
    )
    consumables = tuple(
        Consumable("Consumable", money(100_000), draw(st.integers(1, 5)), draw(st.booleans()))
        for _ in range(draw(st.integers(0, 3)))
    )
    pkg = None
    if draw(st.booleans()):
        ids = frozenset(draw(st.sets(st.integers(1, 4))))
        pkg = PackageBalance(1, "Package", ids, draw(st.integers(0, 6)))
    insurance = None
    if draw(st.booleans()):
        covered = draw(st.none() | st.frozensets(st.integers(1, 4)))
        insurance = InsurancePlan(1, "Plan", pct(), money(3_000_000), money(20_000_000), covered)
    loyalty = None
    if draw(st.booleans()):
        loyalty = LoyaltyRedemption(
            draw(st.integers(0, 100_000)),
            draw(st.integers(0, 100_000)),
            money(10_000) + D(1).scaleb(exp),
            pct(),
        )
    coupons = tuple(
        CouponCredit(n, "Coupon", "WXYZ", draw(st.none() | st.integers(1, 5)), money(1_000_000))
        for n in range(draw(st.integers(0, 3)))
    )
    tax_rate = D(draw(st.integers(0, 10000))).scaleb(-4)  # 0 .. 1
    return InvoiceInput(currency, tax_rate, lines, consumables, pkg, insurance, loyalty, coupons)


@settings(max_examples=300, deadline=None)
@given(invoice_inputs())
def test_every_amount_is_accounted_for(inp: InvoiceInput) -> None:
    invoice = build_invoice(inp)
    t = invoice.totals
    # Money in: list prices, tax (examinations' and consumables') and consumables before tax.
    # Money out: what the patient, the insurer, the package, the coupons and the loyalty points pay.
    paid = t.patient_pays + t.insurer_pays + t.package_covered + t.coupon_discount + t.loyalty_discount
    assert paid == t.gross + t.tax + t.consumables
    assert t.patient_pays >= 0
    assert t.insurance_limit_used == t.insurer_pays
    for line in invoice.lines:
        assert sum((s.amount for s in line.steps), D(0)) == line.patient_amount
        if line.kind not in ("loyalty", "coupon"):
            assert line.patient_amount >= 0
            assert line.insurer_amount >= 0
    exp = -minor_units(inp.currency)
    for amount in (t.gross, t.insurer_pays, t.tax, t.patient_pays, t.loyalty_discount, t.deductible_used):
        assert amount.as_tuple().exponent == exp
    if inp.package is None:
        assert t.package_uses == 0
        assert t.package_covered == 0
    else:
        assert 0 <= t.package_uses <= inp.package.remaining_uses
    if inp.insurance is None:
        assert t.insurer_pays == t.deductible_used == 0
    else:
        assert t.insurer_pays <= inp.insurance.annual_limit_remaining
        assert t.deductible_used <= inp.insurance.deductible_remaining
    for credit, line in zip(inp.coupons, (x for x in invoice.lines if x.kind == "coupon"), strict=True):
        prices = [x.unit_price for x in inp.lines if x.examination_id == credit.examination_id]
        worth = credit.value if credit.examination_id is None else (prices[0] if prices else D(0))
        assert 0 <= -line.patient_amount <= worth  # a coupon never gives more than it is worth
    if inp.loyalty is None:
        assert t.loyalty_discount == t.loyalty_points_used == 0
    else:
        before = t.patient_pays + t.loyalty_discount
        assert t.loyalty_discount <= before * inp.loyalty.cap_pct / 100
        assert t.loyalty_points_used <= min(inp.loyalty.points_available, inp.loyalty.points_requested)
        assert t.loyalty_discount == t.loyalty_points_used * inp.loyalty.point_value
