"""Local wall time on one of a branch's days, as integer microseconds since the epoch (the availability engine's
arithmetic; see :mod:`booking_core.domain.availability` for the rules it serves).

A wall time is placed at the first instant whose local reading is at or after it: an ambiguous time (the repeated
hour when clocks go back) takes its first occurrence (``fold=0``); a time that does not exist (the hour skipped when
clocks go forward) moves to the end of the gap. ``end == time(0)`` of a window means midnight at the end of the day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking_core.domain.intervals import Interval, merge

__all__ = [
    "DAY",
    "MINUTE",
    "ONE_DAY",
    "SECOND",
    "Day",
    "from_us",
    "require_aware",
    "require_span",
    "time_of_day",
    "to_us",
    "wall_span",
    "wall_time",
]

US = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
SECOND = 1_000_000
MINUTE = 60 * SECOND
DAY = 86_400 * SECOND
ONE_DAY = timedelta(days=1)


def require_aware(value: datetime, what: str) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {value.isoformat()}")


def require_span(start: datetime, end: datetime, what: str) -> None:
    require_aware(start, f"{what} start")
    require_aware(end, f"{what} end")
    if end <= start:
        raise ValueError(f"{what} must end after it starts, got {start.isoformat()} .. {end.isoformat()}")


def time_of_day(value: time, what: str) -> int:
    if not isinstance(value, time):
        raise ValueError(f"{what} must be a time, got {value!r}")
    if value.tzinfo is not None:
        raise ValueError(f"{what} is local wall time and must not carry a tzinfo, got {value.isoformat()}")
    return ((value.hour * 60 + value.minute) * 60 + value.second) * SECOND + value.microsecond


def wall_span(start: time, end: time, what: str) -> Interval:
    """Microseconds since local midnight; ``end == time(0)`` is midnight at the end of the day."""
    begin = time_of_day(start, f"{what} start")
    finish = time_of_day(end, f"{what} end") or DAY
    if begin >= finish:
        raise ValueError(f"{what} must end after it starts, got {start.isoformat()}-{end.isoformat()}")
    return begin, finish


def to_us(value: datetime) -> int:
    return (value - EPOCH) // US


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def offset_at(zone: ZoneInfo, instant: int) -> int:
    offset = from_us(instant).astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset // US


def transition_after(zone: ZoneInfo, lo: int, hi: int) -> int:
    """The first whole second in ``(lo, hi]`` whose UTC offset differs from ``lo``'s (one must exist)."""
    before = offset_at(zone, lo)
    lo_s, hi_s = lo // SECOND, -(-hi // SECOND)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if offset_at(zone, mid * SECOND) == before:
            lo_s = mid
        else:
            hi_s = mid
    return hi_s * SECOND


def first_instant(zone: ZoneInfo, wall: datetime) -> int:
    """The first instant whose local reading is at or after the naive ``wall``."""
    early = to_us(wall.replace(tzinfo=zone, fold=0))
    if from_us(early).astimezone(zone).replace(tzinfo=None) == wall:
        return early  # exists; for an ambiguous time fold=0 is the first occurrence
    # In a gap: fold=0 and fold=1 land on either side of the jump; the jump itself is the answer.
    late = to_us(wall.replace(tzinfo=zone, fold=1))
    return transition_after(zone, min(early, late), max(early, late))


class Day:
    """One local date of the branch: its span in UTC, its offset segments and its slot-start grid.

    ``segments``: ``(utc_start, utc_end, offset)`` pieces of the day with a constant UTC offset (one
    piece, or two on a DST day); the local wall reading of instant ``t`` in a piece is ``t + offset``.
    ``grid``: ``(lo, hi, origin)``: the grid starts of the day are ``origin + k * step`` within
    ``[lo, hi)``, where ``origin`` is local midnight read with that piece's offset. A piece's grid begins
    where its wall clock passes what earlier pieces covered, which keeps the repeated hour ``fold=0`` only.
    """

    __slots__ = ("date", "end", "grid", "midnight", "segments", "start")

    def __init__(self, zone: ZoneInfo, day: date) -> None:
        self.date = day
        local_midnight = datetime.combine(day, time())
        self.start = first_instant(zone, local_midnight)
        self.end = first_instant(zone, local_midnight + ONE_DAY)
        self.midnight = (day.toordinal() - EPOCH_ORDINAL) * DAY  # local midnight as a naive "wall instant"
        self.segments: list[tuple[int, int, int]] = []
        if self.start < self.end:
            cursor, offset = self.start, offset_at(zone, self.start)
            last = offset_at(zone, self.end - 1)
            while offset != last:
                change = transition_after(zone, cursor, self.end - 1)
                self.segments.append((cursor, change, offset))
                cursor, offset = change, offset_at(zone, change)
            self.segments.append((cursor, self.end, offset))
        self.grid: list[tuple[int, int, int]] = []
        reached: int | None = None  # latest wall reading covered so far
        for seg_start, seg_end, offset in self.segments:
            lo = seg_start if reached is None else max(seg_start, reached - offset)
            if lo < seg_end:
                self.grid.append((lo, seg_end, self.midnight - offset))
            reached = seg_end + offset if reached is None else max(reached, seg_end + offset)

    def instant(self, time_of_day: int) -> int:
        """The first instant of the day whose wall reading is at or after ``time_of_day`` (µs from 00:00)."""
        wall = self.midnight + time_of_day
        for seg_start, seg_end, offset in self.segments:
            if wall < seg_start + offset:
                return seg_start  # skipped by a forward jump: the window opens when the clock lands
            if wall < seg_end + offset:
                return wall - offset
        return self.end

    def spans(self, windows: Sequence[Interval]) -> list[Interval]:
        return merge((self.instant(begin), self.instant(finish)) for begin, finish in windows)

    def on_grid(self, instant: int, step: int) -> bool:
        return any(lo <= instant < hi and (instant - origin) % step == 0 for lo, hi, origin in self.grid)


def wall_time(since_midnight: int) -> time:
    """Microseconds since local midnight as a wall time; the end of the day is ``time(0)`` (24:00)."""
    if since_midnight >= DAY:
        return time(0)
    seconds, micro = divmod(since_midnight, SECOND)
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)
