"""Permanent delete: the phrase an owner must type, and the snapshot an archived invoice keeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from booking_core.domain.archive import ArchivedLine, ArchivedSession, confirmation_matches, confirmation_phrase

JAKARTA = timezone(timedelta(hours=7))
STARTS = datetime(2026, 11, 23, 9, 0, tzinfo=JAKARTA)


def _visit(**changes: object) -> ArchivedSession:
    values: dict[str, object] = {
        "session_id": 41,
        "booking_code": "K7Q2M9XA",
        "status": "completed",
        "branch_id": 3,
        "branch_name": "Klinik Sehat Menteng",
        "patient_id": 12,
        "patient_name": "Siti Rahmawati",
        "doctor_id": 5,
        "doctor_name": "dr. Andi Wijaya",
        "room_name": "Consultation 1",
        "starts_at": STARTS,
        "ends_at": STARTS + timedelta(minutes=30),
        "currency": "IDR",
        "lines": (
            ArchivedLine("examination", "General consultation", 1, Decimal("150000.00"), examination_id=7),
            ArchivedLine("consumable", "Bandage", 2, Decimal("5000")),
        ),
        "started_at": STARTS + timedelta(minutes=2),
        "ended_at": STARTS + timedelta(minutes=28),
    }
    values.update(changes)
    return ArchivedSession(**values)  # type: ignore[arg-type]


def test_the_owner_types_delete_and_the_booking_code() -> None:
    assert confirmation_phrase("K7Q2M9XA") == "DELETE K7Q2M9XA"


@pytest.mark.parametrize(
    ("typed", "accepted"),
    [
        ("DELETE K7Q2M9XA", True),
        ("  DELETE K7Q2M9XA\n", True),  # a pasted phrase keeps its trailing newline
        ("delete K7Q2M9XA", False),
        ("DELETE k7q2m9xa", False),
        ("DELETE", False),
        ("DELETE  K7Q2M9XA", False),
        ("DELETE ZZZZZZZZ", False),  # another session's code
        ("yes", False),
        ("", False),
        (None, False),
    ],
)
def test_only_the_exact_phrase_for_this_session_confirms_a_delete(typed: str | None, accepted: bool) -> None:
    assert confirmation_matches(typed, "K7Q2M9XA") is accepted


def test_the_snapshot_keeps_who_what_where_and_when_as_plain_json() -> None:
    snapshot = _visit().to_dict()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["booking_code"] == "K7Q2M9XA"
    assert snapshot["patient"] == {"id": 12, "name": "Siti Rahmawati"}
    assert snapshot["doctor"] == {"id": 5, "name": "dr. Andi Wijaya"}
    assert snapshot["branch"] == {"id": 3, "name": "Klinik Sehat Menteng"}
    assert snapshot["room"] == "Consultation 1"
    assert snapshot["starts_at"] == "2026-11-23T09:00:00+07:00"
    assert snapshot["ended_at"] == "2026-11-23T09:28:00+07:00"
    assert snapshot["cancelled_at"] is None


def test_snapshot_prices_are_in_the_branch_currency_minor_units() -> None:
    examinations = _visit().to_dict()["examinations"]
    assert examinations == [
        {"kind": "examination", "examination_id": 7, "name": "General consultation", "quantity": 1,
         "unit_price": "150000"},
        {"kind": "consumable", "examination_id": None, "name": "Bandage", "quantity": 2, "unit_price": "5000"},
    ]  # fmt: skip
    usd = _visit(currency="USD", lines=(ArchivedLine("consumable", "Gauze", 1, Decimal("2.5")),)).to_dict()
    assert usd["examinations"][0]["unit_price"] == "2.50"  # type: ignore[index]


def test_a_cancelled_visit_keeps_its_reason() -> None:
    cancelled_at = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    visit = _visit(
        status="cancelled", started_at=None, ended_at=None, cancelled_at=cancelled_at, cancel_reason="no_show"
    )
    snapshot = visit.to_dict()
    assert snapshot["status"] == "cancelled"
    assert snapshot["cancel_reason"] == "no_show"
    assert snapshot["cancelled_at"] == "2026-11-22T08:00:00+00:00"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="starts_at must be timezone-aware"):
        _visit(starts_at=datetime(2026, 11, 23, 9, 0))
