"""The visit's own rules (issue 13): check-in, start and complete need an accepted visit on its day, back-dating is
explicit; and a waiting patient's expected call is never before their booked time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_core.domain.lifecycle import (
    NOT_ACCEPTED_MESSAGE,
    SessionStatus,
    VisitFacts,
    check_in_refusal,
    earliest_start_day,
    start_days_ahead,
    step_refusal,
)
from booking_core.domain.queue import QueueEntry, SortMode, estimate, positions

JAKARTA = "Asia/Jakarta"
NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # Monday 09:00 in Jakarta
OPEN, COMPLETED, CANCELLED, WAITING = (
    SessionStatus.OPEN,
    SessionStatus.COMPLETED,
    SessionStatus.CANCELLED,
    SessionStatus.WAITING,
)


def visit(starts_in: timedelta, *, accepted: bool = True, minutes: int = 30) -> VisitFacts:
    start = NOW + starts_in
    return VisitFacts(accepted=accepted, starts_at=start, ends_at=start + timedelta(minutes=minutes), tz=JAKARTA)


# --- acceptance, the visit's day, back-dating ------------------------------------------------------------------


def test_check_in_needs_an_accepted_visit_with_one_answer() -> None:
    refused = check_in_refusal(visit(timedelta(hours=1), accepted=False))
    assert refused is not None and (refused.code, str(refused)) == ("not_accepted", NOT_ACCEPTED_MESSAGE)
    assert check_in_refusal(visit(timedelta(hours=1))) is None


@pytest.mark.parametrize("target", [OPEN, COMPLETED])
def test_an_unaccepted_visit_is_not_started_or_completed(target: SessionStatus) -> None:
    refused = step_refusal(target, visit(timedelta(minutes=-5), accepted=False), now=NOW)
    assert refused is not None and refused.code == "not_accepted" and str(refused) == NOT_ACCEPTED_MESSAGE


def test_the_reported_case_two_days_before_it_is_refused_even_once_accepted() -> None:
    refused = step_refusal(OPEN, visit(timedelta(days=2)), now=NOW)
    assert refused is not None and refused.code == "not_its_day"
    assert str(refused) == "This visit is on Wed 9 Dec 2026; it can be started on its day."


def test_later_the_same_day_and_earlier_days_are_fine() -> None:
    end_of_day = datetime(2026, 12, 7, 16, 59, tzinfo=UTC)  # 23:59 in Jakarta
    assert step_refusal(OPEN, visit(end_of_day - NOW), now=NOW) is None
    assert step_refusal(OPEN, visit(timedelta(days=-3)), now=NOW) is None
    assert step_refusal(COMPLETED, visit(timedelta(hours=-1)), now=NOW) is None


def test_the_day_is_the_branchs_local_day_not_utcs() -> None:
    # 00:30 on Tuesday in Jakarta is still Monday in UTC: not today for the clinic.
    tuesday_early = datetime(2026, 12, 7, 17, 30, tzinfo=UTC)
    refused = step_refusal(OPEN, visit(tuesday_early - NOW), now=NOW)
    assert refused is not None and refused.code == "not_its_day"


def test_a_clinic_may_allow_starting_a_few_days_early() -> None:
    two_days = visit(timedelta(days=2))
    assert step_refusal(OPEN, two_days, now=NOW, days_ahead=2) is None
    refused = step_refusal(OPEN, two_days, now=NOW, days_ahead=1)
    assert refused is not None and "it can be started from Tue 8 Dec." in str(refused)
    assert earliest_start_day(two_days, days_ahead=1).isoformat() == "2026-12-08"


@pytest.mark.parametrize(("setting", "days"), [(None, 0), (3, 3), (-1, 0), (True, 0), ("2", 0), (400, 31)])
def test_the_setting_is_read_safely(setting: object, days: int) -> None:
    assert start_days_ahead(setting) == days


def test_back_dating_a_past_visit_needs_a_reason_and_no_acceptance() -> None:
    past = visit(timedelta(days=-1), accepted=False)
    assert step_refusal(OPEN, past, now=NOW, backdated=True, backdated_reason="From the day sheet") is None
    for blank in (None, "", "   "):
        refused = step_refusal(OPEN, past, now=NOW, backdated=True, backdated_reason=blank)
        assert refused is not None and refused.code == "reason_required"
    refused = step_refusal(OPEN, past, now=NOW, backdated=True, backdated_reason="x" * 501)
    assert refused is not None and refused.code == "reason_too_long"


def test_a_visit_still_to_come_cannot_be_back_dated() -> None:
    refused = step_refusal(OPEN, visit(timedelta(hours=2), accepted=False), now=NOW, backdated=True,
                           backdated_reason="oops")  # fmt: skip
    assert refused is not None and refused.code == "not_in_the_past"


def test_cancelling_is_not_held_to_these_rules() -> None:
    assert step_refusal(CANCELLED, visit(timedelta(days=5), accepted=False), now=NOW) is None


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        step_refusal(OPEN, visit(timedelta()), now=NOW.replace(tzinfo=None))


@given(
    offset_min=st.integers(min_value=-5 * 24 * 60, max_value=5 * 24 * 60),
    accepted=st.booleans(),
    days_ahead=st.integers(min_value=0, max_value=3),
)
def test_a_step_is_allowed_exactly_for_an_accepted_visit_from_its_earliest_day(
    offset_min: int, accepted: bool, days_ahead: int
) -> None:
    facts = visit(timedelta(minutes=offset_min), accepted=accepted)
    refused = step_refusal(OPEN, facts, now=NOW, days_ahead=days_ahead)
    jakarta_today = datetime(2026, 12, 7).date()  # NOW is Monday 09:00 there
    allowed = accepted and earliest_start_day(facts, days_ahead=days_ahead) <= jakarta_today
    assert (refused is None) == allowed


# --- the ETA: the later of the queue ahead and the booked time --------------------------------------------------


def entry(entry_id: int, *, booked_in: float, arrived_ago: float, minutes: int = 30) -> QueueEntry:
    return QueueEntry(
        entry_id=entry_id,
        session_id=entry_id,
        doctor_id=1,
        token=f"A-{entry_id:03d}",
        arrived_at=NOW - timedelta(minutes=arrived_ago),
        scheduled_start=NOW + timedelta(minutes=booked_in),
        duration_min=minutes,
        status=WAITING,
        rank=entry_id * 1024,
    )


def test_a_patient_an_hour_early_is_expected_at_their_appointment_not_any_moment() -> None:
    alone = entry(1, booked_in=60, arrived_ago=5)
    place = positions([alone], SortMode.ARRIVAL, NOW)[1]
    assert (place.position, place.ahead, place.eta, place.wait_min) == (1, 0, NOW + timedelta(hours=1), 60)


def test_a_long_queue_pushes_past_the_booked_time() -> None:
    first = entry(1, booked_in=-30, arrived_ago=40, minutes=45)
    second = entry(2, booked_in=-30, arrived_ago=35, minutes=45)
    mine = entry(3, booked_in=30, arrived_ago=30)
    places = positions([first, second, mine], SortMode.ARRIVAL, NOW)
    assert (places[3].eta, places[3].wait_min) == (NOW + timedelta(minutes=90), 90)


def test_a_late_patient_is_expected_by_the_queue_alone() -> None:
    late = entry(1, booked_in=-20, arrived_ago=1)
    assert positions([late], SortMode.ARRIVAL, NOW)[1].wait_min == 0


@given(
    now_offset=st.integers(min_value=-600, max_value=600),
    ahead_min=st.integers(min_value=-60, max_value=600),
    booked_min=st.integers(min_value=-600, max_value=600),
)
def test_the_estimate_is_the_later_of_the_queue_and_the_booked_start(
    now_offset: int, ahead_min: int, booked_min: int
) -> None:
    now = NOW + timedelta(minutes=now_offset)
    booked = now + timedelta(minutes=booked_min)
    eta, wait_min = estimate(now, timedelta(minutes=ahead_min), booked)
    assert eta >= now and eta >= booked and eta >= now + timedelta(minutes=ahead_min)
    assert eta in (booked, now + timedelta(minutes=max(ahead_min, 0)))
    assert wait_min == max(ahead_min, booked_min, 0)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-120, max_value=240),
            st.integers(min_value=0, max_value=120),
            st.integers(min_value=5, max_value=60),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_nobody_waiting_is_expected_before_their_booked_time_or_the_people_ahead(
    rows: list[tuple[int, int, int]],
) -> None:
    entries = [entry(i + 1, booked_in=b, arrived_ago=a, minutes=m) for i, (b, a, m) in enumerate(rows)]
    places = positions(entries, SortMode.ARRIVAL, NOW)
    ordered = sorted(entries, key=lambda e: (e.arrived_at, e.entry_id))
    queue_ahead = timedelta()
    for e in ordered:
        place = places[e.entry_id]
        assert place.eta >= e.scheduled_start and place.eta >= NOW + queue_ahead
        assert place.eta == max(e.scheduled_start, NOW + queue_ahead)
        assert place.wait_min * 60 >= (place.eta - NOW).total_seconds()
        queue_ahead += timedelta(minutes=e.duration_min)
