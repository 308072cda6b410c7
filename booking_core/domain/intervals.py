"""Half-open integer intervals ``[start, end)`` and the set arithmetic the availability engine needs.

An *interval list* is a list of ``(start, end)`` pairs with ``start < end``. The functions that take one as a
"set" expect it **normalized** (sorted, disjoint and non-touching, as :func:`merge` returns it); they return
normalized lists too. Two intervals ``[a, b)`` and ``[c, d)`` overlap iff ``a < d and c < b``, so touching
intervals do not overlap, and :func:`merge` joins them into one.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import TypeAlias

__all__ = ["Interval", "covers", "ends_of", "intersect", "merge", "overlaps", "subtract"]

Interval: TypeAlias = tuple[int, int]


def _end(interval: Interval) -> int:
    return interval[1]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Normalize: sort, drop empty intervals and join the ones that overlap or touch."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if start >= end:
            continue
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """The points in both normalized lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        # Advance whichever interval finishes first; the other may still meet the next one.
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """The points of normalized ``a`` that are not in normalized ``b``.

    ``b`` may be long (every busy interval of a doctor over a month): it is entered by bisection, so the cost
    is ``O(len(a) + log len(b) + the part of b that meets a)``.
    """
    if not a or not b:
        return list(a)
    out: list[Interval] = []
    # First interval of b that ends after a starts; everything before it cannot touch a.
    j = bisect_right(b, a[0][0], key=_end)
    for start, end in a:
        while j < len(b) and b[j][1] <= start:
            j += 1
        k = j
        cursor = start
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cursor:
                out.append((cursor, b[k][0]))
            cursor = max(cursor, b[k][1])
            if cursor >= end:
                break
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def ends_of(intervals: list[Interval]) -> list[int]:
    """The end points of a normalized list, for :func:`covers` and :func:`overlaps` in hot loops."""
    return [end for _, end in intervals]


def covers(intervals: list[Interval], start: int, end: int, ends: list[int] | None = None) -> bool:
    """Whether ``[start, end)`` lies inside one interval of the normalized list.

    Pass ``ends=ends_of(intervals)`` when calling many times on the same list.
    """
    i = bisect_right(ends if ends is not None else ends_of(intervals), start)
    return i < len(intervals) and intervals[i][0] <= start and end <= intervals[i][1]


def overlaps(intervals: list[Interval], start: int, end: int, ends: list[int] | None = None) -> bool:
    """Whether ``[start, end)`` shares a point with the normalized list."""
    i = bisect_right(ends if ends is not None else ends_of(intervals), start)
    return i < len(intervals) and intervals[i][0] < end
