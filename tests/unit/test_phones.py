"""Phone numbers are normalised to E.164 so one patient is one record across channels."""

from __future__ import annotations

import pytest

from booking_core.domain.phones import to_e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0812-3456-7890", "+6281234567890"),
        ("+62 812 3456 7890", "+6281234567890"),
        ("whatsapp:+6281234567890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),  # Telegram's shared contact form
        ("+49 30 901820", "+4930901820"),
    ],
)
def test_the_same_number_written_many_ways_is_one_number(raw: str, expected: str) -> None:
    assert to_e164(raw) == expected


@pytest.mark.parametrize("raw", ["", None, "12", "not a phone", "+62 0000", "9" * 50])
def test_what_is_not_a_phone_number_is_none(raw: str | None) -> None:
    assert to_e164(raw) is None
