"""What a patient's words say about a day and a time ("besok jam 3", "next monday", "3pm"), English and Indonesian.

Pure: the text, ``now`` and the branch's time zone in; a :class:`When` out. The phrases patients actually type are
read by the rules below, so they behave the same on every machine; :mod:`dateparser` handles the long tail of
absolute and relative dates ("in 2 weeks", "december 1st") that carry a number.

Semantics (all in the branch's local calendar)
---------------------------------------------
* "today"/"hari ini" is today, "tomorrow"/"besok" + 1 day, "day after tomorrow"/"lusa" + 2, "in 3 days"/"3 hari lagi"
  + 3; "next week"/"minggu depan" is the Monday of next week.
* A weekday alone ("monday", "senin", "on friday") is its next occurrence after today (1 to 7 days ahead).
  "next monday"/"senin depan" is that weekday in next week (weeks start on Monday); "this friday"/"jumat ini"
  is that weekday in this week (which may have passed).
* Dates are day-first ("1/12", "1-12-2026", "1 desember", "dec 1", "2026-12-01"); a date without a year that has
  passed this year means next year when that is under half a year away, else it has passed.
* Times: "3pm", "15:30", "jam 15.30", "pukul 9", "jam 3 sore", "10 o'clock". An hour from 1 to 6 said without
  am/pm or a part of the day means the afternoon: a clinic is not open at 3 at night.
* A day before today, or today at a time already gone, is marked ``past`` (the dialog refuses it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dateparser

__all__ = ["When", "understand"]

#: A yearless date that passed this year means next year when that is at most this far ahead.
NEXT_YEAR_WITHIN = timedelta(days=183)


@dataclass(frozen=True)
class When:
    """A day and/or a wall time in the branch's time zone; ``past`` when it lies before ``now``."""

    day: date | None = None
    at: time | None = None
    past: bool = False

    def start(self, tz: str) -> datetime | None:
        """The instant of ``day`` at ``at`` in ``tz`` (None unless both are known)."""
        if self.day is None or self.at is None:
            return None
        return datetime.combine(self.day, self.at, ZoneInfo(tz))


# --- words ------------------------------------------------------------------------------------------------

_WEEKDAYS: dict[str, int] = {
    **dict.fromkeys(("monday", "mon", "senin", "sen"), 0),
    **dict.fromkeys(("tuesday", "tue", "tues", "selasa", "sel"), 1),
    **dict.fromkeys(("wednesday", "wed", "rabu"), 2),
    **dict.fromkeys(("thursday", "thu", "thur", "thurs", "kamis"), 3),
    **dict.fromkeys(("friday", "fri", "jumat", "jum'at", "jumaat", "jum at"), 4),
    **dict.fromkeys(("saturday", "sat", "sabtu"), 5),
    **dict.fromkeys(("sunday", "sun", "minggu", "ahad"), 6),
}
_MONTHS: dict[str, int] = {
    **dict.fromkeys(("january", "jan", "januari"), 1),
    **dict.fromkeys(("february", "feb", "februari", "pebruari"), 2),
    **dict.fromkeys(("march", "mar", "maret"), 3),
    **dict.fromkeys(("april", "apr"), 4),
    **dict.fromkeys(("may", "mei"), 5),
    **dict.fromkeys(("june", "jun", "juni"), 6),
    **dict.fromkeys(("july", "jul", "juli"), 7),
    **dict.fromkeys(("august", "aug", "agustus", "agu", "agt", "ags"), 8),
    **dict.fromkeys(("september", "sep", "sept"), 9),
    **dict.fromkeys(("october", "oct", "oktober", "okt"), 10),
    **dict.fromkeys(("november", "nov", "nop", "nopember"), 11),
    **dict.fromkeys(("december", "dec", "desember", "des"), 12),
}
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "satu": 1, "dua": 2, "tiga": 3, "empat": 4, "lima": 5, "enam": 6, "tujuh": 7}  # fmt: skip


def _alternation(words: Iterable[str]) -> str:
    # Longest first, so "jumat" wins over "jum" and "tues" over "tue".
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_WEEKDAY = _alternation(_WEEKDAYS)
_MONTH = _alternation(_MONTHS)
_COUNT = r"(\d{1,2}|" + _alternation(_NUMBER_WORDS) + r")"

# Parts of the day: how they move an hour said on a 12-hour clock.
_PERIOD = r"(?:\s*(?:in the\s+)?(?P<p>am|pm|pagi|siang|sore|petang|malam|morning|afternoon|evening|night)\b)"
_PREFIX = r"(?:\b(?:jam|jm|pukul|pkl|at)|@)"
_HOUR = r"(?P<h>\d{1,2})"
_MINUTE = r"(?P<m>\d{2})"

_TIME_PATTERNS = (
    # 3pm, 3 pm, 10:30am, jam 3 pm
    re.compile(rf"(?:{_PREFIX}\s*)?\b{_HOUR}(?:[:.]{_MINUTE})?\s*(?P<p>am|pm)\b"),
    # jam 3, jam 15.30, pukul 9 pagi, at 10, jam 3 sore
    re.compile(rf"{_PREFIX}\s*{_HOUR}(?:[:.]{_MINUTE})?{_PERIOD}?"),
    # 15:30, 9.45 (not part of a date such as 1.12.2026)
    re.compile(rf"(?<![\d/.:-])\b{_HOUR}(?P<sep>[:.]){_MINUTE}\b(?![.:/-]\d){_PERIOD}?"),
    # 3 sore, 10 pagi, 4 in the afternoon
    re.compile(rf"(?<![\d/.:-])\b{_HOUR}\s+{_PERIOD}"),
    # 10 o'clock
    re.compile(rf"\b{_HOUR}\s*o'?clock\b"),
)
_NOON = re.compile(r"\b(noon|midday|tengah hari)\b")

_TODAY = re.compile(r"\b(today|hari ini|sekarang|tonight|nanti)\b")
_DAY_AFTER_TOMORROW = re.compile(r"\b((?:the )?day after tomorrow|besok lusa|lusa)\b")
_TOMORROW = re.compile(r"\b(tomorrow|tmrw|tmr|besok|besuk|esok)\b")
_IN_DAYS = re.compile(
    rf"\b(?:in|dalam)\s+{_COUNT}\s+(?:days?|hari)\b|\b{_COUNT}\s+(?:days?|hari)\s+(?:lagi|from now)\b"
)
_IN_WEEKS = re.compile(
    rf"\b(?:in|dalam)\s+{_COUNT}\s+(?:weeks?|minggu|pekan)\b|\b{_COUNT}\s+(?:weeks?|minggu|pekan)\s+(?:lagi|from now)\b"
)
# "minggu" is both Sunday and a week: "hari minggu depan" is next Sunday, "minggu depan" next week.
_NEXT_WEEK = re.compile(r"\b(next week|(?<!hari )minggu depan|pekan depan)\b")
_THIS_WEEK = re.compile(r"\b(this week|(?<!hari )minggu ini|pekan ini)\b")
_NEXT_WEEKDAY = re.compile(rf"\bnext\s+({_WEEKDAY})\b|\b(?:hari\s+)?({_WEEKDAY})\s+depan\b")
_THIS_WEEKDAY = re.compile(rf"\bthis\s+({_WEEKDAY})\b|\b(?:hari\s+)?({_WEEKDAY})\s+ini\b")
_WEEKDAY_ALONE = re.compile(rf"\b({_WEEKDAY})\b")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_NUMERIC_DATE = re.compile(r"(?<![\d:])\b(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{4}|\d{2}))?\b(?![:\d])")
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\b\.?(?:\s+(\d{{4}}))?")
_MONTH_DAY = re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}}))?")
_UNITS = re.compile(r"\b(weeks?|minggu|pekan|months?|bulan|days?|hari|years?|tahun)\b")
_DAY_OF_MONTH = re.compile(r"\b(?:tanggal|tgl|tg|the)\s*(\d{1,2})(?:st|nd|rd|th)?\b")


def _normalise(text: str) -> str:
    lowered = text.lower().replace("a.m.", "am").replace("p.m.", "pm").replace("’", "'")
    lowered = re.sub(r"[,!?;()\"]", " ", lowered)
    return re.sub(r"\s+", " ", lowered).strip()


# --- time -------------------------------------------------------------------------------------------------


def _adjust(hour: int, period: str | None, *, bare: bool) -> int:
    if period in ("am", "pagi", "morning"):
        return 0 if hour == 12 else hour
    if period in ("pm", "sore", "petang", "afternoon", "evening"):
        return hour + 12 if hour < 12 else hour
    if period == "siang":  # midday: "jam 1 siang" is 13:00, "jam 11 siang" stays 11:00
        return hour + 12 if hour < 6 else hour
    if period in ("malam", "night"):
        return hour + 12 if 6 <= hour < 12 else hour
    if bare and 1 <= hour <= 6:
        return hour + 12  # a clinic is not open at 3 in the night
    return hour


def _find_time(text: str) -> tuple[time | None, str]:
    """The time in ``text`` (if any) and the text without it."""
    if match := _NOON.search(text):
        return time(12), text[: match.start()] + " " + text[match.end() :]
    for pattern in _TIME_PATTERNS:
        for match in pattern.finditer(text):
            found = match.groupdict()
            hour, minute, period = int(found["h"]), int(found.get("m") or 0), found.get("p")
            if found.get("sep") == "." and period is None and 1 <= hour <= 31 and 1 <= minute <= 12:
                continue  # "1.12" is the first of December, not 12 past one
            if period in ("am", "pm") and not 1 <= hour <= 12:
                continue
            if period is not None and period not in ("am", "pm") and hour > 12:
                period = None  # "jam 15 sore" is simply 15:00
            # A leading zero ("01:00") is a 24-hour reading; no guessing about the afternoon.
            hour = _adjust(hour, period, bare=period is None and not found["h"].startswith("0"))
            if 0 <= hour <= 23 and 0 <= minute <= 59:
                return time(hour, minute), text[: match.start()] + " " + text[match.end() :]
    return None, text


# --- day --------------------------------------------------------------------------------------------------


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


def _yearless(today: date, month: int, day: int) -> tuple[date, bool] | None:
    """``day``/``month`` this year, or next year if it has passed and next year is near; (date, past)."""
    try:
        candidate = date(today.year, month, day)
    except ValueError:
        try:  # 29 February: the next year that has it is the one meant, if any
            candidate = date(today.year + 1, month, day)
        except ValueError:
            return None
    if candidate >= today:
        return candidate, False
    try:
        following = date(today.year + 1, month, day)
    except ValueError:
        return candidate, True
    if following - today <= NEXT_YEAR_WITHIN:
        return following, False
    return candidate, True


def _dated(today: date, year: int | None, month: int, day: int) -> tuple[date, bool] | None:
    if year is None:
        return _yearless(today, month, day)
    if year < 100:
        year += 2000
    try:
        found = date(year, month, day)
    except ValueError:
        return None
    return found, found < today


def _week_start(today: date) -> date:
    return today - timedelta(days=today.weekday())


def _find_day(text: str, today: date, base: datetime) -> tuple[date, bool] | None:
    """The day in ``text`` and whether it has passed; None when no day is named."""
    if match := _ISO_DATE.search(text):
        return _dated(today, int(match[1]), int(match[2]), int(match[3]))
    if match := _NUMERIC_DATE.search(text):
        return _dated(today, int(match[3]) if match[3] else None, int(match[2]), int(match[1]))
    if match := _DAY_MONTH.search(text):
        return _dated(today, int(match[3]) if match[3] else None, _MONTHS[match[2]], int(match[1]))
    if match := _MONTH_DAY.search(text):
        return _dated(today, int(match[3]) if match[3] else None, _MONTHS[match[1]], int(match[2]))
    if _DAY_AFTER_TOMORROW.search(text):
        return today + timedelta(days=2), False
    if _TOMORROW.search(text):
        return today + timedelta(days=1), False
    if _TODAY.search(text):
        return today, False
    if re.search(r"\b(yesterday|kemarin|kemaren)\b", text):
        return today - timedelta(days=1), True
    if match := _IN_DAYS.search(text):
        return today + timedelta(days=_count(match[1] or match[2])), False
    if match := _IN_WEEKS.search(text):
        return today + timedelta(weeks=_count(match[1] or match[2])), False
    if _NEXT_WEEK.search(text):
        return _week_start(today) + timedelta(days=7), False
    if _THIS_WEEK.search(text):
        return today, False
    if match := _NEXT_WEEKDAY.search(text):
        weekday = _WEEKDAYS[match[1] or match[2]]
        return _week_start(today) + timedelta(days=7 + weekday), False
    if match := _THIS_WEEKDAY.search(text):
        found = _week_start(today) + timedelta(days=_WEEKDAYS[match[1] or match[2]])
        return found, found < today
    if match := _WEEKDAY_ALONE.search(text):
        ahead = (_WEEKDAYS[match[1]] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead), False
    if match := _DAY_OF_MONTH.search(text):
        return _day_of_month(today, int(match[1]))
    # The long tail ("in 2 weeks", "2 minggu lagi"): only a number with a unit of time, as "may", "2" or "jam 25"
    # alone make dateparser guess wildly.
    if re.search(r"\d", text) and _UNITS.search(text):
        parsed = dateparser.parse(
            text,
            languages=["en", "id"],
            settings={
                "RELATIVE_BASE": base,
                "PREFER_DATES_FROM": "future",
                "DATE_ORDER": "DMY",
                "RETURN_AS_TIMEZONE_AWARE": False,
            },
        )
        if parsed is not None:
            return parsed.date(), parsed.date() < today
    return None


def _day_of_month(today: date, day: int) -> tuple[date, bool] | None:
    """ "tanggal 5": this month's 5th, or next month's once this month's has passed."""
    for months_ahead in (0, 1, 2):
        month_index = today.month - 1 + months_ahead
        year, month = today.year + month_index // 12, month_index % 12 + 1
        try:
            found = date(year, month, day)
        except ValueError:
            continue
        if found >= today:
            return found, False
    return None


# --- public -----------------------------------------------------------------------------------------------


def understand(text: str, *, now: datetime, tz: str) -> When | None:
    """The day and/or time ``text`` names, relative to ``now`` in ``tz``; None when it names neither.

    >>> from datetime import UTC
    >>> understand("besok jam 3", now=datetime(2026, 11, 25, 3, tzinfo=UTC), tz="Asia/Jakarta")
    When(day=datetime.date(2026, 11, 26), at=datetime.time(15, 0), past=False)
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(ZoneInfo(tz))
    today = local.date()
    cleaned = _normalise(text)
    if not cleaned:
        return None
    at, rest = _find_time(cleaned)
    found = _find_day(rest, today, local.replace(tzinfo=None))
    if found is None:
        return When(at=at) if at is not None else None
    day, past = found
    if not past and at is not None and day == today:
        past = datetime.combine(day, at, local.tzinfo) <= local
    return When(day=day, at=at, past=past)
