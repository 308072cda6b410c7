"""Twilio status callbacks: our states, their order, and out-of-order callbacks never moving a message backwards."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.whatsapp.status import RANK, TWILIO_STATES, UNKNOWN, is_later, rank, report_of, state_of


def test_the_happy_path_only_moves_forward() -> None:
    assert rank(None) < rank("queued") < rank("sending") < rank("sent") < rank("delivered") < rank("read")


@pytest.mark.parametrize(
    ("current", "new", "moves"),
    [
        (None, "queued", True),
        ("sent", "delivered", True),
        ("delivered", "sent", False),
        ("read", "delivered", False),
        ("delivered", "delivered", False),
        ("sent", "undelivered", True),
        ("queued", "failed", True),
        ("failed", "sent", False),
        ("undelivered", "failed", False),
        ("delivered", "failed", False),  # the phone confirmed it: a contradicting failure is stale
        ("read", "undelivered", False),
        ("failed", "delivered", True),
        ("sent", UNKNOWN, False),
        (None, UNKNOWN, False),
    ],
)
def test_a_callback_moves_a_message_only_to_a_later_state(current: str | None, new: str, moves: bool) -> None:
    assert is_later(current, new) is moves


def test_twilio_words_map_to_our_states() -> None:
    assert state_of("delivered") == "delivered"
    assert state_of(" READ ") == "read"
    assert state_of("accepted") == "queued"
    assert state_of("canceled") == "failed"
    assert state_of("partially_delivered") is None
    assert set(TWILIO_STATES.values()) <= set(RANK)


def test_a_callback_form_becomes_a_report() -> None:
    report = report_of({"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "63024", "To": "x"})

    assert (report.provider_id, report.state, report.error_code) == ("SM1", "undelivered", "63024")
    assert report.status == "undelivered"
    assert report.raw["To"] == "x"


def test_a_status_we_do_not_track_is_reported_as_unknown() -> None:
    assert report_of({"MessageSid": "SM1", "MessageStatus": "partially_delivered"}).state == UNKNOWN


@pytest.mark.parametrize(
    "form", [{"MessageStatus": "sent"}, {"MessageSid": "SM1"}, {"MessageSid": " ", "MessageStatus": "sent"}]
)
def test_a_callback_without_a_sid_or_a_status_is_unreadable(form: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        report_of(form)


@given(st.lists(st.sampled_from(sorted(RANK)), min_size=1, max_size=12))
def test_in_any_arrival_order_a_message_ends_at_its_latest_state(callbacks: list[str]) -> None:
    current: str | None = None
    for state in callbacks:
        if is_later(current, state):
            current = state

    assert rank(current) == max(rank(state) for state in callbacks)
    assert current == next(state for state in callbacks if rank(state) == rank(current))  # the first among equals
