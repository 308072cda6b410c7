"""The availability rules spelled out the slow way: the oracle for tests and the baseline for the benchmark.

:func:`free_slots_reference` walks every grid start of every local day and checks every minute of the
slot (and of its buffers) against every window, busy interval and blackout with plain loops. It shares no
code with :mod:`booking_core.domain.availability` beyond the data types, so the two can check each other.

It works at whole-minute resolution: window times, busy intervals, blackouts and the query bounds must be
whole minutes (as the clinic's data are), and so must the zone's offsets (Europe/Berlin, Asia/Jakarta).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking_core.domain.availability import (
    AvailabilityQuery,
    DoctorSchedule,
    Room,
    Slot,
    WeeklyWindow,
)

__all__ = ["free_slots_reference"]

_MINUTE = timedelta(minutes=1)


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    """The start of every minute in ``[start, end)``."""
    out = []
    moment = start
    while moment < end:
        out.append(moment)
        moment += _MINUTE
    return out


class _Clock:
    """Local wall time of the branch, worked out by brute force."""

    def __init__(self, tz: str) -> None:
        self.zone = ZoneInfo(tz)
        self._first: dict[datetime, datetime] = {}

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def first_reading(self, wall: datetime) -> datetime:
        """The first instant (a whole minute) at which the local clock reads ``wall`` or later."""
        if wall not in self._first:
            # 15 h before ``wall`` read as UTC, every zone's clock still reads earlier than ``wall``.
            moment = wall.replace(tzinfo=UTC) - timedelta(hours=15)
            while self.local(moment) < wall:
                moment += _MINUTE
            self._first[wall] = moment
        return self._first[wall]

    def inside(self, day: date, start: time, end: time, moment: datetime) -> bool:
        """Whether ``moment`` is in the wall-clock window ``start``-``end`` of ``day`` (end 00:00 = 24:00)."""
        opens = self.first_reading(datetime.combine(day, start))
        closing_day = day + timedelta(days=1) if end == time(0) else day
        closes = self.first_reading(datetime.combine(closing_day, end))
        return opens <= moment < closes


def _in_weekly(clock: _Clock, windows: tuple[WeeklyWindow, ...], day: date, moment: datetime) -> bool:
    return any(w.weekday == day.weekday() and clock.inside(day, w.start, w.end, moment) for w in windows)


def _doctor_attends(clock: _Clock, doctor: DoctorSchedule, day: date, moment: datetime) -> bool:
    for application in doctor.applications:
        if (
            application.day == day
            and application.start is not None
            and application.end is not None
            and clock.inside(day, application.start, application.end, moment)
        ):
            return True
    overrides = [o for o in doctor.overrides if o.day == day]
    if not overrides:
        return _in_weekly(clock, doctor.weekly, day, moment)
    for override in overrides:
        if (
            override.start is not None
            and override.end is not None
            and clock.inside(day, override.start, override.end, moment)
        ):
            return True
    return False


def _doctor_free(q: AvailabilityQuery, clock: _Clock, doctor: DoctorSchedule, day: date, start: datetime) -> bool:
    exam = q.examination
    end = start + timedelta(minutes=exam.duration_min)
    for moment in _minutes(start, end):
        if clock.local(moment).date() != day:
            return False
        if day in q.branch.closed_days or not _in_weekly(clock, q.branch.weekly, day, moment):
            return False
        if exam.windows and not _in_weekly(clock, exam.windows, day, moment):
            return False
        if not _doctor_attends(clock, doctor, day, moment):
            return False
        for blackout in q.blackouts:
            applies = (blackout.scope == "branch" and blackout.target_id in (None, q.branch.branch_id)) or (
                blackout.scope == "doctor" and blackout.target_id == doctor.doctor_id
            )
            if applies and blackout.start <= moment < blackout.end:
                return False
    occupied_start = start - timedelta(minutes=exam.buffer_before_min)
    occupied_end = end + timedelta(minutes=exam.buffer_after_min)
    for moment in _minutes(occupied_start, occupied_end):
        for busy in q.busy:
            if busy.doctor_id == doctor.doctor_id and busy.start <= moment < busy.end:
                return False
    return True


def _room_free(q: AvailabilityQuery, room: Room, start: datetime) -> bool:
    exam = q.examination
    end = start + timedelta(minutes=exam.duration_min)
    occupied_start = start - timedelta(minutes=exam.buffer_before_min)
    occupied_end = end + timedelta(minutes=exam.buffer_after_min)
    for moment in _minutes(occupied_start, occupied_end):
        for busy in q.busy:
            if busy.room_id == room.room_id and busy.start <= moment < busy.end:
                return False
        for blackout in q.blackouts:
            if (
                blackout.scope == "room"
                and blackout.target_id == room.room_id
                and blackout.start <= moment < blackout.end
            ):
                return False
    return True


def free_slots_reference(q: AvailabilityQuery) -> list[Slot]:
    """Same answer as :func:`~booking_core.domain.availability.free_slots`, by brute force."""
    exam = q.examination
    if q.branch.branch_id not in exam.branch_ids:
        return []
    clock = _Clock(q.branch.tz)
    duration = timedelta(minutes=exam.duration_min)
    doctors = sorted(q.doctors, key=lambda d: d.doctor_id)
    rooms = sorted((r for r in q.rooms if exam.room_kind is None or r.kind == exam.room_kind), key=lambda r: r.room_id)
    slots: list[Slot] = []
    day = clock.local(q.start).date() - timedelta(days=1)
    while day <= clock.local(q.end).date() + timedelta(days=1):
        for minute_of_day in range(0, 24 * 60, q.step_min):
            wall = datetime.combine(day, time()) + timedelta(minutes=minute_of_day)
            start = wall.replace(tzinfo=clock.zone, fold=0).astimezone(UTC)
            if clock.local(start) != wall:
                continue  # this wall time does not exist (clocks went forward)
            if not (q.start <= start and start + duration <= q.end):
                continue
            if start < q.now + timedelta(minutes=exam.min_notice_min):
                continue
            if start >= q.now + timedelta(days=exam.horizon_days):
                continue
            for doctor in doctors:
                if not _doctor_free(q, clock, doctor, day, start):
                    continue
                room = next((r for r in rooms if _room_free(q, r, start)), None)
                if room is not None:
                    slots.append(Slot(start, start + duration, doctor.doctor_id, room.room_id))
        day += timedelta(days=1)
    return sorted(slots, key=lambda s: (s.start, s.doctor_id))
