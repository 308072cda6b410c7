"""The board's pure rules: taking over a view's order before a move, and what the public tracker shows of a name."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from booking_core.domain.lifecycle import SessionStatus
from booking_core.domain.privacy import QueuePrivacy, public_name, queue_privacy
from booking_core.domain.queue import RANK_GAP, QueueEntry, SortMode, adopt, move, order

MORNING = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)


def entry(entry_id: int, *, arrived: int, scheduled: int, rank: int, status: str = "waiting") -> QueueEntry:
    return QueueEntry(
        entry_id=entry_id,
        session_id=entry_id,
        doctor_id=1,
        token=f"A-{entry_id:03d}",
        arrived_at=MORNING + timedelta(minutes=arrived),
        scheduled_start=MORNING + timedelta(minutes=scheduled),
        duration_min=15,
        status=SessionStatus(status),
        rank=rank,
    )


def ranked(entries: list[QueueEntry], ranks: dict[int, int]) -> list[QueueEntry]:
    return [replace(e, rank=ranks[e.entry_id]) if e.entry_id in ranks else e for e in entries]


def test_adopting_the_time_order_makes_the_manual_order_the_same() -> None:
    entries = [
        entry(1, arrived=0, scheduled=60, rank=1024),
        entry(2, arrived=5, scheduled=0, rank=2048),
        entry(3, arrived=10, scheduled=30, rank=3072),
    ]

    changes = adopt(entries, SortMode.TIME)

    assert [e.entry_id for e in order(ranked(entries, changes), SortMode.MANUAL)] == [2, 3, 1]


def test_adopting_the_order_it_already_has_changes_nothing() -> None:
    entries = [entry(1, arrived=0, scheduled=0, rank=5), entry(2, arrived=5, scheduled=10, rank=9)]
    assert adopt(entries, SortMode.ARRIVAL) == {}


def test_move_up_in_the_time_view_passes_the_patient_shown_above() -> None:
    entries = [
        entry(1, arrived=0, scheduled=60, rank=1024),
        entry(2, arrived=5, scheduled=0, rank=2048),
        entry(3, arrived=10, scheduled=30, rank=3072),
    ]
    adopted = ranked(entries, adopt(entries, SortMode.TIME))  # shown: 2, 3, 1

    moved = ranked(adopted, move(adopted, 1, before=3))

    assert [e.entry_id for e in order(moved, SortMode.MANUAL)] == [2, 1, 3]


@given(
    st.lists(st.tuples(st.integers(0, 600), st.integers(0, 600), st.integers(-5000, 5000)), min_size=1, max_size=30),
    st.sampled_from([SortMode.ARRIVAL, SortMode.TIME, SortMode.NEWEST]),
)
def test_after_adopting_any_view_the_manual_order_is_that_view(
    specs: list[tuple[int, int, int]], mode: SortMode
) -> None:
    entries = [entry(i + 1, arrived=a, scheduled=s, rank=r) for i, (a, s, r) in enumerate(specs)]
    adopted = ranked(entries, adopt(entries, mode))
    assert [e.entry_id for e in order(adopted, SortMode.MANUAL)] == [e.entry_id for e in order(entries, mode)]
    before = {e.entry_id: e.rank for e in entries}
    assert all(e.rank % RANK_GAP == 0 for e in adopted if e.rank != before[e.entry_id])  # respaced, room to move


def test_the_tracker_shows_as_much_of_a_name_as_the_clinic_chose() -> None:
    name = "Siti Rahmawati"
    shown = {mode: public_name(name, mode) for mode in ("hidden", "initial", "masked", "first_name")}
    assert shown == {"hidden": "", "initial": "S.", "masked": "S*** R********", "first_name": "Siti"}
    assert public_name("   ", "first_name") == ""


def test_a_missing_or_damaged_privacy_setting_shows_the_least() -> None:
    assert queue_privacy(None) == QueuePrivacy(show_name="initial", show_doctor=True, show_eta=True)
    damaged = queue_privacy({"show_name": "full", "show_doctor": "yes", "show_eta": 1})
    assert damaged == QueuePrivacy(show_name="initial", show_doctor=False, show_eta=False)
    assert queue_privacy({"show_name": "masked"}) == QueuePrivacy(show_name="masked", show_doctor=True, show_eta=True)
