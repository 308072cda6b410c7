"""What patients write about days and times, in English and Indonesian, read in the branch's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking_core.domain.dates import When, understand

JAKARTA = "Asia/Jakarta"
# Wednesday 25 November 2026, 10:00 in Jakarta (03:00 UTC).
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
WED = date(2026, 11, 25)


def day(offset: int) -> date:
    return date.fromordinal(WED.toordinal() + offset)


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("besok jam 3", When(day(1), time(15))),
        ("besok jam 15.30", When(day(1), time(15, 30))),
        ("tomorrow", When(day(1))),
        ("Tomorrow at 3pm", When(day(1), time(15))),
        ("besok", When(day(1))),
        ("lusa", When(day(2))),
        ("day after tomorrow", When(day(2))),
        ("today", When(WED)),
        ("hari ini jam 4 sore", When(WED, time(16))),
        ("next monday", When(day(5))),
        ("senin depan", When(day(5))),
        ("monday", When(day(5))),
        ("senin", When(day(5))),
        ("kamis", When(day(1))),
        ("hari minggu", When(day(4))),
        ("next week", When(day(5))),
        ("minggu depan", When(day(5))),
        ("rabu depan jam 10", When(day(7), time(10))),
        ("next friday", When(day(9))),
        ("jumat ini", When(day(2))),
        ("in 3 days", When(day(3))),
        ("3 hari lagi", When(day(3))),
        ("dalam dua hari", When(day(2))),
        ("1 december", When(date(2026, 12, 1))),
        ("1 Desember", When(date(2026, 12, 1))),
        ("2 desember jam 9", When(date(2026, 12, 2), time(9))),
        ("dec 3rd", When(date(2026, 12, 3))),
        ("1/12", When(date(2026, 12, 1))),
        ("1.12", When(date(2026, 12, 1))),
        ("01/12/2026", When(date(2026, 12, 1))),
        ("2026-12-01", When(date(2026, 12, 1))),
        ("tanggal 3", When(date(2026, 12, 3))),
        ("tanggal 30", When(date(2026, 11, 30))),
        ("5 january", When(date(2027, 1, 5))),
        ("in 2 weeks", When(date(2026, 12, 9))),
        ("2 minggu lagi", When(date(2026, 12, 9))),
        ("dalam 1 bulan", When(date(2026, 12, 25))),
    ],
)
def test_days_are_understood_relative_to_now_in_the_branch_zone(said: str, expected: When) -> None:
    assert understand(said, now=NOW, tz=JAKARTA) == expected


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("3pm", time(15)),
        ("3 PM", time(15)),
        ("10am", time(10)),
        ("10:30 a.m.", time(10, 30)),
        ("12pm", time(12)),
        ("noon", time(12)),
        ("jam 15.30", time(15, 30)),
        ("15:30", time(15, 30)),
        ("pukul 09.00", time(9)),
        ("jam 3", time(15)),  # an hour from 1 to 6 alone is the afternoon
        ("jam 9", time(9)),
        ("jam 3 sore", time(15)),
        ("jam 10 pagi", time(10)),
        ("jam 1 siang", time(13)),
        ("jam 7 malam", time(19)),
        ("at 4", time(16)),
        ("4 in the afternoon", time(16)),
        ("10 o'clock", time(10)),
        ("01:00", time(1)),  # a leading zero is a 24-hour reading
    ],
)
def test_times_without_a_day_leave_the_day_open(said: str, expected: time) -> None:
    assert understand(said, now=NOW, tz=JAKARTA) == When(at=expected)


@pytest.mark.parametrize(
    "said", ["yesterday", "kemarin", "1 november", "20/11", "this monday", "senin ini", "today at 9am", "2025-12-01"]
)
def test_days_and_times_already_gone_are_marked_past(said: str) -> None:
    found = understand(said, now=NOW, tz=JAKARTA)
    assert found is not None and found.past


def test_today_later_on_is_not_past() -> None:
    assert understand("today 11:00", now=NOW, tz=JAKARTA) == When(WED, time(11))


@pytest.mark.parametrize("said", ["", "hello", "Budi Santoso", "ok", "2", "may", "a", "31/2", "jam 25", "13pm"])
def test_words_that_name_no_day_or_time_give_nothing(said: str) -> None:
    assert understand(said, now=NOW, tz=JAKARTA) is None


def test_the_branch_zone_decides_which_day_tomorrow_is() -> None:
    late_evening_utc = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)  # already Thursday 01:00 in Jakarta
    assert understand("tomorrow", now=late_evening_utc, tz=JAKARTA) == When(date(2026, 11, 27))
    assert understand("tomorrow", now=late_evening_utc, tz="Europe/London") == When(date(2026, 11, 26))


def test_a_day_and_time_give_the_local_start() -> None:
    found = understand("besok jam 3", now=NOW, tz=JAKARTA)
    assert found is not None
    assert found.start(JAKARTA) == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert When(day(1)).start(JAKARTA) is None


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        understand("tomorrow", now=datetime(2026, 11, 25, 10), tz=JAKARTA)


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_any_text_gives_a_when_or_nothing_never_an_error(said: str) -> None:
    found = understand(said, now=NOW, tz=JAKARTA)
    assert found is None or found.day is not None or found.at is not None
