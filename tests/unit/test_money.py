"""Money rules: minor units, HALF_UP rounding, precision checks, display."""

from __future__ import annotations

from decimal import Decimal

import pytest

from booking_core.domain.money import (
    NegativeAmountError,
    PrecisionError,
    check_precision,
    format_money,
    minor_units,
    money_str,
    quantize,
)

D = Decimal


@pytest.mark.parametrize(
    ("currency", "units"),
    [
        ("IDR", 0),  # our rule: Indonesian clinics never price in sen
        ("JPY", 0),
        ("KRW", 0),
        ("USD", 2),
        ("EUR", 2),
        ("SGD", 2),
        ("MYR", 2),
        ("AUD", 2),
        ("GBP", 2),
        ("KWD", 3),
        ("BHD", 3),
    ],
)
def test_each_currency_has_its_minor_units(currency: str, units: int) -> None:
    assert minor_units(currency) == units


def test_an_unknown_currency_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'XYZ'"):
        minor_units("XYZ")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("1500.5"), "IDR", D("1501")),  # .5 goes up
        (D("1500.49"), "IDR", D("1500")),  # .49 goes down
        (D("2.5"), "IDR", D("3")),  # half-even would give 2
        (D("3666.63"), "IDR", D("3667")),  # 11% of 33,333
        (D("0.125"), "USD", D("0.13")),  # half-even would give 0.12
        (D("0.625"), "USD", D("0.63")),  # half-even would give 0.62
        (D("12.5"), "USD", D("12.50")),
        (D("1.2345"), "KWD", D("1.235")),  # half-even would give 1.234
        (D("-2.5"), "IDR", D("-3")),  # HALF_UP rounds away from zero
    ],
)
def test_amounts_round_half_up_to_minor_units(amount: Decimal, currency: str, expected: Decimal) -> None:
    result = quantize(amount, currency)
    assert result == expected
    assert result.as_tuple().exponent == -minor_units(currency)


def test_a_rounded_zero_has_no_sign() -> None:
    assert money_str(D("-0.001"), "USD") == "0.00"


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        (D("1500.50"), "IDR", "IDR has no minor units: 1500.50 is not a valid amount"),
        (D("0.5"), "JPY", "JPY has no minor units: 0.5 is not a valid amount"),
        (D("12.505"), "USD", "USD allows 2 decimal places: 12.505 is not a valid amount"),
        (D("1.2345"), "KWD", "KWD allows 3 decimal places: 1.2345 is not a valid amount"),
    ],
)
def test_a_price_finer_than_the_currency_is_a_precision_error(amount: Decimal, currency: str, message: str) -> None:
    with pytest.raises(PrecisionError) as caught:
        check_precision(amount, currency)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("1500.00"), "IDR", "1500"),  # trailing zeros are not extra precision
        (D("1.5E+5"), "IDR", "150000"),
        (D("12.5"), "USD", "12.50"),
        (D("0"), "USD", "0.00"),
        (D("1.234"), "KWD", "1.234"),
    ],
)
def test_valid_prices_pass_the_precision_check(amount: Decimal, currency: str, expected: str) -> None:
    assert format(check_precision(amount, currency), "f") == expected


def test_a_negative_price_is_refused() -> None:
    with pytest.raises(NegativeAmountError, match="must not be negative") as caught:
        check_precision(D("-1000"), "IDR")
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("call", [quantize, check_precision, money_str, format_money])
def test_float_money_is_refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(TypeError, match="float"):
        call(1500.5, "IDR")


@pytest.mark.parametrize("value", [1500, "1500", None])
def test_only_decimal_counts_as_money(value: object) -> None:
    with pytest.raises(TypeError, match="Decimal"):
        check_precision(value, "IDR")  # type: ignore[arg-type]


def test_not_a_number_is_not_an_amount() -> None:
    with pytest.raises(ValueError, match="finite"):
        quantize(D("NaN"), "USD")


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (D("150000"), "IDR", "en", "IDR 150,000"),
        (D("150000"), "IDR", "id", "Rp150.000"),
        (D("1500.5"), "IDR", "en", "IDR 1,501"),  # rounded HALF_UP before display
        (D("-150000"), "IDR", "en", "-IDR 150,000"),
        (D("12.5"), "USD", "en", "$12.50"),
        (D("1234.5"), "USD", "en", "$1,234.50"),
        (D("1234.5"), "SGD", "en", "SGD 1,234.50"),
        (D("0.125"), "USD", "en", "$0.13"),
        (D("1.2345"), "KWD", "en", "KWD 1.235"),
        (D("1000"), "JPY", "en", "¥1,000"),
    ],
)
def test_money_is_displayed_in_the_patients_language(
    amount: Decimal, currency: str, locale: str, expected: str
) -> None:
    assert format_money(amount, currency, locale) == expected


def test_an_unknown_locale_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="locale"):
        format_money(D("1"), "USD", "xx_NOPE")
