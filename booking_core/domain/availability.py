"""Free slots for an examination at a branch, and why a given time is not one.

Pure: data in (an :class:`AvailabilityQuery`), slots or reasons out. The caller loads the branch hours, the
doctors' schedules, the rooms, the busy intervals (active sessions and unexpired holds; it filters cancelled
sessions and expired holds) and the blackouts for the period; nothing here reads a clock or a database.

Semantics
---------
* **Instants** are timezone-aware datetimes; results are in UTC (``datetime.UTC``). A naive datetime or
  an interval with ``end <= start`` raises :class:`ValueError`. Intervals are half-open: ``[a, b)`` and
  ``[c, d)`` overlap iff ``a < d and c < b``.
* **Wall-clock windows** (branch hours, doctor attendance, examination windows) are local times in the
  branch's time zone (``zoneinfo``) on one local date. ``end == time(0)`` means midnight at the end of the
  day (24:00); otherwise ``start < end``. A wall time is placed at the first instant whose local reading is
  at or after it: an ambiguous time (the repeated hour when clocks go back) takes its first occurrence
  (``fold=0``); a time that does not exist (the hour skipped when clocks go forward) moves to the end of the
  gap. Windows of one layer on one date are united, so ``09:00-10:00`` and ``10:00-11:00`` make one window.
* **Layers**: branch hours (weekly; none on ``closed_days``) ∩ doctor attendance ∩ examination windows
  (none given = the whole day). Doctor attendance is the weekly pattern, unless the date has overrides,
  which replace it (several overrides on one date are united; a ``None``/``None`` override contributes
  nothing, so an override list made only of it is a day off), plus accepted applications on that date,
  which add to either.
* **Candidate starts** lie on a grid of ``step_min`` minutes of local wall time from local midnight
  (00:00, 00:15, ... for step 15). A grid time that does not exist on a spring-forward day is skipped; on a
  fall-back day a grid time in the repeated hour stands for its first occurrence only (``fold=0``), so no
  start is offered twice. Durations are real elapsed time: a slot is ``[s, s + duration)`` in UTC, whatever
  the clocks do.
* A start ``s`` is **free for a doctor** iff: the branch is in ``examination.branch_ids``;
  ``q.start <= s`` and ``s + duration <= q.end``; ``now + min_notice <= s < now + horizon_days`` (days of
  24 h); ``[s, s + duration)`` lies inside the layers above on ``s``'s local date (a slot never runs past
  local midnight); the *occupied* interval ``[s - buffer_before, s + duration + buffer_after)`` overlaps no
  busy interval of the doctor; the slot itself ``[s, s + duration)`` overlaps no branch-wide or doctor
  blackout (the doctor's buffers may run into a meeting); and a suitable room is free.
* **Rooms**: suitable = ``kind == examination.room_kind`` (any room when ``room_kind`` is ``None``). A room
  is free iff the occupied interval (buffers included: they are the room's turnover) overlaps none of its
  busy intervals and none of its blackouts. The free suitable room with the lowest ``room_id`` is
  proposed. Slots of different doctors at the same start are alternatives, so they may propose the same
  room.
* Busy intervals are taken as given (they may already include the buffers of the visit they stand for);
  only the new examination's buffers are added. A busy interval blocks its doctor and its room (either may
  be ``None``). Branch blackouts with ``target_id`` ``None`` or this branch's id apply; others are ignored.
* Results are sorted by ``(start, doctor_id)``.

Assumption: within one local day the zone's offset never changes and changes back again, and the local
date never steps back (true of every zone in the tz database today). Clock changes at local midnight
(Havana, Santiago), half-hour changes (Lord Howe) and a skipped date (Apia, 2011) are handled.

The engine works in integer microseconds since the epoch: a branch's local day and its wall-clock windows are
placed by :mod:`booking_core.domain.wall_clock`, interval arithmetic per local day and doctor is
:mod:`booking_core.domain.intervals`; :mod:`booking_core.domain.availability_reference` is the slow,
minute-by-minute oracle it is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, NamedTuple, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from booking_core.domain.intervals import Interval, covers, ends_of, intersect, merge, overlaps, subtract
from booking_core.domain.wall_clock import (
    DAY,
    MINUTE,
    ONE_DAY,
    Day,
    from_us,
    require_aware,
    require_span,
    to_us,
    wall_span,
    wall_time,
)

__all__ = [
    "REASON_CODES",
    "AvailabilityQuery",
    "Blackout",
    "BlackoutScope",
    "BranchHours",
    "Busy",
    "DatedWindow",
    "DoctorSchedule",
    "ExaminationRules",
    "IncompatibleVisit",
    "Reason",
    "Room",
    "Slot",
    "WeeklyWindow",
    "explain",
    "explain_many",
    "first_free",
    "free_slots",
    "visit_rules",
]

BlackoutScope: TypeAlias = Literal["branch", "doctor", "room"]

#: Reason codes of :func:`explain`, in the order the layers are checked (and reasons listed).
REASON_CODES = (
    "outside_range",
    "outside_horizon",
    "too_soon",
    "not_offered_at_branch",
    "off_grid",
    "branch_closed",
    "outside_examination_window",
    "doctor_not_attending",
    "blackout",
    "booked",
    "no_room",
    "available",
)
_LAYER = {code: index for index, code in enumerate(REASON_CODES)}


# --- validation


def _require_non_negative(value: int, what: str) -> None:
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value}")


# --- inputs


@dataclass(frozen=True)
class WeeklyWindow:
    """A weekly wall-clock window: ``weekday`` 0 = Monday; ``end == time(0)`` means midnight (24:00)."""

    weekday: int
    start: time
    end: time

    def __post_init__(self) -> None:
        if not isinstance(self.weekday, int) or not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {self.weekday!r}")
        wall_span(self.start, self.end, "weekly window")


@dataclass(frozen=True)
class DatedWindow:
    """A wall-clock window on one date; ``start`` and ``end`` both ``None`` means the whole day off."""

    day: date
    start: time | None
    end: time | None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError("a dated window needs both start and end, or neither (a day off)")
        if self.start is not None and self.end is not None:
            wall_span(self.start, self.end, f"window on {self.day.isoformat()}")

    @property
    def is_day_off(self) -> bool:
        return self.start is None


@dataclass(frozen=True)
class BranchHours:
    """Opening hours of a branch in its IANA time zone ``tz`` (e.g. ``"Asia/Jakarta"``)."""

    branch_id: int
    tz: str
    weekly: tuple[WeeklyWindow, ...]
    closed_days: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.tz!r}") from exc


@dataclass(frozen=True)
class DoctorSchedule:
    """When a doctor attends: weekly pattern, dated overrides (replace it), accepted applications (add)."""

    doctor_id: int
    weekly: tuple[WeeklyWindow, ...]
    overrides: tuple[DatedWindow, ...] = ()
    applications: tuple[DatedWindow, ...] = ()


@dataclass(frozen=True)
class ExaminationRules:
    """Booking rules of one examination; ``windows`` empty = offered whenever the branch and doctor are."""

    examination_id: int
    duration_min: int
    branch_ids: frozenset[int]
    windows: tuple[WeeklyWindow, ...] = ()
    min_notice_min: int = 0
    horizon_days: int = 60
    buffer_before_min: int = 0
    buffer_after_min: int = 0
    room_kind: str | None = None

    def __post_init__(self) -> None:
        if self.duration_min < 1:
            raise ValueError(f"examination duration must be at least one minute, got {self.duration_min}")
        _require_non_negative(self.min_notice_min, "minimum notice")
        _require_non_negative(self.horizon_days, "booking horizon")
        _require_non_negative(self.buffer_before_min, "buffer before")
        _require_non_negative(self.buffer_after_min, "buffer after")


@dataclass(frozen=True)
class Room:
    """A treatment room of the branch."""

    room_id: int
    kind: str


@dataclass(frozen=True)
class Busy:
    """An active session or unexpired hold occupying a doctor and/or a room."""

    start: datetime
    end: datetime
    doctor_id: int | None
    room_id: int | None
    label: str = "booked"

    def __post_init__(self) -> None:
        require_span(self.start, self.end, "busy interval")
        if self.doctor_id is None and self.room_id is None:
            raise ValueError("a busy interval must occupy a doctor, a room or both")


@dataclass(frozen=True)
class Blackout:
    """A period nothing may be booked: branch-wide, or for one doctor or one room (``target_id``)."""

    start: datetime
    end: datetime
    scope: BlackoutScope
    target_id: int | None
    reason: str

    def __post_init__(self) -> None:
        require_span(self.start, self.end, "blackout")
        if self.scope not in ("branch", "doctor", "room"):
            raise ValueError(f"blackout scope must be 'branch', 'doctor' or 'room', got {self.scope!r}")
        if self.scope != "branch" and self.target_id is None:
            raise ValueError(f"a {self.scope} blackout needs the {self.scope}'s id as target_id")


@dataclass(frozen=True)
class AvailabilityQuery:
    """Everything :func:`free_slots` and :func:`explain` look at; ``start``/``end`` bound the slots wanted."""

    branch: BranchHours
    examination: ExaminationRules
    doctors: tuple[DoctorSchedule, ...]
    rooms: tuple[Room, ...]
    busy: tuple[Busy, ...]
    blackouts: tuple[Blackout, ...]
    start: datetime
    end: datetime
    now: datetime
    step_min: int = 15

    def __post_init__(self) -> None:
        require_span(self.start, self.end, "query period")
        require_aware(self.now, "now")
        if not 1 <= self.step_min <= 24 * 60:
            raise ValueError(f"slot step must be 1 .. 1440 minutes, got {self.step_min}")
        doctor_ids = [doctor.doctor_id for doctor in self.doctors]
        if len(set(doctor_ids)) != len(doctor_ids):
            raise ValueError(f"a doctor appears twice in the query: {sorted(doctor_ids)}")
        room_ids = [room.room_id for room in self.rooms]
        if len(set(room_ids)) != len(room_ids):
            raise ValueError(f"a room appears twice in the query: {sorted(room_ids)}")


# --- outputs


class Slot(NamedTuple):
    """A free slot: ``[start, end)`` in UTC with the doctor and the proposed room.

    A named tuple rather than a dataclass: a month of 20 doctors is some 15 000 slots, and building a tuple is
    several times cheaper than running a frozen dataclass's ``__init__``.
    """

    start: datetime
    end: datetime
    doctor_id: int
    room_id: int


@dataclass(frozen=True)
class Reason:
    """One reason from :func:`explain`; ``code`` is one of :data:`REASON_CODES`.

    ``doctor_id`` is set on reasons about one doctor (and on ``available``); ``room_id`` on ``available``.
    """

    code: str
    message: str
    doctor_id: int | None = None
    room_id: int | None = None


# --- planning


def _weekly_spans(windows: Sequence[WeeklyWindow]) -> dict[int, list[Interval]]:
    by_weekday: dict[int, list[Interval]] = {weekday: [] for weekday in range(7)}
    for window in windows:
        by_weekday[window.weekday].append(wall_span(window.start, window.end, "weekly window"))
    return by_weekday


def _dated_spans(windows: Sequence[DatedWindow]) -> dict[date, list[Interval]]:
    by_day: dict[date, list[Interval]] = {}
    for window in windows:
        spans = by_day.setdefault(window.day, [])  # a day-off entry still marks the date as overridden
        if window.start is not None and window.end is not None:
            spans.append(wall_span(window.start, window.end, "dated window"))
    return by_day


class _Doctor:
    __slots__ = ("applications", "blocked", "doctor_id", "overrides", "weekly")

    def __init__(self, schedule: DoctorSchedule, blocked: list[Interval]) -> None:
        self.doctor_id = schedule.doctor_id
        self.weekly = _weekly_spans(schedule.weekly)
        self.overrides = _dated_spans(schedule.overrides)
        self.applications = _dated_spans(schedule.applications)
        self.blocked = blocked  # buffered busy + doctor blackouts, normalized

    def attendance(self, day: Day) -> list[Interval]:
        windows = self.overrides.get(day.date)
        if windows is None:
            windows = self.weekly[day.date.weekday()]
        return day.spans([*windows, *self.applications.get(day.date, ())])


class _Plan:
    """A query prepared once: integer instants, per-doctor and per-room blocked lists, per-day caches."""

    def __init__(self, q: AvailabilityQuery, *, only_room: int | None = None) -> None:
        exam = q.examination
        self.zone = ZoneInfo(q.branch.tz)
        self.duration = exam.duration_min * MINUTE
        self.step = q.step_min * MINUTE
        self.q_start, self.q_end, self.now = to_us(q.start), to_us(q.end), to_us(q.now)
        self.notice_end = self.now + exam.min_notice_min * MINUTE
        self.horizon_end = self.now + exam.horizon_days * DAY
        self.first_start = max(self.q_start, self.notice_end)  # earliest allowed start
        self.last_start = min(self.q_end - self.duration, self.horizon_end - 1)  # latest allowed start
        self.offered = q.branch.branch_id in exam.branch_ids
        self.branch_weekly = _weekly_spans(q.branch.weekly)
        self.closed_days = frozenset(q.branch.closed_days)
        self.exam_weekly = _weekly_spans(exam.windows) if exam.windows else None

        before, after = exam.buffer_before_min * MINUTE, exam.buffer_after_min * MINUTE
        doctor_blocked: dict[int, list[Interval]] = {d.doctor_id: [] for d in q.doctors}
        room_blocked: dict[int, list[Interval]] = {r.room_id: [] for r in q.rooms}
        for busy in q.busy:
            # The occupied interval [s - before, s + d + after) meets [b0, b1) iff the slot [s, s + d)
            # meets [b0 - after, b1 + before): widen the busy interval once instead of every slot.
            widened = (to_us(busy.start) - after, to_us(busy.end) + before)
            if busy.doctor_id in doctor_blocked:
                doctor_blocked[busy.doctor_id].append(widened)
            if busy.room_id in room_blocked:
                room_blocked[busy.room_id].append(widened)
        branch_blackouts: list[Interval] = []
        for blackout in q.blackouts:
            span = (to_us(blackout.start), to_us(blackout.end))
            if blackout.scope == "branch":
                if blackout.target_id in (None, q.branch.branch_id):
                    branch_blackouts.append(span)
            elif blackout.scope == "doctor":
                if blackout.target_id in doctor_blocked:
                    doctor_blocked[blackout.target_id].append(span)
            elif blackout.target_id in room_blocked:
                # A room's buffers are its turnover (cleaning, setting up), which a closed room cannot have.
                room_blocked[blackout.target_id].append((span[0] - after, span[1] + before))
        self.branch_blackouts = merge(branch_blackouts)
        self.doctors = [
            _Doctor(d, merge(doctor_blocked[d.doctor_id])) for d in sorted(q.doctors, key=lambda d: d.doctor_id)
        ]
        self.rooms: list[tuple[int, list[Interval], list[int]]] = []
        for room in sorted(q.rooms, key=lambda r: r.room_id):
            if only_room is not None and room.room_id != only_room:
                continue
            if exam.room_kind is None or room.kind == exam.room_kind:
                blocked = merge(room_blocked[room.room_id])
                self.rooms.append((room.room_id, blocked, ends_of(blocked)))
        self._days: dict[date, Day] = {}
        self._room_at: dict[int, int | None] = {}

    # -- per day

    def day(self, day: date) -> Day:
        cached = self._days.get(day)
        if cached is None:
            cached = self._days[day] = Day(self.zone, day)
        return cached

    def local_date(self, instant: int) -> date:
        return from_us(instant).astimezone(self.zone).date()

    def day_of(self, instant: int) -> Day:
        """The local day whose span holds ``instant``."""
        day = self.day(self.local_date(instant))
        for shift in (0, -1, 1):  # only differs from the local date in zones whose dates step back
            candidate = self.day(day.date + timedelta(days=shift)) if shift else day
            if candidate.start <= instant < candidate.end:
                return candidate
        return day

    def branch_spans(self, day: Day) -> list[Interval]:
        if day.date in self.closed_days:
            return []
        return day.spans(self.branch_weekly[day.date.weekday()])

    def exam_spans(self, day: Day) -> list[Interval]:
        if self.exam_weekly is None:
            return [(day.start, day.end)] if day.start < day.end else []
        return day.spans(self.exam_weekly[day.date.weekday()])

    # -- rooms

    def room_for(self, start: int) -> int | None:
        """The lowest-numbered suitable room free for a slot starting at ``start`` (same for every doctor)."""
        if start in self._room_at:
            return self._room_at[start]
        end = start + self.duration
        found = next(
            (room_id for room_id, blocked, ends in self.rooms if not overlaps(blocked, start, end, ends)),
            None,
        )
        self._room_at[start] = found
        return found

    # -- slots

    def day_slots(self, day: Day) -> list[tuple[int, int, int]]:
        """``(start, doctor_id, room_id)`` of every free slot starting on ``day``, sorted."""
        lo = max(self.first_start, day.start)
        hi = min(self.last_start, day.end - self.duration)
        if lo > hi:
            return []
        bookable = subtract(intersect(self.branch_spans(day), self.exam_spans(day)), self.branch_blackouts)
        if not bookable:
            return []
        duration, step = self.duration, self.step
        room_at = self._room_at
        found: list[tuple[int, int, int]] = []
        for doctor in self.doctors:
            free = subtract(intersect(bookable, doctor.attendance(day)), doctor.blocked)
            for free_start, free_end in free:
                first, last = max(free_start, lo), min(free_end - duration, hi)
                if first > last:
                    continue
                for grid_lo, grid_hi, origin in day.grid:
                    start, stop = max(first, grid_lo), min(last, grid_hi - 1)
                    if start > stop:
                        continue
                    start += (origin - start) % step  # round up onto the grid
                    for instant in range(start, stop + 1, step):
                        room = room_at[instant] if instant in room_at else self.room_for(instant)
                        if room is not None:
                            found.append((instant, doctor.doctor_id, room))
        found.sort()
        return found

    def days(self) -> Iterator[list[tuple[int, int, int]]]:
        """The free slots day by day, in order (day spans do not overlap, so the whole stream is sorted)."""
        if not self.offered or not self.doctors or not self.rooms or self.first_start > self.last_start:
            return
        current = self.local_date(self.first_start) - ONE_DAY
        last = self.local_date(self.last_start)
        while current <= last:
            yield self.day_slots(self.day(current))
            current += ONE_DAY


_tuple_new = tuple.__new__


def _materialize(found: Iterable[tuple[int, int, int]], duration: int) -> list[Slot]:
    instants: dict[int, datetime] = {}  # many doctors share a start: build each datetime once
    slots: list[Slot] = []
    for start, doctor, room in found:
        begins = instants.get(start)
        if begins is None:
            begins = instants[start] = from_us(start)
        ends = instants.get(start + duration)
        if ends is None:
            ends = instants[start + duration] = from_us(start + duration)
        slots.append(_tuple_new(Slot, (begins, ends, doctor, room)))
    return slots


# --- one visit of several examinations


class IncompatibleVisit(ValueError):
    """Examinations that cannot share one visit: ``code`` says why, ``examination_ids`` which ones clash.

    ``different_rooms``: they need rooms of different kinds; ``no_common_hours``: their windows never overlap.
    """

    def __init__(self, code: str, examination_ids: tuple[int, ...]) -> None:
        super().__init__(f"{code}: examinations {list(examination_ids)}")
        self.code = code
        self.examination_ids = examination_ids


def visit_rules(parts: Sequence[ExaminationRules]) -> ExaminationRules:
    """The rules of one visit made of ``parts`` (in the order done), as those of one longer examination.

    The whole visit must satisfy every part: it lasts as long as all of them; it is offered where all of them are;
    it lies inside every part's windows (a part without windows imposes none); it needs the longest notice, the
    shortest horizon, the longest set-up and clean-up buffers of any part, and the one room kind some parts ask for.
    Which doctors do every part is the caller's to say (it lists only those in the query). It keeps the first
    part's ``examination_id``. Raises :class:`IncompatibleVisit` when no time or room could ever suit them all.
    """
    if not parts:
        raise ValueError("a visit needs at least one examination")
    if len(parts) == 1:
        return parts[0]
    kinds = {p.room_kind for p in parts if p.room_kind is not None}
    if len(kinds) > 1:
        raise IncompatibleVisit("different_rooms", tuple(p.examination_id for p in parts if p.room_kind is not None))
    windows: tuple[WeeklyWindow, ...] = ()
    constrained = [p for p in parts if p.windows]
    if constrained:
        windows = _common_windows([p.windows for p in constrained])
        if not windows:
            raise IncompatibleVisit("no_common_hours", tuple(p.examination_id for p in constrained))
    offered = frozenset.intersection(*(p.branch_ids for p in parts))
    return ExaminationRules(
        examination_id=parts[0].examination_id,
        duration_min=sum(p.duration_min for p in parts),
        branch_ids=offered,
        windows=windows,
        min_notice_min=max(p.min_notice_min for p in parts),
        horizon_days=min(p.horizon_days for p in parts),
        buffer_before_min=max(p.buffer_before_min for p in parts),
        buffer_after_min=max(p.buffer_after_min for p in parts),
        room_kind=next(iter(kinds), None),
    )


def _common_windows(each: Sequence[Sequence[WeeklyWindow]]) -> tuple[WeeklyWindow, ...]:
    by_weekday = [_weekly_spans(windows) for windows in each]
    common: list[WeeklyWindow] = []
    for weekday in range(7):
        spans = merge(by_weekday[0][weekday])
        for other in by_weekday[1:]:
            spans = intersect(spans, merge(other[weekday]))
        common.extend(WeeklyWindow(weekday, wall_time(begin), wall_time(finish)) for begin, finish in spans)
    return tuple(common)


# --- API


def free_slots(q: AvailabilityQuery) -> list[Slot]:
    """Every free slot of the query, sorted by ``(start, doctor_id)`` (rules: see the module docstring)."""
    plan = _Plan(q)
    return _materialize([slot for day in plan.days() for slot in day], plan.duration)


def first_free(q: AvailabilityQuery, limit: int) -> list[Slot]:
    """The first ``limit`` free slots (the "that slot was taken, try one of these" list); stops early."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    plan = _Plan(q)
    found: list[tuple[int, int, int]] = []
    for day in plan.days():
        if len(found) >= limit:
            break
        found.extend(day)
    return _materialize(found[:limit], plan.duration)


def explain(
    q: AvailabilityQuery, at: datetime, doctor_id: int | None = None, room_id: int | None = None
) -> list[Reason]:
    """Why a slot starting ``at`` is not free, or a single ``available`` reason naming doctor and room.

    Every reason that applies is listed, in the layer order of :data:`REASON_CODES`; per-doctor reasons
    carry ``doctor_id``. With ``doctor_id=None`` the question is "any doctor": ``available`` with the
    lowest-numbered doctor who is free, else the general reasons plus every doctor's own. A time in the
    past is ``outside_horizon`` ("in the past") only, not also ``too_soon``.

    With ``room_id`` the visit must take that room (one of ``q.rooms``): a room of another kind is ``no_room``,
    and the room's own blackouts and claims are listed (``blackout``, ``booked``, carrying ``room_id``) instead
    of the general ``no_room``.
    """
    return explain_many(q, [at], doctor_id, room_id)[0]


def explain_many(
    q: AvailabilityQuery, starts: Sequence[datetime], doctor_id: int | None = None, room_id: int | None = None
) -> list[list[Reason]]:
    """:func:`explain` for each of ``starts``, preparing the query once (the calendar asks about a whole day)."""
    for at in starts:
        require_aware(at, "at")
    if room_id is not None and all(r.room_id != room_id for r in q.rooms):
        raise ValueError(f"room {room_id} is not one of the query's rooms")
    plan = _Plan(q, only_room=room_id)
    if doctor_id is not None and all(d.doctor_id != doctor_id for d in plan.doctors):
        raise ValueError(f"doctor {doctor_id} is not one of the query's doctors")
    return [_explain(plan, q, at, doctor_id, room_id) for at in starts]


def _explain(
    plan: _Plan, q: AvailabilityQuery, at: datetime, doctor_id: int | None, room_id: int | None
) -> list[Reason]:
    exam = q.examination
    start = to_us(at)
    end = start + plan.duration
    occupied = (start - exam.buffer_before_min * MINUTE, end + exam.buffer_after_min * MINUTE)
    day = plan.day_of(start)

    general: list[Reason] = []
    if start < plan.q_start or end > plan.q_end:
        general.append(Reason("outside_range", "outside the requested period"))
    if start < plan.now:
        general.append(Reason("outside_horizon", "in the past"))
    elif start >= plan.horizon_end:
        general.append(Reason("outside_horizon", "beyond the booking horizon"))
    elif start < plan.notice_end:
        general.append(Reason("too_soon", f"less than {_notice(exam.min_notice_min)} notice"))
    if not plan.offered:
        general.append(Reason("not_offered_at_branch", "examination not offered at this branch"))
    if not day.on_grid(start, plan.step):
        general.append(Reason("off_grid", f"slots start every {q.step_min} minutes from midnight"))
    if not covers(plan.branch_spans(day), start, end):
        general.append(Reason("branch_closed", "outside branch hours"))
    if plan.exam_weekly is not None and not covers(plan.exam_spans(day), start, end):
        general.append(Reason("outside_examination_window", "outside the examination's hours"))
    for blackout in q.blackouts:
        if (
            blackout.scope == "branch"
            and blackout.target_id in (None, q.branch.branch_id)
            and _overlap(blackout.start, blackout.end, start, end)
        ):
            general.append(Reason("blackout", f"blackout: {blackout.reason}"))
    room = plan.room_for(start)
    if room_id is None:
        if room is None:
            general.append(Reason("no_room", "no suitable room free"))
    else:
        general.extend(_room_reasons(q, room_id, occupied))

    per_doctor: dict[int, list[Reason]] = {}
    for doctor in plan.doctors:
        if doctor_id is not None and doctor.doctor_id != doctor_id:
            continue
        own = per_doctor[doctor.doctor_id] = []
        if not covers(doctor.attendance(day), start, end):
            own.append(Reason("doctor_not_attending", "doctor not attending", doctor.doctor_id))
        for blackout in q.blackouts:
            if (
                blackout.scope == "doctor"
                and blackout.target_id == doctor.doctor_id
                and _overlap(blackout.start, blackout.end, start, end)
            ):
                own.append(Reason("blackout", f"blackout: {blackout.reason}", doctor.doctor_id))
        for busy in q.busy:
            if busy.doctor_id == doctor.doctor_id and _overlap(busy.start, busy.end, *occupied):
                own.append(Reason("booked", busy.label, doctor.doctor_id))
        if not general and not own:
            assert room is not None
            return [
                Reason(
                    "available",
                    f"available with doctor {doctor.doctor_id} in room {room}",
                    doctor.doctor_id,
                    room,
                )
            ]

    if not per_doctor and doctor_id is None:
        general.append(Reason("doctor_not_attending", "no doctor for this examination"))
    reasons = general + [reason for own in per_doctor.values() for reason in own]
    unique = list(dict.fromkeys(reasons))  # two holds labelled alike say it once
    return sorted(unique, key=lambda r: (_LAYER[r.code], r.doctor_id is not None, r.doctor_id or 0))


def _notice(minutes: int) -> str:
    """A notice period as people say it: "14 days'", "2 hours'", "1 hour's", "90 minutes'"."""
    for unit, size in (("day", 1440), ("hour", 60)):
        if minutes >= size and minutes % size == 0:
            count = minutes // size
            return f"1 {unit}'s" if count == 1 else f"{count} {unit}s'"
    return "1 minute's" if minutes == 1 else f"{minutes} minutes'"


def _room_reasons(q: AvailabilityQuery, room_id: int, occupied: Interval) -> list[Reason]:
    """Why the named room cannot take the visit: its kind, its blackouts, its claims (buffers are its turnover)."""
    kind = next(r.kind for r in q.rooms if r.room_id == room_id)
    wanted = q.examination.room_kind
    found: list[Reason] = []
    if wanted is not None and kind != wanted:
        found.append(Reason("no_room", f"the room is not a {wanted} room", room_id=room_id))
    for blackout in q.blackouts:
        if (
            blackout.scope == "room"
            and blackout.target_id == room_id
            and _overlap(blackout.start, blackout.end, *occupied)
        ):
            found.append(Reason("blackout", f"room blackout: {blackout.reason}", room_id=room_id))
    for busy in q.busy:
        if busy.room_id == room_id and _overlap(busy.start, busy.end, *occupied):
            found.append(Reason("booked", f"room {busy.label}", room_id=room_id))
    return found


def _overlap(start: datetime, end: datetime, lo: int, hi: int) -> bool:
    return to_us(start) < hi and lo < to_us(end)
