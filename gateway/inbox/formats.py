"""Helpers every staff page shares: times and money as staff read them (in the branch's time zone), and values
read from a query, form or path leniently (a malformed one is None, or "not found" for a path id; never an error)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from aiohttp import web

from booking_core.domain.money import format_money
from booking_core.services.errors import NotFound


def local(value: datetime, tz: str) -> datetime:
    return value.astimezone(ZoneInfo(tz))


def hhmm(value: datetime, tz: str) -> str:
    return local(value, tz).strftime("%H:%M")


def long_day(value: date) -> str:
    return f"{value:%A} {value.day} {value:%B %Y}"


def when(value: datetime, tz: str) -> str:
    """``Mon 1 Dec 2026, 10:00`` in the branch's time."""
    at = local(value, tz)
    return f"{at:%a} {at.day} {at:%b %Y}, {at:%H:%M}"


def money(amount: str | Decimal, currency: str) -> str:
    return format_money(Decimal(str(amount)), currency)


#: Ids are 32-bit in the database; a longer number is nobody's id.
MAX_ID = 2**31 - 1


def as_int(raw: str | None) -> int | None:
    value = int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 12 else None
    return value if value is not None and 0 < value <= MAX_ID else None


def route_id(request: web.Request, name: str) -> int:
    """An id from the path (routes only match digits); one too large for any row is "not found"."""
    value = as_int(request.match_info[name])
    if value is None:
        raise NotFound("not_found", "There is no such page.")
    return value


#: Years a date typed into a URL or form may have (anything else is a typo or a probe, never a clinic day).
YEARS = range(2000, 2200)


def as_date(raw: str | None) -> date | None:
    try:
        value = date.fromisoformat(raw) if raw and len(raw) <= 10 else None
    except ValueError:
        return None
    return value if value is not None and value.year in YEARS else None


def as_instant(raw: str | None) -> datetime | None:
    """An ISO time with its offset (what the grid's links carry); anything else is None."""
    try:
        value = datetime.fromisoformat(raw) if raw and len(raw) < 40 else None
    except ValueError:
        return None
    return value if value is not None and value.utcoffset() is not None and value.year in YEARS else None


def as_wall_time(raw: str | None, tz: str) -> datetime | None:
    """A ``datetime-local`` field (``2026-12-01T12:00``) read as the branch's wall time."""
    try:
        value = datetime.fromisoformat(raw) if raw and len(raw) < 40 else None
    except ValueError:
        return None
    if value is None or value.year not in YEARS:
        return None
    return value.replace(tzinfo=ZoneInfo(tz)) if value.tzinfo is None else value
