"""Waiting-room queue: sort modes, manual reordering, places and ETAs, daily tokens."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_core.domain.lifecycle import SessionStatus
from booking_core.domain.queue import (
    RANK_GAP,
    RANK_MAX,
    RANK_MIN,
    InvalidMove,
    Position,
    QueueEntry,
    QueueError,
    SortMode,
    UnknownEntry,
    format_token,
    move,
    next_up,
    order,
    parse_token,
    positions,
)

WAITING = SessionStatus.WAITING
OPEN = SessionStatus.OPEN
COMPLETED = SessionStatus.COMPLETED
CANCELLED = SessionStatus.CANCELLED
MORNING = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)  # 08:00 in Jakarta


def at(minutes: float) -> datetime:
    return MORNING + timedelta(minutes=minutes)


def entry(
    entry_id: int,
    *,
    doctor: int = 1,
    arrived: float = 0,
    scheduled: float = 0,
    duration: int = 15,
    status: SessionStatus = WAITING,
    rank: int | None = None,
    started: float | None = None,
) -> QueueEntry:
    return QueueEntry(
        entry_id=entry_id,
        session_id=100 + entry_id,
        doctor_id=doctor,
        token=format_token("A", entry_id),
        arrived_at=at(arrived),
        scheduled_start=at(scheduled),
        duration_min=duration,
        status=status,
        rank=RANK_GAP * entry_id if rank is None else rank,
        started_at=None if started is None else at(started),
    )


def ids(entries: Sequence[QueueEntry]) -> list[int]:
    return [e.entry_id for e in entries]


def apply(entries: Sequence[QueueEntry], changes: dict[int, int]) -> list[QueueEntry]:
    return [dataclasses.replace(e, rank=changes.get(e.entry_id, e.rank)) for e in entries]


def manual_ids(entries: Sequence[QueueEntry]) -> list[int]:
    return ids(order(entries, SortMode.MANUAL))


# --- ordering ---------------------------------------------------------------------------------------------


BOARD = [
    entry(1, arrived=10, scheduled=30, rank=3000),
    entry(2, arrived=5, scheduled=60, rank=1000),
    entry(3, arrived=20, scheduled=0, rank=2000),
    entry(4, arrived=0, scheduled=15, rank=4000),
]


def test_arrival_order_is_first_come_first_seen() -> None:
    assert ids(order(BOARD, SortMode.ARRIVAL)) == [4, 2, 1, 3]


def test_time_order_follows_the_booked_start() -> None:
    assert ids(order(BOARD, SortMode.TIME)) == [3, 4, 1, 2]


def test_newest_order_puts_the_latest_arrival_on_top() -> None:
    assert ids(order(BOARD, SortMode.NEWEST)) == [3, 1, 2, 4]


def test_manual_order_follows_the_rank() -> None:
    assert ids(order(BOARD, SortMode.MANUAL)) == [2, 3, 1, 4]


@pytest.mark.parametrize("mode", list(SortMode))
def test_ties_go_to_the_lower_entry_id_in_every_mode(mode: SortMode) -> None:
    same = [entry(i, arrived=5, scheduled=5, rank=7) for i in (9, 3, 6)]
    assert ids(order(same, mode)) == [3, 6, 9]


def test_ties_inside_newest_order_still_go_to_the_lower_entry_id() -> None:
    board = [entry(5, arrived=1), entry(2, arrived=9), entry(4, arrived=9), entry(1, arrived=1)]
    assert ids(order(board, SortMode.NEWEST)) == [2, 4, 1, 5]


def test_finished_and_cancelled_patients_leave_the_queue() -> None:
    board = [
        entry(1, status=COMPLETED, arrived=0),
        entry(2, status=OPEN, arrived=1),
        entry(3, status=CANCELLED, arrived=2),
        entry(4, status=WAITING, arrived=3),
    ]
    for mode in SortMode:
        assert sorted(ids(order(board, mode))) == [2, 4]


def test_sort_mode_can_be_given_as_text() -> None:
    assert ids(order(BOARD, "arrival")) == [4, 2, 1, 3]  # type: ignore[arg-type]


# --- manual moves -----------------------------------------------------------------------------------------


FIVE = [entry(i) for i in range(1, 6)]  # ranks 1024 .. 5120


def test_moving_to_the_head_changes_only_the_moved_entry() -> None:
    changes = move(FIVE, 4, before=1)
    assert changes == {4: 0}
    assert manual_ids(apply(FIVE, changes)) == [4, 1, 2, 3, 5]


def test_moving_to_the_tail_changes_only_the_moved_entry() -> None:
    changes = move(FIVE, 2, after=5)
    assert changes == {2: 5 * RANK_GAP + RANK_GAP}
    assert manual_ids(apply(FIVE, changes)) == [1, 3, 4, 5, 2]


def test_moving_into_the_middle_lands_halfway_between_neighbours() -> None:
    changes = move(FIVE, 5, after=2)
    assert changes == {5: (2 * RANK_GAP + 3 * RANK_GAP) // 2}
    assert manual_ids(apply(FIVE, changes)) == [1, 2, 5, 3, 4]


def test_moving_before_the_middle_entry() -> None:
    changes = move(FIVE, 1, before=4)
    assert list(changes) == [1]
    assert manual_ids(apply(FIVE, changes)) == [2, 3, 1, 4, 5]


def test_a_move_that_changes_nothing_returns_nothing() -> None:
    assert move(FIVE, 2, before=3) == {}
    assert move(FIVE, 3, after=2) == {}


def test_repeated_moves_keep_the_order_the_staff_dragged() -> None:
    board = list(FIVE)
    for entry_id, kwargs, expected in [
        (5, {"before": 1}, [5, 1, 2, 3, 4]),
        (1, {"after": 4}, [5, 2, 3, 4, 1]),
        (3, {"before": 5}, [3, 5, 2, 4, 1]),
        (5, {"after": 1}, [3, 2, 4, 1, 5]),
        (4, {"before": 2}, [3, 4, 2, 1, 5]),
    ]:
        board = apply(board, move(board, entry_id, **kwargs))
        assert manual_ids(board) == expected


def test_squeezing_into_one_gap_again_and_again_respaces_only_nearby_entries() -> None:
    board = [entry(i) for i in range(1, 21)]  # 20 patients, 1024 apart
    newcomers = list(range(3, 21))
    expected = [1, 2]
    for count, newcomer in enumerate(newcomers, start=1):
        changes = move(board, newcomer, before=2)
        board = apply(board, changes)
        expected = [e for e in expected if e != newcomer]
        expected.insert(expected.index(2), newcomer)
        rest = [i for i in range(3, 21) if i not in expected]
        assert manual_ids(board) == expected + rest
        ranks = [e.rank for e in board]
        assert len(set(ranks)) == len(ranks)
        if count <= 10:  # 1024 halves ten times before the gap runs out
            assert list(changes) == [newcomer]
        assert len(changes) < len(board)


def test_consecutive_ranks_leave_no_gap_and_force_a_renumber() -> None:
    tight = [entry(i, rank=i) for i in range(1, 6)]  # ranks 1, 2, 3, 4, 5
    changes = move(tight, 5, after=1)
    assert len(changes) > 1
    board = apply(tight, changes)
    assert manual_ids(board) == [1, 5, 2, 3, 4]
    ranks = [e.rank for e in order(board, SortMode.MANUAL)]
    assert ranks == sorted(set(ranks))


def test_equal_ranks_from_a_bulk_import_are_separated_by_a_move() -> None:
    flat = [entry(i, rank=0) for i in range(1, 5)]
    board = apply(flat, move(flat, 4, after=1))
    assert manual_ids(board) == [1, 4, 2, 3]


def test_ranks_near_the_column_limit_fall_back_to_a_full_renumber() -> None:
    edge = [entry(1, rank=RANK_MIN), entry(2, rank=RANK_MIN + 1), entry(3, rank=RANK_MAX)]
    changes = move(edge, 3, before=1)
    board = apply(edge, changes)
    assert manual_ids(board) == [3, 1, 2]
    assert all(RANK_MIN <= e.rank <= RANK_MAX for e in board)


def test_moving_an_unknown_patient_is_refused() -> None:
    with pytest.raises(UnknownEntry) as caught:
        move(FIVE, 99, before=1)
    assert caught.value.code == "unknown_entry"
    with pytest.raises(UnknownEntry):
        move(FIVE, 1, after=99)


def test_a_finished_patient_cannot_be_moved_or_used_as_an_anchor() -> None:
    board = [*FIVE, entry(6, status=COMPLETED)]
    with pytest.raises(UnknownEntry):
        move(board, 6, before=1)
    with pytest.raises(UnknownEntry):
        move(board, 1, after=6)


def test_moving_relative_to_itself_is_refused() -> None:
    with pytest.raises(InvalidMove) as caught:
        move(FIVE, 3, before=3)
    assert caught.value.code == "invalid_move"


@pytest.mark.parametrize("kwargs", [{}, {"before": 1, "after": 2}])
def test_a_move_needs_exactly_one_anchor(kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidMove):
        move(FIVE, 3, **kwargs)


def test_queue_errors_are_value_errors_with_a_code() -> None:
    assert issubclass(UnknownEntry, QueueError)
    assert issubclass(InvalidMove, QueueError)
    assert issubclass(QueueError, ValueError)


Move = tuple[int, int, bool]  # (entry_id, anchor_id, before?)


@st.composite
def boards_and_moves(draw: st.DrawFn, *, unique: bool) -> tuple[list[QueueEntry], list[Move]]:
    size = draw(st.integers(min_value=2, max_value=12))
    # Small rank ranges make the gaps run out quickly, which is the interesting part; the non-unique boards
    # draw from 0..3 so most ranks are shared, as after a bulk import.
    if unique:
        ranks = draw(st.lists(st.integers(-50, 50), min_size=size, max_size=size, unique=True))
    else:
        ranks = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
    entry_ids = draw(st.lists(st.integers(1, 10_000), min_size=size, max_size=size, unique=True))
    board = [entry(i, rank=r) for i, r in zip(entry_ids, ranks, strict=True)]
    index = st.integers(min_value=0, max_value=size - 1)
    moves = draw(
        st.lists(
            st.tuples(index, index, st.booleans()).filter(lambda m: m[0] != m[1]),
            max_size=40,
        )
    )
    return board, [(entry_ids[a], entry_ids[b], before) for a, b, before in moves]


def _plain_move(line: list[int], entry_id: int, anchor: int, before: bool) -> None:
    line.remove(entry_id)
    line.insert(line.index(anchor) + (0 if before else 1), entry_id)


@given(boards_and_moves(unique=True))
def test_any_sequence_of_moves_matches_a_plain_list_and_keeps_ranks_unique(
    case: tuple[list[QueueEntry], list[Move]],
) -> None:
    board, moves = case
    line = manual_ids(board)
    for entry_id, anchor, before in moves:
        kwargs = {"before": anchor} if before else {"after": anchor}
        board = apply(board, move(board, entry_id, **kwargs))
        _plain_move(line, entry_id, anchor, before)
        ranks = [e.rank for e in board]
        assert len(set(ranks)) == len(ranks)
        assert manual_ids(board) == line
        assert all(RANK_MIN <= r <= RANK_MAX for r in ranks)


@given(boards_and_moves(unique=False))
def test_moves_over_duplicate_ranks_still_match_a_plain_list(
    case: tuple[list[QueueEntry], list[Move]],
) -> None:
    board, moves = case
    line = manual_ids(board)
    for entry_id, anchor, before in moves:
        kwargs = {"before": anchor} if before else {"after": anchor}
        board = apply(board, move(board, entry_id, **kwargs))
        _plain_move(line, entry_id, anchor, before)
        assert manual_ids(board) == line


# --- positions and ETA ------------------------------------------------------------------------------------


NOW = at(60)


def test_an_empty_doctor_sees_the_first_patient_now() -> None:
    result = positions([entry(1, arrived=50)], SortMode.ARRIVAL, NOW)
    assert result == {1: Position(entry_id=1, position=1, ahead=0, eta=NOW, wait_min=0)}


def test_eta_adds_the_durations_of_everyone_waiting_ahead() -> None:
    board = [entry(1, arrived=10, duration=15), entry(2, arrived=20, duration=30), entry(3, arrived=30)]
    result = positions(board, SortMode.ARRIVAL, NOW)
    assert [(result[i].position, result[i].ahead, result[i].wait_min) for i in (1, 2, 3)] == [
        (1, 0, 0),
        (2, 1, 15),
        (3, 2, 45),
    ]
    assert result[3].eta == NOW + timedelta(minutes=45)


def test_an_open_session_half_done_adds_its_remaining_minutes() -> None:
    board = [
        entry(1, status=OPEN, duration=20, started=50),  # 10 of 20 minutes done
        entry(2, arrived=30, duration=15),
        entry(3, arrived=40, duration=15),
    ]
    result = positions(board, SortMode.ARRIVAL, NOW)
    assert result[1] == Position(entry_id=1, position=0, ahead=0, eta=at(50), wait_min=0)
    assert (result[2].position, result[2].wait_min, result[2].eta) == (1, 10, NOW + timedelta(minutes=10))
    assert (result[3].position, result[3].wait_min, result[3].eta) == (2, 25, NOW + timedelta(minutes=25))


def test_an_overrunning_session_adds_nothing_more() -> None:
    board = [entry(1, status=OPEN, duration=15, started=0), entry(2, arrived=30)]  # started an hour ago
    result = positions(board, SortMode.ARRIVAL, NOW)
    assert result[2] == Position(entry_id=2, position=1, ahead=0, eta=NOW, wait_min=0)


def test_partial_minutes_round_the_wait_up() -> None:
    board = [entry(1, status=OPEN, duration=20, started=59.5), entry(2, arrived=30)]
    result = positions(board, SortMode.ARRIVAL, NOW)
    assert result[2].eta == NOW + timedelta(minutes=19.5)
    assert result[2].wait_min == 20


def test_an_open_session_never_stamped_counts_its_full_duration() -> None:
    board = [entry(1, status=OPEN, duration=20), entry(2, arrived=30)]
    result = positions(board, SortMode.ARRIVAL, NOW)
    assert result[1].eta == NOW
    assert result[2].wait_min == 20


def test_each_doctor_has_their_own_queue_and_eta() -> None:
    board = [
        entry(1, doctor=7, status=OPEN, duration=30, started=45),  # 15 min left
        entry(2, doctor=7, arrived=10, duration=20),
        entry(3, doctor=8, arrived=5, duration=10),
        entry(4, doctor=7, arrived=20, duration=20),
        entry(5, doctor=8, arrived=15, duration=10),
        entry(6, doctor=8, arrived=1, status=COMPLETED),
    ]
    result = positions(board, SortMode.ARRIVAL, NOW)
    assert set(result) == {1, 2, 3, 4, 5}
    summary = {i: (p.position, p.ahead, p.wait_min) for i, p in result.items()}
    assert summary == {
        1: (0, 0, 0),
        2: (1, 0, 15),
        4: (2, 1, 35),
        3: (1, 0, 0),
        5: (2, 1, 10),
    }


def test_positions_follow_the_chosen_sort_mode() -> None:
    board = [entry(1, arrived=0, rank=2000), entry(2, arrived=5, rank=1000)]
    assert positions(board, SortMode.ARRIVAL, NOW)[1].position == 1
    assert positions(board, SortMode.MANUAL, NOW)[1].position == 2
    assert positions(board, SortMode.MANUAL, NOW)[1].wait_min == 15


def test_a_session_opened_out_of_turn_still_counts_first() -> None:
    # The doctor called patient 3 in before patients 1 and 2: they wait for 3 to finish.
    board = [
        entry(1, arrived=0),
        entry(2, arrived=5),
        entry(3, arrived=9, status=OPEN, started=55, duration=10),
    ]
    result = positions(board, SortMode.ARRIVAL, NOW)
    assert (result[1].position, result[1].wait_min) == (1, 5)
    assert (result[2].position, result[2].wait_min) == (2, 20)


def test_next_up_is_the_first_waiting_patient_per_doctor() -> None:
    board = [
        entry(1, doctor=7, status=OPEN, arrived=0, started=50),
        entry(2, doctor=7, arrived=20),
        entry(3, doctor=7, arrived=10),
        entry(4, doctor=8, status=OPEN, arrived=3, started=55),
        entry(5, doctor=9, status=COMPLETED),
    ]
    result = next_up(board, SortMode.ARRIVAL)
    assert result[7] is not None
    assert result[7].entry_id == 3
    assert result[8] is None
    assert result[9] is None
    assert next_up(board, SortMode.NEWEST)[7] == board[1]


def test_next_up_of_an_empty_board_is_empty() -> None:
    assert next_up([], SortMode.ARRIVAL) == {}


# --- tokens -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "number", "token"),
    [
        ("A", 1, "A-001"),
        ("B", 42, "B-042"),
        ("GIG", 999, "GIG-999"),
        ("A", 1000, "A-1000"),
        ("Z", 12345, "Z-12345"),
    ],
)
def test_tokens_are_padded_to_three_digits_and_keep_growing(prefix: str, number: int, token: str) -> None:
    assert format_token(prefix, number) == token


@pytest.mark.parametrize("prefix", ["", "a", "ABCD", "A1", "Á", "A-", " A"])
def test_a_bad_token_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        format_token(prefix, 1)


@pytest.mark.parametrize("number", [0, -3])
def test_token_numbers_start_at_one(number: int) -> None:
    with pytest.raises(ValueError, match="number"):
        format_token("A", number)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("A-001", ("A", 1)),
        ("a-7", ("A", 7)),
        (" gig 042 ", ("GIG", 42)),
        ("B1000", ("B", 1000)),
        ("A-000", None),
        ("1-A", None),
        ("ABCD-1", None),
        ("", None),
    ],
)
def test_a_typed_token_is_read_back(text: str, parsed: tuple[str, int] | None) -> None:
    assert parse_token(text) == parsed


def test_format_and_parse_round_trip() -> None:
    for prefix, number in [("A", 1), ("BC", 999), ("XYZ", 1001)]:
        assert parse_token(format_token(prefix, number)) == (prefix, number)
