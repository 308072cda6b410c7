"""Availability against its brute-force reference, on random small clinics in Berlin and Jakarta."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_core.domain.availability import (
    REASON_CODES,
    AvailabilityQuery,
    Blackout,
    BlackoutScope,
    BranchHours,
    Busy,
    DatedWindow,
    DoctorSchedule,
    ExaminationRules,
    Room,
    WeeklyWindow,
    explain,
    first_free,
    free_slots,
)
from booking_core.domain.availability_reference import free_slots_reference
from booking_core.domain.intervals import covers, intersect, merge, overlaps, subtract

# DST days in Berlin (29 March, 25 October 2026) and their neighbours, plus an ordinary June day.
FIRST_DAYS = [date(2026, 3, 28), date(2026, 3, 29), date(2026, 10, 24), date(2026, 10, 25), date(2026, 6, 15)]
ZONES = ["Europe/Berlin", "Asia/Jakarta"]
KINDS = ["consult", "ultrasound"]
SCOPES: list[BlackoutScope] = ["branch", "doctor", "room"]

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def wall_windows(draw: st.DrawFn) -> tuple[time, time]:
    """A window on the quarter hour, often over the small hours where the clocks change; end 00:00 = 24:00."""
    start = draw(st.integers(0, 12) | st.integers(0, 63)) * 15
    end = draw(st.integers(start // 15 + 1, 96)) * 15
    return time(start // 60, start % 60), time((end // 60) % 24, end % 60)


@st.composite
def queries(draw: st.DrawFn) -> AvailabilityQuery:
    tz = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(tz)
    first_day = draw(st.sampled_from(FIRST_DAYS))
    days = [first_day + timedelta(days=n) for n in range(draw(st.integers(1, 3)))]
    on_a_day = st.sampled_from(days)

    def weekly(max_per_day: int, *, all_day: bool = False) -> tuple[WeeklyWindow, ...]:
        """Windows on the weekdays of the query (at least one each); other weekdays stay closed."""
        if all_day and draw(st.booleans()):
            return tuple(WeeklyWindow(weekday, time(0), time(0)) for weekday in range(7))
        return tuple(
            WeeklyWindow(weekday, *span)
            for weekday in sorted({d.weekday() for d in days})
            for span in draw(st.lists(wall_windows(), min_size=1, max_size=max_per_day))
        )

    def dated(max_size: int) -> tuple[DatedWindow, ...]:
        drawn = draw(st.lists(st.tuples(on_a_day, st.none() | wall_windows()), max_size=max_size))
        return tuple(DatedWindow(day, *(span or (None, None))) for day, span in drawn)

    branch = BranchHours(
        1,
        tz,
        weekly(2, all_day=True),
        closed_days=tuple(draw(st.lists(on_a_day, max_size=1)) if len(days) > 1 else ()),
    )
    doctor_ids = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3, unique=True))
    doctors = tuple(DoctorSchedule(d, weekly(2), dated(2), dated(2)) for d in doctor_ids)
    room_ids = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3, unique=True))
    rooms = tuple(Room(r, draw(st.sampled_from(KINDS))) for r in room_ids)
    exam = ExaminationRules(
        examination_id=1,
        duration_min=draw(st.integers(10, 90)),
        branch_ids=frozenset({2})
        if draw(st.integers(0, 9)) == 7
        else draw(st.sampled_from([frozenset({1}), frozenset({1, 2})])),
        windows=weekly(2) if draw(st.booleans()) else (),
        min_notice_min=draw(st.sampled_from([0, 0, 30, 240])),
        horizon_days=draw(st.sampled_from([4, 2, 1, 0])),
        buffer_before_min=draw(st.sampled_from([0, 0, 5, 20])),
        buffer_after_min=draw(st.sampled_from([0, 0, 10, 15])),
        room_kind=draw(st.sampled_from([None, *KINDS])),
    )

    midnight = datetime.combine(first_day, time(), tzinfo=zone).astimezone(UTC)
    span_minutes = len(days) * 24 * 60

    def instant() -> datetime:
        return midnight + timedelta(minutes=draw(st.integers(-60, span_minutes + 60)))

    def length() -> timedelta:
        return timedelta(minutes=draw(st.integers(5, 180)))

    busy = []
    for _ in range(draw(st.integers(0, 8))):
        doctor = draw(st.sampled_from([None, *doctor_ids]))
        room = draw(st.sampled_from([*room_ids])) if doctor is None else draw(st.sampled_from([None, *room_ids]))
        start = instant()
        busy.append(Busy(start, start + length(), doctor, room, draw(st.sampled_from(["booked", "held"]))))
    blackouts = []
    for _ in range(draw(st.integers(0, 3))):
        scope = draw(st.sampled_from(SCOPES))
        target = {
            "branch": draw(st.sampled_from([None, 1, 2])),
            "doctor": draw(st.sampled_from([*doctor_ids, 42])),
            "room": draw(st.sampled_from([*room_ids, 42])),
        }[scope]
        start = instant()
        blackouts.append(Blackout(start, start + length(), scope, target, "closed"))

    start = midnight + timedelta(minutes=draw(st.integers(-120, 300)))
    end = midnight + timedelta(minutes=span_minutes - draw(st.integers(-120, 300)))
    return AvailabilityQuery(
        branch=branch,
        examination=exam,
        doctors=doctors,
        rooms=rooms,
        busy=tuple(busy),
        blackouts=tuple(blackouts),
        start=start,
        end=end,
        now=midnight + timedelta(minutes=draw(st.integers(-24 * 60, 6 * 60))),
        step_min=draw(st.integers(5, 30)),
    )


def _occupied(q: AvailabilityQuery, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    exam = q.examination
    return start - timedelta(minutes=exam.buffer_before_min), end + timedelta(minutes=exam.buffer_after_min)


@PROPERTY_SETTINGS
@given(queries())
def test_the_engine_gives_the_same_slots_as_the_brute_force_reference(q: AvailabilityQuery) -> None:
    slots = free_slots(q)
    assert slots == free_slots_reference(q)
    assert first_free(q, 3) == slots[:3]
    for slot in slots:
        lo, hi = _occupied(q, slot.start, slot.end)
        for busy in q.busy:
            if busy.doctor_id == slot.doctor_id or busy.room_id == slot.room_id:
                assert not (busy.start < hi and lo < busy.end), (slot, busy)
        reasons = explain(q, slot.start, slot.doctor_id)
        assert [(r.code, r.doctor_id, r.room_id) for r in reasons] == [("available", slot.doctor_id, slot.room_id)]


@PROPERTY_SETTINGS
@given(queries(), st.data())
def test_explain_says_available_exactly_for_the_offered_slots(q: AvailabilityQuery, data: st.DataObject) -> None:
    offered = {(slot.start, slot.doctor_id) for slot in free_slots(q)}
    first_of_any = {}
    for slot in free_slots(q):
        first_of_any.setdefault(slot.start, slot.doctor_id)
    zone = ZoneInfo(q.branch.tz)
    local_midnight = datetime.combine(q.start.astimezone(zone).date(), time(), tzinfo=zone)
    for _ in range(10):
        if data.draw(st.booleans()):
            # A grid time: aware + timedelta is wall-clock arithmetic, then fold=0 on the way to UTC.
            at = (local_midnight + timedelta(minutes=q.step_min * data.draw(st.integers(0, 300)))).astimezone(UTC)
        else:
            at = q.start + timedelta(minutes=data.draw(st.integers(-30, 3 * 24 * 60)))
        for doctor in q.doctors:
            reasons = explain(q, at, doctor.doctor_id)
            assert reasons, "explain always says something"
            assert (reasons[0].code == "available") == ((at, doctor.doctor_id) in offered)
            layers = [REASON_CODES.index(r.code) for r in reasons]
            assert layers == sorted(layers)
        anyone = explain(q, at)
        if at in first_of_any:
            assert [(r.code, r.doctor_id) for r in anyone] == [("available", first_of_any[at])]
        else:
            assert "available" not in {r.code for r in anyone}


def _points(intervals: list[tuple[int, int]]) -> set[int]:
    return {point for start, end in intervals for point in range(start, end)}


interval_lists = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)).map(lambda p: (p[0], p[0] + p[1])))


@settings(max_examples=200, deadline=None)
@given(interval_lists, interval_lists, st.integers(0, 70), st.integers(1, 15))
def test_interval_arithmetic_matches_sets_of_points(
    a: list[tuple[int, int]], b: list[tuple[int, int]], start: int, length: int
) -> None:
    ma, mb = merge(a), merge(b)
    assert _points(ma) == _points(a)
    assert all(x[1] < y[0] for x, y in pairwise(ma))  # sorted, disjoint, not touching
    assert _points(intersect(ma, mb)) == _points(a) & _points(b)
    assert _points(subtract(ma, mb)) == _points(a) - _points(b)
    assert merge(subtract(ma, mb)) == subtract(ma, mb)
    window = set(range(start, start + length))
    assert covers(ma, start, start + length) == (window <= _points(a))
    assert overlaps(ma, start, start + length) == bool(window & _points(a))
