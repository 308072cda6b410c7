"""The calendar's day layout: attendance for a date, the rows, free cells and side-by-side blocks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from booking_core.domain.calendar import Grid, Span, attendance_on, day_grid, lanes, wall_spans

JAKARTA = "Asia/Jakarta"
MONDAY = date(2026, 11, 30)


def at(hour: int, minute: int = 0, *, day: date = MONDAY, tz: str = JAKARTA) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(tz))


def test_a_dated_override_replaces_the_weekly_pattern_and_applications_add_to_it() -> None:
    weekly = [(0, time(9), time(17)), (1, time(9), time(12))]
    assert attendance_on(MONDAY, weekly) == [(time(9), time(17))]
    assert attendance_on(MONDAY, weekly, overrides=[(None, None)]) == []  # a day off
    assert attendance_on(MONDAY, weekly, overrides=[(time(13), time(15))]) == [(time(13), time(15))]
    assert attendance_on(MONDAY, weekly, applications=[(time(18), time(20))]) == [
        (time(9), time(17)),
        (time(18), time(20)),
    ]
    assert attendance_on(MONDAY + timedelta(days=2), weekly) == []


def test_rows_cover_the_opening_hours_and_a_visit_recorded_outside_them() -> None:
    opening = wall_spans(MONDAY, JAKARTA, [(time(8), time(12))])
    grid = day_grid(MONDAY, JAKARTA, opening, 30)
    assert len(grid.rows) == 8 and grid.rows[0] == at(8) and grid.end == at(12)
    late = day_grid(MONDAY, JAKARTA, opening, 30, [Span(at(12, 40), at(13, 10))])
    assert late.end == at(13, 30)  # the rows stretch to show it, on the step
    assert day_grid(MONDAY, JAKARTA, [], 15).rows == ()


def test_a_midnight_closing_ends_the_day() -> None:
    (span,) = wall_spans(MONDAY, JAKARTA, [(time(20), time(0))])
    assert span.end == at(0, day=MONDAY + timedelta(days=1))


def test_a_dst_day_has_the_rows_of_its_real_hours() -> None:
    spring_forward = date(2026, 3, 8)  # New York: 02:00 does not exist
    opening = wall_spans(spring_forward, "America/New_York", [(time(0), time(4))])
    grid = day_grid(spring_forward, "America/New_York", opening, 60)
    assert len(grid.rows) == 3  # 00:00, 01:00, 03:00 local: three real hours


def test_blocks_are_placed_on_their_rows_and_clipped_to_the_grid() -> None:
    grid = day_grid(MONDAY, JAKARTA, wall_spans(MONDAY, JAKARTA, [(time(8), time(12))]), 15)
    assert grid.place(at(9), at(9, 30)) == (4, 2)
    assert grid.place(at(9, 10), at(9, 20)) == (4, 2)  # off the step: from the row it starts in to the one it ends in
    assert grid.place(at(7), at(8, 30)) == (0, 2)
    assert grid.place(at(13), at(14)) is None
    assert Grid((), timedelta(minutes=15)).place(at(9), at(10)) is None


def test_overlapping_blocks_share_the_column_side_by_side() -> None:
    placed = lanes(
        [("visit", Span(at(9), at(10))), ("meeting", Span(at(9, 30), at(11))), ("later", Span(at(11), at(12)))]
    )
    assert placed["visit"] == (0, 2) and placed["meeting"] == (1, 2)
    assert placed["later"] == (0, 1)


def test_times_must_carry_a_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Span(datetime(2026, 11, 30, 9), datetime(2026, 11, 30, 10, tzinfo=UTC))
