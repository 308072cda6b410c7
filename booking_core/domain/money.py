"""Money rules: ``Decimal`` amounts in a currency's minor units.

Every amount in Frontdesk is a :class:`~decimal.Decimal`; floats are refused outright because a float price
has already lost cents before we ever see it. Each currency has a number of minor units (decimal places) taken
from the small table below, and all rounding is ROUND_HALF_UP to those units.

IDR is deliberately 0 here although ISO 4217 lists 2: clinics in Indonesia never price in sen, so an IDR price
with decimals is a data-entry error, not a valid amount.
"""

from __future__ import annotations

import copy
import re
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext
from typing import Final

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_symbol

__all__ = [
    "MINOR_UNITS",
    "MONEY_CONTEXT",
    "NegativeAmountError",
    "PrecisionError",
    "check_precision",
    "format_money",
    "minor_units",
    "money_str",
    "quantize",
    "require_decimal",
]

# Minor units per ISO-4217 code (our clinic rules, see the module docstring for IDR).
MINOR_UNITS: Final[dict[str, int]] = {
    # no minor units
    "IDR": 0,
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    # two decimal places
    "USD": 2,
    "EUR": 2,
    "SGD": 2,
    "MYR": 2,
    "AUD": 2,
    "NZD": 2,
    "GBP": 2,
    "CAD": 2,
    "CHF": 2,
    "HKD": 2,
    "CNY": 2,
    "THB": 2,
    "PHP": 2,
    "INR": 2,
    "TWD": 2,
    "AED": 2,
    "SAR": 2,
    "BND": 2,
    # three decimal places
    "KWD": 3,
    "BHD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}

# A fixed arithmetic context so results never depend on whatever the caller did to the thread's context.
# 50 significant digits is far beyond any clinic bill; the traps turn silent nonsense into errors.
MONEY_CONTEXT: Final[Context] = Context(
    prec=50, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow]
)


class PrecisionError(ValueError):
    """An amount has more decimal places than its currency allows (e.g. IDR 1500.50)."""


class NegativeAmountError(ValueError):
    """A price or other amount that must not be negative is negative."""


def require_decimal(value: object, what: str = "amount") -> Decimal:
    """Return ``value`` if it is a finite ``Decimal``; floats and everything else are a ``TypeError``."""
    if isinstance(value, float):
        raise TypeError(f"{what} must be a Decimal, not float ({value!r}); floats cannot hold money exactly")
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__} ({value!r})")
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, not {value}")
    return value


def minor_units(currency: str) -> int:
    """Number of decimal places used by ``currency`` (an upper-case ISO-4217 code)."""
    try:
        return MINOR_UNITS[currency]
    except (KeyError, TypeError):
        raise ValueError(f"unknown currency {currency!r}: add it to MINOR_UNITS with its minor units") from None


def _exponent(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` ROUND_HALF_UP to the minor units of ``currency`` (IDR 1500.5 → 1501)."""
    require_decimal(amount)
    with localcontext(MONEY_CONTEXT):
        result = amount.quantize(_exponent(currency), rounding=ROUND_HALF_UP)
    # -0 would render as "-0"; a zero amount has no sign.
    return result.copy_abs() if result.is_zero() else result


def check_precision(amount: Decimal, currency: str, *, what: str = "price") -> Decimal:
    """Validate an input amount: a non-negative ``Decimal`` no finer than the currency's minor units.

    Raises ``TypeError`` for non-``Decimal`` input, :class:`NegativeAmountError` for negative amounts and
    :class:`PrecisionError` for too many decimals. Trailing zeros are fine (IDR ``Decimal("1500.00")``
    is 1500).
    Returns the amount quantized to the currency's minor units.
    """
    require_decimal(amount, what)
    units = minor_units(currency)
    if amount < 0:
        raise NegativeAmountError(f"{what} must not be negative: {amount} {currency}")
    exact = quantize(amount, currency)
    if exact != amount:
        if units == 0:
            raise PrecisionError(f"{currency} has no minor units: {amount} is not a valid amount")
        places = "1 decimal place" if units == 1 else f"{units} decimal places"
        raise PrecisionError(f"{currency} allows {places}: {amount} is not a valid amount")
    return exact


def money_str(amount: Decimal, currency: str) -> str:
    """Plain string for JSON: quantized, fixed-point, no grouping ("150000" for IDR, "12.50" for USD)."""
    return format(quantize(amount, currency), "f")


def format_money(amount: Decimal, currency: str, locale: str = "en") -> str:
    """Human display of an amount, e.g. ``IDR 150,000`` (en) or ``Rp150.000`` (id), ``$12.50`` (en, USD).

    The locale's standard currency pattern is used with the fraction digits forced to *our* minor units
    (babel's CLDR data would print IDR with two decimals). The amount is rounded HALF_UP first, because
    babel itself rounds half-even. When the locale shows the bare ISO code, it is separated by a space.
    """
    value = quantize(amount, currency)
    units = minor_units(currency)
    try:
        loc = Locale.parse(locale)
    except (UnknownLocaleError, ValueError) as exc:
        raise ValueError(f"unknown locale {locale!r}") from exc
    pattern = copy.copy(loc.currency_formats["standard"])
    pattern.frac_prec = (units, units)
    text = format_currency(value, currency, format=pattern, locale=loc, currency_digits=False)
    if get_currency_symbol(currency, loc) == currency:
        # "IDR150,000" → "IDR 150,000"; "150,000IDR" → "150,000 IDR".
        text = re.sub(rf"{currency}(?=[\d\-])", f"{currency} ", text)
        text = re.sub(rf"(?<=\d){currency}", f" {currency}", text)
    return text
