"""Availability: a Jakarta clinic's week, Berlin's DST days, and what explain() says about a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from booking_core.domain.availability import (
    REASON_CODES,
    AvailabilityQuery,
    Blackout,
    BranchHours,
    Busy,
    DatedWindow,
    DoctorSchedule,
    ExaminationRules,
    Reason,
    Room,
    Slot,
    WeeklyWindow,
    explain,
    first_free,
    free_slots,
)
from booking_core.domain.availability_reference import free_slots_reference

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
JAKARTA = ZoneInfo("Asia/Jakarta")
BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# The week of Monday 2 March 2026 in Jakarta (UTC+7, no DST).
BRANCH = BranchHours(1, "Asia/Jakarta", tuple(WeeklyWindow(d, time(8), time(20)) for d in range(MON, SUN)))
DR_SARI = DoctorSchedule(11, (WeeklyWindow(MON, time(9), time(12)), WeeklyWindow(WED, time(9), time(12))))
CONSULTATION = ExaminationRules(101, duration_min=30, branch_ids=frozenset({1}))
CONSULT_ROOM = Room(1, "consult")


def jakarta(day: int, hour: int, minute: int = 0) -> datetime:
    """A Jakarta wall time in March 2026, as the UTC instant the engine speaks."""
    return datetime(2026, 3, day, hour, minute, tzinfo=JAKARTA).astimezone(UTC)


def clinic(**changes: Any) -> AvailabilityQuery:
    base = AvailabilityQuery(
        branch=BRANCH,
        examination=CONSULTATION,
        doctors=(DR_SARI,),
        rooms=(CONSULT_ROOM,),
        busy=(),
        blackouts=(),
        start=jakarta(2, 0),
        end=jakarta(9, 0),
        now=jakarta(1, 8),
        step_min=30,
    )
    return replace(base, **changes)


def wall(slots: list[Slot], zone: ZoneInfo = JAKARTA) -> list[str]:
    return [f"{WEEKDAYS[s.start.astimezone(zone).weekday()]} {s.start.astimezone(zone):%H:%M}" for s in slots]


def codes(reasons: list[Reason]) -> list[str]:
    return [reason.code for reason in reasons]


def mornings(weekday: int, *hours: str) -> list[str]:
    return [f"{WEEKDAYS[weekday]} {hour}" for hour in hours]


SARI_MORNING = ("09:00", "09:30", "10:00", "10:30", "11:00", "11:30")


# --- a week at the Jakarta clinic


def test_dr_sari_is_offered_every_half_hour_of_her_monday_and_wednesday_mornings() -> None:
    q = clinic()
    slots = free_slots(q)
    assert wall(slots) == mornings(MON, *SARI_MORNING) + mornings(WED, *SARI_MORNING)
    assert slots == free_slots_reference(q)


def test_slots_are_utc_last_the_examination_and_name_doctor_and_room() -> None:
    first = free_slots(clinic())[0]
    assert first == Slot(datetime(2026, 3, 2, 2, 0, tzinfo=UTC), datetime(2026, 3, 2, 2, 30, tzinfo=UTC), 11, 1)
    assert first.start.tzinfo is UTC
    assert first.start.utcoffset() == timedelta(0)


def test_an_override_day_off_removes_that_wednesday() -> None:
    sari = replace(DR_SARI, overrides=(DatedWindow(date(2026, 3, 4), None, None),))
    assert wall(free_slots(clinic(doctors=(sari,)))) == mornings(MON, *SARI_MORNING)
    assert codes(explain(clinic(doctors=(sari,)), jakarta(4, 9))) == ["doctor_not_attending"]


def test_an_override_replaces_the_weekly_hours_for_that_date() -> None:
    sari = replace(DR_SARI, overrides=(DatedWindow(date(2026, 3, 4), time(13), time(15)),))
    assert wall(free_slots(clinic(doctors=(sari,))))[6:] == mornings(WED, "13:00", "13:30", "14:00", "14:30")


def test_several_overrides_on_one_date_are_united() -> None:
    sari = replace(
        DR_SARI,
        overrides=(
            DatedWindow(date(2026, 3, 4), time(9), time(10)),
            DatedWindow(date(2026, 3, 4), time(14), time(15)),
        ),
    )
    assert wall(free_slots(clinic(doctors=(sari,))))[6:] == mornings(WED, "09:00", "09:30", "14:00", "14:30")


def test_an_accepted_application_adds_a_saturday() -> None:
    sari = replace(DR_SARI, applications=(DatedWindow(date(2026, 3, 7), time(9), time(11)),))
    q = clinic(doctors=(sari,))
    assert wall(free_slots(q))[12:] == mornings(SAT, "09:00", "09:30", "10:00", "10:30")
    assert free_slots(q) == free_slots_reference(q)


def test_an_application_adds_to_an_override_day() -> None:
    sari = replace(
        DR_SARI,
        overrides=(DatedWindow(date(2026, 3, 4), time(9), time(10)),),
        applications=(DatedWindow(date(2026, 3, 4), time(16), time(17)),),
    )
    assert wall(free_slots(clinic(doctors=(sari,))))[6:] == mornings(WED, "09:00", "09:30", "16:00", "16:30")


def test_a_morning_only_examination_drops_the_afternoon() -> None:
    sari = DoctorSchedule(11, (WeeklyWindow(MON, time(9), time(15)),))
    mornings_only = replace(CONSULTATION, windows=tuple(WeeklyWindow(d, time(8), time(12)) for d in range(6)))
    q = clinic(doctors=(sari,), examination=mornings_only)
    assert wall(free_slots(q)) == mornings(MON, *SARI_MORNING)
    assert explain(q, jakarta(2, 13)) == [
        Reason("outside_examination_window", "outside the examination's hours"),
    ]


def test_a_staff_meeting_blackout_removes_the_lunch_slots() -> None:
    sari = DoctorSchedule(11, (WeeklyWindow(MON, time(9), time(15)),))
    meeting = Blackout(jakarta(2, 11), jakarta(2, 13), "branch", None, "staff meeting")
    q = clinic(doctors=(sari,), blackouts=(meeting,))
    assert wall(free_slots(q)) == mornings(MON, "09:00", "09:30", "10:00", "10:30", "13:00", "13:30", "14:00", "14:30")
    assert explain(q, jakarta(2, 11, 30)) == [Reason("blackout", "blackout: staff meeting")]
    assert explain(q, jakarta(2, 10, 30), 11)[0].code == "available"


def test_a_doctor_blackout_blocks_only_that_doctor() -> None:
    dr_budi = replace(DR_SARI, doctor_id=12)
    training = Blackout(jakarta(2, 9), jakarta(2, 12), "doctor", 12, "training")
    q = clinic(doctors=(DR_SARI, dr_budi), blackouts=(training,))
    monday = [s for s in free_slots(q) if s.start < jakarta(3, 0)]
    assert {s.doctor_id for s in monday} == {11}
    assert explain(q, jakarta(2, 9), 12) == [Reason("blackout", "blackout: training", 12)]


def test_a_blackout_of_another_branch_is_ignored() -> None:
    elsewhere = Blackout(jakarta(2, 9), jakarta(2, 12), "branch", 2, "fire drill")
    assert free_slots(clinic(blackouts=(elsewhere,))) == free_slots(clinic())


def test_a_booked_session_blocks_its_doctor_and_says_booked() -> None:
    session = Busy(jakarta(2, 10), jakarta(2, 10, 30), doctor_id=11, room_id=None)
    q = clinic(busy=(session,))
    assert wall(free_slots(q))[:5] == mornings(MON, "09:00", "09:30", "10:30", "11:00", "11:30")
    assert explain(q, jakarta(2, 10), 11) == [Reason("booked", "booked", 11)]


def test_a_hold_explains_itself_as_held() -> None:
    hold = Busy(jakarta(2, 10), jakarta(2, 10, 30), doctor_id=11, room_id=1, label="held")
    assert explain(clinic(busy=(hold,)), jakarta(2, 10), 11) == [
        Reason("booked", "held", 11),
        Reason("no_room", "no suitable room free"),
    ]


def test_another_doctors_session_does_not_block_dr_sari() -> None:
    session = Busy(jakarta(2, 10), jakarta(2, 10, 30), doctor_id=12, room_id=None)
    assert free_slots(clinic(busy=(session,))) == free_slots(clinic())


def test_buffers_keep_the_doctor_free_around_a_booked_session() -> None:
    session = Busy(jakarta(2, 10), jakarta(2, 10, 30), doctor_id=11, room_id=None)
    buffered = replace(CONSULTATION, buffer_before_min=10, buffer_after_min=10)
    q = clinic(busy=(session,), examination=buffered, step_min=15)
    # 09:15 ends 09:45 (+10 = 09:55, clear); 10:45 starts 10:45 (-10 = 10:35, clear).
    assert wall(free_slots(q))[:6] == mornings(MON, "09:00", "09:15", "10:45", "11:00", "11:15", "11:30")
    assert explain(q, jakarta(2, 9, 30), 11) == [Reason("booked", "booked", 11)]
    assert free_slots(q) == free_slots_reference(q)


def test_buffers_do_not_push_against_a_blackout() -> None:
    meeting = Blackout(jakarta(2, 11), jakarta(2, 12), "branch", None, "staff meeting")
    buffered = replace(CONSULTATION, buffer_after_min=15)
    q = clinic(blackouts=(meeting,), examination=buffered)
    assert wall(free_slots(q))[:4] == mornings(MON, "09:00", "09:30", "10:00", "10:30")


def test_minimum_notice_hides_the_next_two_hours() -> None:
    q = clinic(now=jakarta(2, 8), examination=replace(CONSULTATION, min_notice_min=120))
    assert wall(free_slots(q))[:3] == mornings(MON, "10:00", "10:30", "11:00")
    assert explain(q, jakarta(2, 9, 30)) == [Reason("too_soon", "less than 2 hours' notice")]


def test_the_booking_horizon_ends_the_list() -> None:
    q = clinic(now=jakarta(2, 8), examination=replace(CONSULTATION, horizon_days=2))
    assert wall(free_slots(q)) == mornings(MON, *SARI_MORNING)
    assert explain(q, jakarta(4, 9)) == [Reason("outside_horizon", "beyond the booking horizon")]


def test_a_time_already_gone_is_in_the_past() -> None:
    q = clinic(now=jakarta(2, 10, 5))
    assert wall(free_slots(q))[:2] == mornings(MON, "10:30", "11:00")
    assert explain(q, jakarta(2, 9)) == [Reason("outside_horizon", "in the past")]


def test_the_examination_takes_the_lowest_free_room_of_its_kind() -> None:
    ultrasound = replace(CONSULTATION, room_kind="ultrasound")
    rooms = (Room(3, "ultrasound"), CONSULT_ROOM, Room(2, "ultrasound"))
    cleaning = Busy(jakarta(2, 9), jakarta(2, 10), doctor_id=None, room_id=2, label="cleaning")
    q = clinic(examination=ultrasound, rooms=rooms, busy=(cleaning,))
    assert [(s.start, s.room_id) for s in free_slots(q)[:3]] == [
        (jakarta(2, 9), 3),
        (jakarta(2, 9, 30), 3),
        (jakarta(2, 10), 2),
    ]
    assert explain(q, jakarta(2, 9), 11) == [Reason("available", "available with doctor 11 in room 3", 11, 3)]


def test_with_every_suitable_room_taken_there_is_no_slot() -> None:
    ultrasound = replace(CONSULTATION, room_kind="ultrasound")
    rooms = (Room(2, "ultrasound"), Room(3, "ultrasound"))
    taken = tuple(Busy(jakarta(2, 9), jakarta(2, 10), None, room) for room in (2, 3))
    q = clinic(examination=ultrasound, rooms=rooms, busy=taken)
    assert wall(free_slots(q))[:1] == ["Mon 10:00"]
    assert explain(q, jakarta(2, 9, 30)) == [Reason("no_room", "no suitable room free")]


def test_a_room_blackout_closes_that_room() -> None:
    repairs = Blackout(jakarta(2, 9), jakarta(2, 12), "room", 1, "air conditioning repair")
    q = clinic(blackouts=(repairs,))
    assert wall(free_slots(q)) == mornings(WED, *SARI_MORNING)
    assert explain(q, jakarta(2, 9)) == [Reason("no_room", "no suitable room free")]


def test_a_room_blackout_also_keeps_the_rooms_turnover_clear() -> None:
    repairs = Blackout(jakarta(2, 10), jakarta(2, 11), "room", 1, "air conditioning repair")
    q = clinic(blackouts=(repairs,), examination=replace(CONSULTATION, buffer_after_min=15))
    # 09:30-10:00 would need the room until 10:15 to clean up; a doctor blackout would not mind.
    assert wall(free_slots(q))[:3] == mornings(MON, "09:00", "11:00", "11:30")
    assert explain(q, jakarta(2, 9, 30)) == [Reason("no_room", "no suitable room free")]
    assert free_slots(q) == free_slots_reference(q)


def test_without_a_room_of_its_kind_the_examination_cannot_be_booked() -> None:
    q = clinic(examination=replace(CONSULTATION, room_kind="x-ray"))
    assert free_slots(q) == []
    assert codes(explain(q, jakarta(2, 9))) == ["no_room"]


def test_an_examination_not_offered_at_the_branch_has_no_slots() -> None:
    q = clinic(examination=replace(CONSULTATION, branch_ids=frozenset({2})))
    assert free_slots(q) == []
    assert codes(explain(q, jakarta(2, 9))) == ["not_offered_at_branch"]


def test_a_closed_day_of_the_branch_has_no_slots() -> None:
    q = clinic(branch=replace(BRANCH, closed_days=(date(2026, 3, 2),)))
    assert wall(free_slots(q)) == mornings(WED, *SARI_MORNING)
    assert explain(q, jakarta(2, 9)) == [Reason("branch_closed", "outside branch hours")]


def test_on_sunday_the_branch_is_closed_even_if_the_doctor_would_come() -> None:
    sari = replace(DR_SARI, weekly=(*DR_SARI.weekly, WeeklyWindow(SUN, time(9), time(12))))
    q = clinic(doctors=(sari,))
    assert "Sun" not in {label.split()[0] for label in wall(free_slots(q))}
    assert codes(explain(q, jakarta(8, 9))) == ["branch_closed"]


def test_a_slot_must_end_by_the_end_of_the_requested_period() -> None:
    q = clinic(start=jakarta(2, 9, 30), end=jakarta(2, 11, 15))
    assert wall(free_slots(q)) == mornings(MON, "09:30", "10:00", "10:30")
    assert codes(explain(q, jakarta(2, 11))) == ["outside_range"]


def test_two_doctors_are_listed_by_start_then_doctor() -> None:
    dr_budi = DoctorSchedule(7, (WeeklyWindow(MON, time(10), time(11)),))
    slots = free_slots(clinic(doctors=(DR_SARI, dr_budi), end=jakarta(3, 0)))
    assert [(s.start, s.doctor_id) for s in slots[1:5]] == [
        (jakarta(2, 9, 30), 11),
        (jakarta(2, 10), 7),
        (jakarta(2, 10), 11),
        (jakarta(2, 10, 30), 7),
    ]


def test_first_free_offers_the_next_few_slots() -> None:
    q = clinic()
    assert first_free(q, 3) == free_slots(q)[:3]
    assert first_free(q, 100) == free_slots(q)
    assert first_free(q, 0) == []


def test_back_to_back_windows_join_into_one() -> None:
    sari = DoctorSchedule(11, (WeeklyWindow(MON, time(9), time(10)), WeeklyWindow(MON, time(10), time(11))))
    q = clinic(doctors=(sari,), examination=replace(CONSULTATION, duration_min=60))
    assert wall(free_slots(q)) == mornings(MON, "09:00", "09:30", "10:00")


def test_a_slot_never_runs_past_local_midnight() -> None:
    all_day = replace(BRANCH, weekly=tuple(WeeklyWindow(d, time(0), time(0)) for d in range(7)))
    night = DoctorSchedule(11, (WeeklyWindow(MON, time(20), time(0)), WeeklyWindow(TUE, time(0), time(4))))
    q = clinic(branch=all_day, doctors=(night,), examination=replace(CONSULTATION, duration_min=120), step_min=60)
    assert wall(free_slots(q)) == [
        *mornings(MON, "20:00", "21:00", "22:00"),
        *mornings(TUE, "00:00", "01:00", "02:00"),
    ]
    assert codes(explain(q, jakarta(2, 23))) == ["branch_closed", "doctor_not_attending"]
    assert free_slots(q) == free_slots_reference(q)


def test_a_jakarta_night_slot_belongs_to_the_local_day_not_the_utc_one() -> None:
    night_branch = replace(BRANCH, weekly=(WeeklyWindow(MON, time(0), time(2)),))
    sari = DoctorSchedule(11, (WeeklyWindow(MON, time(0), time(2)),))
    slots = free_slots(clinic(branch=night_branch, doctors=(sari,), start=jakarta(1, 12)))
    assert [s.start for s in slots] == [
        datetime(2026, 3, 1, 17, 0, tzinfo=UTC) + timedelta(minutes=m) for m in (0, 30, 60, 90)
    ]


# --- explain()


def test_every_reason_that_applies_is_listed_in_layer_order() -> None:
    hold = Busy(jakarta(8, 21), jakarta(8, 21, 30), doctor_id=11, room_id=1, label="held")
    off = Blackout(jakarta(8, 20), jakarta(8, 23), "doctor", 11, "annual leave")
    q = clinic(busy=(hold,), blackouts=(off,), examination=replace(CONSULTATION, horizon_days=3))
    assert explain(q, jakarta(8, 21, 10), 11) == [
        Reason("outside_horizon", "beyond the booking horizon"),
        Reason("off_grid", "slots start every 30 minutes from midnight"),
        Reason("branch_closed", "outside branch hours"),
        Reason("doctor_not_attending", "doctor not attending", 11),
        Reason("blackout", "blackout: annual leave", 11),
        Reason("booked", "held", 11),
        Reason("no_room", "no suitable room free"),
    ]
    assert [REASON_CODES.index(code) for code in codes(explain(q, jakarta(8, 21), 11))] == sorted(
        REASON_CODES.index(code) for code in codes(explain(q, jakarta(8, 21), 11))
    )


def test_explain_for_any_doctor_names_the_first_one_free() -> None:
    dr_budi = DoctorSchedule(7, (WeeklyWindow(MON, time(9), time(12)),))
    session = Busy(jakarta(2, 9), jakarta(2, 9, 30), doctor_id=7, room_id=None)
    q = clinic(doctors=(DR_SARI, dr_budi), busy=(session,))
    assert explain(q, jakarta(2, 9)) == [Reason("available", "available with doctor 11 in room 1", 11, 1)]
    assert explain(q, jakarta(2, 9, 30)) == [Reason("available", "available with doctor 7 in room 1", 7, 1)]


def test_explain_for_any_doctor_gives_each_doctors_reasons() -> None:
    dr_budi = DoctorSchedule(7, (WeeklyWindow(TUE, time(9), time(12)),))
    session = Busy(jakarta(2, 9), jakarta(2, 9, 30), doctor_id=11, room_id=None)
    q = clinic(doctors=(DR_SARI, dr_budi), busy=(session,))
    assert explain(q, jakarta(2, 9)) == [
        Reason("doctor_not_attending", "doctor not attending", 7),
        Reason("booked", "booked", 11),
    ]


def test_a_time_between_grid_points_is_not_a_slot_start() -> None:
    assert explain(clinic(), jakarta(2, 9, 10)) == [Reason("off_grid", "slots start every 30 minutes from midnight")]


def test_explain_without_doctors_says_no_doctor() -> None:
    assert codes(explain(clinic(doctors=()), jakarta(2, 9))) == ["doctor_not_attending"]
    assert free_slots(clinic(doctors=())) == []


def test_explain_refuses_a_doctor_outside_the_query() -> None:
    with pytest.raises(ValueError, match="doctor 99"):
        explain(clinic(), jakarta(2, 9), 99)


# --- daylight saving time in Berlin


def berlin(month: int, day: int, hour: int, minute: int = 0, *, fold: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN, fold=fold).astimezone(UTC)


def berlin_day(
    day: date,
    doctor_hours: tuple[time, time],
    *,
    branch_hours: tuple[time, time] = (time(0), time(0)),
    step_min: int = 30,
    **rules: Any,
) -> AvailabilityQuery:
    weekday = day.weekday()
    midnight = datetime.combine(day, time(), tzinfo=BERLIN).astimezone(UTC)
    return AvailabilityQuery(
        branch=BranchHours(5, "Europe/Berlin", (WeeklyWindow(weekday, *branch_hours),)),
        examination=ExaminationRules(1, branch_ids=frozenset({5}), **rules),
        doctors=(DoctorSchedule(3, (WeeklyWindow(weekday, *doctor_hours),)),),
        rooms=(Room(1, "consult"),),
        busy=(),
        blackouts=(),
        start=midnight - timedelta(hours=6),
        end=midnight + timedelta(hours=30),
        now=midnight - timedelta(days=1),
        step_min=step_min,
    )


SPRING = date(2026, 3, 29)  # 02:00 CET -> 03:00 CEST
AUTUMN = date(2026, 10, 25)  # 03:00 CEST -> 02:00 CET


def test_the_skipped_hour_of_the_spring_forward_day_has_no_slots() -> None:
    q = berlin_day(SPRING, (time(1), time(4)), duration_min=30)
    slots = free_slots(q)
    assert wall(slots, BERLIN) == ["Sun 01:00", "Sun 01:30", "Sun 03:00", "Sun 03:30"]
    assert [s.start for s in slots] == [datetime(2026, 3, 29, 0, m, tzinfo=UTC) for m in (0, 30)] + [
        datetime(2026, 3, 29, 1, m, tzinfo=UTC) for m in (0, 30)
    ]
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
    assert slots == free_slots_reference(q)


def test_a_slot_across_the_spring_jump_lasts_its_real_duration() -> None:
    slots = free_slots(berlin_day(SPRING, (time(1), time(4)), duration_min=60))
    # 01:30 CET + 60 min = 03:30 CEST on the wall, one real hour.
    assert [(s.start, s.end) for s in slots][:2] == [
        (berlin(3, 29, 1), berlin(3, 29, 3)),
        (berlin(3, 29, 1, 30), berlin(3, 29, 3, 30)),
    ]


def test_a_window_ending_inside_the_skipped_hour_closes_when_the_clock_lands() -> None:
    q = berlin_day(SPRING, (time(0), time(2, 30)), duration_min=30)
    slots = free_slots(q)
    assert wall(slots, BERLIN) == ["Sun 00:00", "Sun 00:30", "Sun 01:00", "Sun 01:30"]
    assert slots[-1].end == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert slots == free_slots_reference(q)


def test_the_spring_forward_day_has_twenty_three_hours_of_slots() -> None:
    q = berlin_day(SPRING, (time(0), time(0)), duration_min=60, step_min=60)
    slots = free_slots(q)
    assert len(slots) == 23
    assert [s.start for s in slots] == [datetime(2026, 3, 28, 23, tzinfo=UTC) + timedelta(hours=h) for h in range(23)]
    assert slots == free_slots_reference(q)


def test_the_repeated_hour_of_the_fall_back_day_is_offered_once() -> None:
    q = berlin_day(AUTUMN, (time(1), time(4)), duration_min=60, step_min=60)
    slots = free_slots(q)
    # 01:00 CEST, 02:00 CEST (the first 02:00), 03:00 CET: the second 02:00 is not a grid start.
    assert [s.start for s in slots] == [
        datetime(2026, 10, 24, 23, tzinfo=UTC),
        datetime(2026, 10, 25, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 2, tzinfo=UTC),
    ]
    assert len({s.start for s in slots}) == len(slots)
    assert all(s.end - s.start == timedelta(hours=1) for s in slots)
    assert slots == free_slots_reference(q)
    assert codes(explain(q, berlin(10, 25, 2, fold=1))) == ["off_grid"]


def test_the_fall_back_day_offers_each_wall_hour_once() -> None:
    q = berlin_day(AUTUMN, (time(0), time(0)), duration_min=60, step_min=60)
    slots = free_slots(q)
    assert len(slots) == 24
    assert len({s.start for s in slots}) == 24
    assert slots[-1].end == datetime(2026, 10, 25, 23, tzinfo=UTC)  # midnight CET
    assert slots == free_slots_reference(q)


@pytest.mark.parametrize(("day", "opens_utc"), [(SPRING, 7), (AUTUMN, 8), (date(2026, 6, 14), 7)])
def test_a_nine_to_five_branch_keeps_eight_hours_on_dst_days(day: date, opens_utc: int) -> None:
    q = berlin_day(day, (time(9), time(17)), branch_hours=(time(9), time(17)), duration_min=60, step_min=60)
    slots = free_slots(q)
    assert wall(slots, BERLIN) == [f"Sun {h:02d}:00" for h in range(9, 17)]
    assert slots[0].start == datetime(day.year, day.month, day.day, opens_utc, tzinfo=UTC)
    assert all(s.end - s.start == timedelta(hours=1) for s in slots)
    assert slots == free_slots_reference(q)


def test_explain_agrees_with_the_slots_on_the_fall_back_night() -> None:
    q = berlin_day(AUTUMN, (time(1), time(4)), duration_min=60, step_min=60)
    offered = {s.start for s in free_slots(q)}
    moment = datetime(2026, 10, 24, 22, tzinfo=UTC)
    while moment < datetime(2026, 10, 25, 4, tzinfo=UTC):
        assert (explain(q, moment, 3)[0].code == "available") == (moment in offered)
        moment += timedelta(minutes=30)


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        ("America/Havana", date(2026, 3, 8)),  # 00:00 -> 01:00: the day starts at one o'clock
        ("America/Santiago", date(2026, 4, 4)),  # 24:00 -> 23:00: the last hour of Saturday comes twice
        ("Australia/Lord_Howe", date(2026, 4, 5)),  # clocks go back half an hour
    ],
)
def test_zones_that_change_clocks_at_midnight_or_by_half_an_hour_match_the_reference(tz: str, day: date) -> None:
    every_day = tuple(WeeklyWindow(d, time(0), time(0)) for d in range(7))
    q = AvailabilityQuery(
        branch=BranchHours(1, tz, every_day),
        examination=ExaminationRules(1, 45, frozenset({1})),
        doctors=(DoctorSchedule(1, every_day),),
        rooms=(CONSULT_ROOM,),
        busy=(),
        blackouts=(),
        start=datetime.combine(day - timedelta(days=1), time(12), tzinfo=UTC),
        end=datetime.combine(day + timedelta(days=1), time(12), tzinfo=UTC),
        now=datetime.combine(day - timedelta(days=2), time(), tzinfo=UTC),
        step_min=20,
    )
    slots = free_slots(q)
    assert len({s.start for s in slots}) == len(slots)
    assert slots == free_slots_reference(q)


# --- bad input


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        clinic(start=datetime(2026, 3, 2, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        clinic(now=datetime(2026, 3, 2, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        Busy(datetime(2026, 3, 2, 9), jakarta(2, 10), 11, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        explain(clinic(), datetime(2026, 3, 2, 9))


def test_intervals_that_end_before_they_start_are_refused() -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        clinic(start=jakarta(3, 0), end=jakarta(2, 0))
    with pytest.raises(ValueError, match="must end after it starts"):
        Busy(jakarta(2, 10), jakarta(2, 10), 11, None)
    with pytest.raises(ValueError, match="must end after it starts"):
        Blackout(jakarta(2, 12), jakarta(2, 11), "branch", None, "staff meeting")
    with pytest.raises(ValueError, match="must end after it starts"):
        WeeklyWindow(MON, time(12), time(9))


@pytest.mark.parametrize(
    "build",
    [
        lambda: WeeklyWindow(7, time(9), time(10)),
        lambda: DatedWindow(date(2026, 3, 2), time(9), None),
        lambda: BranchHours(1, "Mars/Olympus_Mons", ()),
        lambda: ExaminationRules(1, 0, frozenset({1})),
        lambda: ExaminationRules(1, 30, frozenset({1}), buffer_after_min=-5),
        lambda: Busy(jakarta(2, 9), jakarta(2, 10), None, None),
        lambda: Blackout(jakarta(2, 9), jakarta(2, 10), "doctor", None, "leave"),
        lambda: clinic(doctors=(DR_SARI, DR_SARI)),
        lambda: clinic(step_min=0),
        lambda: first_free(clinic(), -1),
    ],
)
def test_nonsense_is_refused_with_a_value_error(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_a_window_may_run_until_midnight() -> None:
    assert WeeklyWindow(FRI, time(18), time(0)).end == time(0)
    q = clinic(
        branch=replace(BRANCH, weekly=(WeeklyWindow(MON, time(22), time(0)),)),
        doctors=(DoctorSchedule(11, (WeeklyWindow(MON, time(22), time(0)),)),),
    )
    assert wall(free_slots(q)) == mornings(MON, "22:00", "22:30", "23:00", "23:30")


def test_aware_datetimes_in_other_zones_are_read_as_instants() -> None:
    local = clinic(start=datetime(2026, 3, 2, tzinfo=JAKARTA), end=datetime(2026, 3, 9, tzinfo=JAKARTA))
    assert free_slots(local) == free_slots(clinic())
