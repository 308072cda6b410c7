"""The staff calendar's day: who attends when, the time rows and where each block sits (which cells are free is the
availability engine's to say: :mod:`booking_core.domain.availability`).

Pure: wall-clock windows and instants in, a layout out. The calendar service loads the rows; the page draws this.
Every instant here is timezone-aware and compared in UTC, so a day with a DST change has the right rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

__all__ = ["Grid", "Span", "attendance_on", "day_bounds", "day_grid", "lanes", "wall_spans"]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, order=True)
class Span:
    """A half-open stretch of time ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("calendar times must be timezone-aware")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    def meets(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


def _merge(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in sorted(s for s in spans if s.start < s.end):
        if merged and span.start <= merged[-1].end:
            if span.end > merged[-1].end:
                merged[-1] = Span(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged


def day_bounds(day: date, tz: str) -> Span:
    """Local midnight to the next local midnight (23 or 25 hours on a DST change)."""
    zone = ZoneInfo(tz)
    return Span(datetime.combine(day, time(0), zone), datetime.combine(day + timedelta(days=1), time(0), zone))


def wall_spans(day: date, tz: str, windows: Iterable[tuple[time, time]]) -> list[Span]:
    """Wall-clock windows on ``day`` as instants, merged; an end of 00:00 means the midnight that ends the day."""
    zone = ZoneInfo(tz)
    spans = []
    for opens, closes in windows:
        end_day = day + timedelta(days=1) if closes == time(0) else day
        spans.append(Span(datetime.combine(day, opens, zone), datetime.combine(end_day, closes, zone)))
    return _merge(spans)


def attendance_on(
    day: date,
    weekly: Iterable[tuple[int, time, time]],
    overrides: Sequence[tuple[time | None, time | None]] = (),
    applications: Iterable[tuple[time, time]] = (),
) -> list[tuple[time, time]]:
    """A doctor's wall-clock windows on ``day``, as availability reads them.

    ``weekly`` is the pattern (weekday, starts, ends); ``overrides`` are that day's dated entries, which replace
    the pattern (an entry without times is a day off); accepted schedule ``applications`` add to either.
    """
    if overrides:
        windows = [(s, e) for s, e in overrides if s is not None and e is not None]
    else:
        windows = [(s, e) for weekday, s, e in weekly if weekday == day.weekday()]
    return sorted({*windows, *applications})


@dataclass(frozen=True)
class Grid:
    """The day's rows: ``len(rows)`` steps of ``step`` from ``rows[0]``."""

    rows: tuple[datetime, ...]
    step: timedelta

    @property
    def start(self) -> datetime | None:
        return self.rows[0] if self.rows else None

    @property
    def end(self) -> datetime | None:
        return self.rows[-1] + self.step if self.rows else None

    def place(self, start: datetime, end: datetime) -> tuple[int, int] | None:
        """(first row, number of rows) a stretch covers, clipped to the grid; None when it lies outside."""
        if not self.rows:
            return None
        origin, span = self.rows[0], Span(start, end)
        first = max(0, (span.start - origin) // self.step)
        after = min(len(self.rows), -((origin - span.end) // self.step))  # ceiling division
        return (first, after - first) if after > first else None


def day_grid(day: date, tz: str, opening: Sequence[Span], step_min: int, shown: Iterable[Span] = ()) -> Grid:
    """Rows of ``step_min`` minutes covering the opening hours and anything ``shown`` that day (a visit recorded
    outside the hours still appears), aligned to the step from local midnight and kept within the day."""
    if step_min <= 0:
        raise ValueError("the step must be a positive number of minutes")
    bounds = day_bounds(day, tz)
    spans = [s for s in [*opening, *shown] if s.meets(bounds.start, bounds.end)]
    if not spans:
        return Grid((), timedelta(minutes=step_min))
    step = timedelta(minutes=step_min)
    first = max(bounds.start, min(s.start for s in spans))
    last = min(bounds.end, max(s.end for s in spans))
    start = bounds.start + ((first - bounds.start) // step) * step
    count = -((start - last) // step)
    rows = tuple(start + i * step for i in range(count) if start + i * step < bounds.end)
    return Grid(rows, step)


def lanes(items: Sequence[tuple[K, Span]]) -> dict[K, tuple[int, int]]:
    """Side-by-side lanes for overlapping blocks in one column: key → (lane, lanes in its overlapping group)."""
    placed: dict[K, int] = {}
    groups: list[list[K]] = []
    group_end: datetime | None = None
    lane_ends: list[datetime] = []
    for key, span in sorted(items, key=lambda item: (item[1].start, item[1].end)):
        if group_end is None or span.start >= group_end:
            groups.append([])
            lane_ends = []
            group_end = span.end
        group_end = max(group_end, span.end)
        lane = next((i for i, lane_end in enumerate(lane_ends) if lane_end <= span.start), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(span.end)
        else:
            lane_ends[lane] = span.end
        placed[key] = lane
        groups[-1].append(key)
    result: dict[K, tuple[int, int]] = {}
    for group in groups:
        width = max(placed[key] for key in group) + 1
        for key in group:
            result[key] = (placed[key], width)
    return result
