"""The pure rules of the confirmation page: when a link stops working, what the patient may still do, the QR text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_core.domain.links import change_deadline, checkin_content, link_expires_at, page_choices

VISIT = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 10:00 in Jakarta


def choices(now: datetime, **changes: object) -> tuple[bool, bool, str | None]:
    values: dict[str, object] = {"status": "waiting", "confirmed": False, "starts_at": VISIT, "cutoff_min": 120,
                                 "checked_in": False, "now": now, **changes}  # fmt: skip
    found = page_choices(**values)  # type: ignore[arg-type]
    return found.can_confirm, found.can_change, found.why_not


def test_a_link_works_until_a_day_after_the_visit_ends() -> None:
    assert link_expires_at(VISIT + timedelta(minutes=30)) == datetime(2026, 12, 2, 3, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        link_expires_at(datetime(2026, 12, 1, 10, 0))


def test_well_before_the_visit_the_patient_may_confirm_cancel_or_move_it() -> None:
    assert choices(VISIT - timedelta(days=2)) == (True, True, None)


def test_from_the_cut_off_on_only_confirming_is_left() -> None:
    assert change_deadline(VISIT, 120) == VISIT - timedelta(hours=2)
    assert choices(VISIT - timedelta(hours=2, seconds=1)) == (True, True, None)
    assert choices(VISIT - timedelta(hours=2)) == (True, False, "too_late")
    assert choices(VISIT - timedelta(minutes=5), cutoff_min=0) == (True, True, None)


def test_a_confirmed_visit_is_not_confirmed_again_but_may_still_change() -> None:
    assert choices(VISIT - timedelta(days=1), confirmed=True) == (False, True, None)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"status": "cancelled"}, "cancelled"),
        ({"status": "completed"}, "completed"),
        ({"status": "open"}, "started"),
    ],
)
def test_a_visit_that_no_longer_waits_offers_nothing(changes: dict[str, object], why: str) -> None:
    assert choices(VISIT - timedelta(days=1), **changes) == (False, False, why)


def test_a_checked_in_patient_may_not_change_the_visit_online() -> None:
    assert choices(VISIT - timedelta(days=1), checked_in=True) == (True, False, "checked_in")


@given(st.integers(min_value=0, max_value=24 * 60 * 14), st.integers(min_value=-10_000, max_value=10_000))
def test_changing_is_offered_exactly_before_the_deadline(cutoff: int, minutes_before: int) -> None:
    now = VISIT - timedelta(minutes=minutes_before)
    _, can_change, _ = choices(now, cutoff_min=cutoff)
    assert can_change == (now < VISIT - timedelta(minutes=cutoff))


def test_the_check_in_qr_carries_the_booking_code_for_the_scanner() -> None:
    assert checkin_content("K7MX2PQA") == "FD:K7MX2PQA"
