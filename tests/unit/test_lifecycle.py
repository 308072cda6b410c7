"""Session lifecycle: the transition table, cancel reasons, and visits entered after the fact."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from booking_core.domain.lifecycle import (
    ACTIVE_STATUSES,
    DEFAULT_CANCEL_REASONS,
    MAX_NOTE_LENGTH,
    InvalidCancelReason,
    InvalidTransition,
    SessionStatus,
    TransitionResult,
    auto_complete_past,
    can_transition,
    transition,
)

WAITING = SessionStatus.WAITING
OPEN = SessionStatus.OPEN
COMPLETED = SessionStatus.COMPLETED
CANCELLED = SessionStatus.CANCELLED
AT = datetime(2025, 3, 10, 9, 30, tzinfo=ZoneInfo("Asia/Jakarta"))

ALLOWED = {(WAITING, OPEN), (OPEN, COMPLETED), (WAITING, CANCELLED), (OPEN, CANCELLED)}
ALL_PAIRS = list(itertools.product(SessionStatus, repeat=2))


def _attempt(current: SessionStatus, target: SessionStatus) -> TransitionResult:
    reason = "patient_request" if target is CANCELLED else None
    return transition(current, target, at=AT, reason_code=reason)


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_the_allowed_changes_go_through(current: SessionStatus, target: SessionStatus) -> None:
    result = _attempt(current, target)
    assert result.previous is current
    assert result.status is target
    assert can_transition(current, target)


@pytest.mark.parametrize(("current", "target"), [p for p in ALL_PAIRS if p not in ALLOWED])
def test_every_other_change_is_refused(current: SessionStatus, target: SessionStatus) -> None:
    with pytest.raises(InvalidTransition) as caught:
        _attempt(current, target)
    assert caught.value.code == "invalid_transition"
    assert caught.value.current is current
    assert caught.value.target is target
    assert isinstance(caught.value, ValueError)
    assert not can_transition(current, target)


def test_the_table_covers_all_sixteen_pairs() -> None:
    assert len(ALL_PAIRS) == 16
    assert sum(can_transition(c, t) for c, t in ALL_PAIRS) == 4


def test_a_completed_session_cannot_be_cancelled_says_so_plainly() -> None:
    with pytest.raises(InvalidTransition, match=r"^a completed session cannot be cancelled$"):
        transition(COMPLETED, CANCELLED, at=AT, reason_code="patient_request")


def test_refusal_messages_read_naturally() -> None:
    def message(current: SessionStatus, target: SessionStatus) -> str:
        return str(InvalidTransition(current, target))

    assert message(COMPLETED, OPEN) == "a completed session cannot be opened"
    assert message(CANCELLED, OPEN) == "a cancelled session cannot be opened"
    assert message(OPEN, WAITING) == "an open session cannot be put back to waiting"
    assert message(WAITING, COMPLETED) == "a waiting session cannot be completed before it is opened"
    assert message(OPEN, OPEN) == "the session is already open"


def test_refusal_comes_before_reason_checks() -> None:
    # A cancelled session stays refused even with no reason: the state is the real problem.
    with pytest.raises(InvalidTransition):
        transition(CANCELLED, CANCELLED, at=AT)


def test_opening_a_session_stamps_started_at_only() -> None:
    result = transition(WAITING, OPEN, at=AT)
    assert result == TransitionResult(previous=WAITING, status=OPEN, started_at=AT)
    assert result.timestamps() == {"started_at": AT}


def test_completing_a_session_stamps_ended_at_only() -> None:
    result = transition(OPEN, COMPLETED, at=AT)
    assert result.timestamps() == {"ended_at": AT}
    assert result.started_at is None
    assert result.reason_code is None


@pytest.mark.parametrize("current", [WAITING, OPEN])
def test_cancelling_records_the_time_and_the_reason(current: SessionStatus) -> None:
    result = transition(current, CANCELLED, at=AT, reason_code="no_show", note="  phoned twice  ")
    assert result.timestamps() == {"cancelled_at": AT}
    assert result.reason_code == "no_show"
    assert result.note == "phoned twice"


def test_reason_and_note_are_left_out_when_not_cancelling() -> None:
    result = transition(WAITING, OPEN, at=AT, reason_code="no_show", note="ignored")
    assert result.reason_code is None
    assert result.note is None


@pytest.mark.parametrize("reason", sorted(DEFAULT_CANCEL_REASONS - {"other"}))
def test_every_default_reason_is_accepted_without_a_note(reason: str) -> None:
    result = transition(WAITING, CANCELLED, at=AT, reason_code=reason)
    assert result.reason_code == reason
    assert result.note is None


def test_default_reasons_are_the_documented_six() -> None:
    documented = {
        "patient_request",
        "no_show",
        "doctor_unavailable",
        "clinic_closed",
        "duplicate",
        "other",
    }
    assert documented == DEFAULT_CANCEL_REASONS


@pytest.mark.parametrize("missing", [None, ""])
def test_cancelling_without_a_reason_is_refused(missing: str | None) -> None:
    with pytest.raises(InvalidCancelReason, match="reason is required") as caught:
        transition(WAITING, CANCELLED, at=AT, reason_code=missing)
    assert caught.value.code == "invalid_reason"


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(InvalidCancelReason, match="unknown cancel reason 'bored'") as caught:
        transition(OPEN, CANCELLED, at=AT, reason_code="bored")
    assert caught.value.code == "invalid_reason"
    assert caught.value.reason_code == "bored"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("note", [None, "", "   "])
def test_other_needs_a_note(note: str | None) -> None:
    with pytest.raises(InvalidCancelReason, match="needs a note"):
        transition(WAITING, CANCELLED, at=AT, reason_code="other", note=note)


def test_other_with_a_note_is_accepted() -> None:
    result = transition(WAITING, CANCELLED, at=AT, reason_code="other", note="flooded road")
    assert (result.reason_code, result.note) == ("other", "flooded road")


def test_an_overlong_note_is_refused() -> None:
    transition(WAITING, CANCELLED, at=AT, reason_code="other", note="x" * MAX_NOTE_LENGTH)
    with pytest.raises(InvalidCancelReason, match="longer than"):
        transition(WAITING, CANCELLED, at=AT, reason_code="other", note="x" * (MAX_NOTE_LENGTH + 1))


def test_a_clinic_can_configure_its_own_reasons() -> None:
    own = {"rain", "holiday"}
    assert transition(WAITING, CANCELLED, at=AT, reason_code="rain", allowed_reasons=own).reason_code == "rain"
    with pytest.raises(InvalidCancelReason):
        transition(WAITING, CANCELLED, at=AT, reason_code="no_show", allowed_reasons=own)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        transition(WAITING, OPEN, at=datetime(2025, 3, 10, 9, 30))


def test_plain_strings_are_accepted_as_statuses() -> None:
    result = transition("waiting", "open", at=AT)  # type: ignore[arg-type]
    assert result.status is OPEN


def test_waiting_and_open_sessions_occupy_time() -> None:
    assert frozenset({WAITING, OPEN}) == ACTIVE_STATUSES
    assert COMPLETED not in ACTIVE_STATUSES
    assert CANCELLED not in ACTIVE_STATUSES


def test_a_visit_entered_after_it_ended_is_completed_at_once() -> None:
    start = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
    end = start + timedelta(minutes=30)
    assert auto_complete_past(start, end, now=end + timedelta(hours=2))


def test_a_visit_ending_exactly_now_counts_as_past() -> None:
    start = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
    end = start + timedelta(minutes=30)
    assert auto_complete_past(start, end, now=end)


def test_a_visit_under_way_or_ahead_is_not_auto_completed() -> None:
    start = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
    end = start + timedelta(minutes=30)
    assert not auto_complete_past(start, end, now=start + timedelta(minutes=10))
    assert not auto_complete_past(start, end, now=start - timedelta(days=1))


def test_a_visit_that_ends_before_it_starts_is_refused() -> None:
    start = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="end after it starts"):
        auto_complete_past(start, start, now=start)
