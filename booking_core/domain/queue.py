"""Waiting-room queue: ordering, manual reordering, each patient's place and ETA, and the daily token.

Everything here works on a snapshot of queue entries (one row per checked-in session). The database keeps the
token counter and the ranks; these functions only decide.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from booking_core.domain.lifecycle import ACTIVE_STATUSES, SessionStatus

__all__ = [
    "RANK_GAP",
    "RANK_MAX",
    "RANK_MIN",
    "RANK_MIN_STEP",
    "InvalidMove",
    "Position",
    "QueueEntry",
    "QueueError",
    "SortMode",
    "UnknownEntry",
    "adopt",
    "estimate",
    "format_token",
    "move",
    "next_up",
    "order",
    "parse_token",
    "positions",
]

#: Spacing between manual ranks, so most moves change only the moved entry.
RANK_GAP = 1024
#: A respaced run inside the queue gets at least this much room per entry: six halvings before the next one.
RANK_MIN_STEP = 64
#: Ranks are stored in a 32-bit integer column.
RANK_MIN = -(2**31)
RANK_MAX = 2**31 - 1

_TOKEN_PREFIX = re.compile(r"[A-Z]{1,3}")
_TOKEN_TEXT = re.compile(r"([A-Z]{1,3})\s*-?\s*(\d{1,9})")


class SortMode(StrEnum):
    """How staff want the queue board sorted."""

    ARRIVAL = "arrival"  # first come, first seen
    TIME = "time"  # by booked start time
    NEWEST = "newest"  # latest arrival on top
    MANUAL = "manual"  # staff-dragged order (rank)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One checked-in session in the waiting room."""

    entry_id: int
    session_id: int
    doctor_id: int
    token: str
    arrived_at: datetime
    scheduled_start: datetime
    duration_min: int
    status: SessionStatus
    rank: int
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """A patient's place in their doctor's queue.

    ``position`` is 1 for the next patient to be called and 0 while the patient is with the doctor;
    ``ahead`` is the number of waiting patients before this one (the patient being seen is not counted);
    ``wait_min`` is the wait rounded up to whole minutes.
    """

    entry_id: int
    position: int
    ahead: int
    eta: datetime
    wait_min: int


class QueueError(ValueError):
    """A queue change that cannot be applied; ``code`` is the API error code."""

    code = "queue_error"


class UnknownEntry(QueueError):
    """The entry is not in the queue (unknown id, or its session is completed/cancelled)."""

    code = "unknown_entry"


class InvalidMove(QueueError):
    """The move is malformed: not exactly one of before/after, or relative to the entry itself."""

    code = "invalid_move"


_SORT_KEYS: dict[SortMode, Callable[[QueueEntry], tuple[object, ...]]] = {
    SortMode.ARRIVAL: lambda e: (e.arrived_at, e.entry_id),
    SortMode.TIME: lambda e: (e.scheduled_start, e.entry_id),
    SortMode.MANUAL: lambda e: (e.rank, e.entry_id),
}


def order(entries: Sequence[QueueEntry], mode: SortMode) -> list[QueueEntry]:
    """The queue in ``mode`` order; only waiting and open entries are in it. Ties go to the lower entry_id."""
    in_queue = [e for e in entries if e.status in ACTIVE_STATUSES]
    mode = SortMode(mode)
    if mode is SortMode.NEWEST:
        # Two stable passes: entry_id ascending survives as the tie-break under the descending arrival sort.
        in_queue.sort(key=lambda e: e.entry_id)
        in_queue.sort(key=lambda e: e.arrived_at, reverse=True)
        return in_queue
    return sorted(in_queue, key=_SORT_KEYS[mode])


def adopt(entries: Sequence[QueueEntry], mode: SortMode) -> dict[int, int]:
    """Manual ranks that make the manual order what ``mode`` shows (before staff move someone in that view).

    Returns ``{entry_id: new_rank}`` for only the entries whose rank changes; empty when the manual order already
    is the ``mode`` order. Ranks are respaced ``RANK_GAP`` apart, so the moves that follow have room.
    """
    wanted = order(entries, mode)
    if [e.entry_id for e in wanted] == [e.entry_id for e in order(entries, SortMode.MANUAL)]:
        return {}
    return {e.entry_id: RANK_GAP * (k + 1) for k, e in enumerate(wanted) if e.rank != RANK_GAP * (k + 1)}


def move(
    entries: Sequence[QueueEntry], entry_id: int, *, before: int | None = None, after: int | None = None
) -> dict[int, int]:
    """Move one entry directly before or after another in the manual order.

    Returns ``{entry_id: new_rank}`` for only the entries whose rank changes (empty when the entry is
    already there). Usually that is just the moved entry, placed halfway between its new neighbours; when they
    leave no room, the smallest surrounding run of entries is respaced (see ``_respace``).
    """
    if before is not None and after is None:
        target, offset = before, 0
    elif after is not None and before is None:
        target, offset = after, 1
    else:
        raise InvalidMove("give exactly one of before or after")
    if target == entry_id:
        raise InvalidMove("an entry cannot be moved relative to itself")

    current = order(entries, SortMode.MANUAL)
    ids = [e.entry_id for e in current]
    for wanted in (entry_id, target):
        if wanted not in ids:
            raise UnknownEntry(f"entry {wanted} is not in the queue")

    new_ids = [i for i in ids if i != entry_id]
    index = new_ids.index(target) + offset
    new_ids.insert(index, entry_id)
    if new_ids == ids:
        return {}

    rank_of = {e.entry_id: e.rank for e in current}
    ranks = [rank_of[i] for i in new_ids]
    _respace(ranks, index)
    return {i: r for i, r in zip(new_ids, ranks, strict=True) if r != rank_of[i]}


def _respace(ranks: list[int], index: int) -> None:
    """Give ``ranks[index]`` a rank strictly between its neighbours, respacing a window around it if needed.

    ``ranks`` is in the new order and sorted except at ``index``. The window grows one entry each side at a
    time until its outer neighbours leave ``RANK_MIN_STEP`` per slot (spread evenly), or it reaches an end of
    the queue (where ranks run on ``RANK_GAP`` apart). If that would leave the 32-bit column, the whole queue
    is renumbered from ``RANK_GAP``.
    """
    n = len(ranks)
    left = ranks[index - 1] if index > 0 else None
    right = ranks[index + 1] if index + 1 < n else None
    # The common case: room between the new neighbours (or an open end).
    if left is None and right is not None:
        candidate = right - RANK_GAP
    elif right is None and left is not None:
        candidate = left + RANK_GAP
    elif left is not None and right is not None and right - left >= 2:
        candidate = (left + right) // 2
    else:
        candidate = None
    if candidate is not None and RANK_MIN <= candidate <= RANK_MAX:
        ranks[index] = candidate
        return

    lo, hi = index, index + 1  # window ranks[lo:hi] gets new ranks
    while True:
        lo, hi = max(lo - 1, 0), min(hi + 1, n)
        size = hi - lo
        left = ranks[lo - 1] if lo > 0 else None
        right = ranks[hi] if hi < n else None
        if left is not None and right is not None:
            step = (right - left) // (size + 1)
            if step < RANK_MIN_STEP:
                continue
            new = [left + step * (k + 1) for k in range(size)]
        elif left is not None:
            new = [left + RANK_GAP * (k + 1) for k in range(size)]
        elif right is not None:
            new = [right - RANK_GAP * (size - k) for k in range(size)]
        else:
            new = [RANK_GAP * (k + 1) for k in range(size)]
        if new[0] < RANK_MIN or new[-1] > RANK_MAX:
            ranks[:] = [RANK_GAP * (k + 1) for k in range(n)]
            return
        ranks[lo:hi] = new
        return


def positions(entries: Sequence[QueueEntry], mode: SortMode, now: datetime) -> dict[int, Position]:
    """Each queued patient's position and ETA within their own doctor's queue.

    A waiting patient's ETA is the later of (a) the queue ahead: ``now`` + what remains of the doctor's open
    session(s) (duration minus time since ``started_at``, never below 0) + the durations of the waiting entries
    ahead of this one, and (b) their booked start (:func:`estimate`): a patient who checked in an hour early is
    expected at their appointment, not "any moment". An open entry has position 0 and its ``started_at`` as ETA
    (``now`` if it was never stamped).
    """
    result: dict[int, Position] = {}
    for queue in _by_doctor(order(entries, mode)).values():
        busy = timedelta()
        for entry in queue:
            if entry.status is SessionStatus.OPEN:
                started = entry.started_at or now
                # A started_at a little in the future (clock skew between devices) is not extra work.
                elapsed = max(now - started, timedelta())
                remaining = timedelta(minutes=entry.duration_min) - elapsed
                busy += max(remaining, timedelta())
                result[entry.entry_id] = Position(entry.entry_id, 0, 0, started, 0)
        ahead = 0
        for entry in queue:
            if entry.status is not SessionStatus.WAITING:
                continue
            eta, wait_min = estimate(now, busy, entry.scheduled_start)
            result[entry.entry_id] = Position(entry.entry_id, ahead + 1, ahead, eta, wait_min)
            ahead += 1
            busy += timedelta(minutes=entry.duration_min)
    return result


def estimate(now: datetime, queue_ahead: timedelta, booked_start: datetime) -> tuple[datetime, int]:
    """When a waiting patient is expected to be called, and the wait in whole minutes (rounded up).

    The later of the queue ahead (``now + queue_ahead``, never before ``now``) and the patient's booked start: the
    doctor does not run ahead of the appointment book for them, and a long queue pushes past it.
    """
    by_queue = now + max(queue_ahead, timedelta())
    eta = max(by_queue, booked_start)
    return eta, math.ceil((eta - now) / timedelta(minutes=1))


def next_up(entries: Sequence[QueueEntry], mode: SortMode) -> dict[int, QueueEntry | None]:
    """Per doctor, the waiting entry "call next" would open; ``None`` for a doctor with nobody waiting."""
    result: dict[int, QueueEntry | None] = {e.doctor_id: None for e in entries}
    for doctor_id, queue in _by_doctor(order(entries, mode)).items():
        result[doctor_id] = next((e for e in queue if e.status is SessionStatus.WAITING), None)
    return result


def _by_doctor(ordered: list[QueueEntry]) -> dict[int, list[QueueEntry]]:
    groups: dict[int, list[QueueEntry]] = {}
    for entry in ordered:
        groups.setdefault(entry.doctor_id, []).append(entry)
    return groups


def format_token(prefix: str, number: int) -> str:
    """The day's queue token: ``format_token("A", 1) == "A-001"``; past 999 it just grows (``"A-1000"``)."""
    if not _TOKEN_PREFIX.fullmatch(prefix):
        raise ValueError("token prefix must be 1 to 3 uppercase letters A-Z")
    if isinstance(number, bool) or number < 1:
        raise ValueError("token number must be a positive integer")
    return f"{prefix}-{number:03d}"


def parse_token(text: str) -> tuple[str, int] | None:
    """Read a token a patient typed (``"a-7"``, ``"A 007"``, ``"A007"``) as ``(prefix, number)``.

    ``None`` when the text is not a token.
    """
    match = _TOKEN_TEXT.fullmatch(text.strip().upper())
    if match is None:
        return None
    number = int(match.group(2))
    return (match.group(1), number) if number >= 1 else None
