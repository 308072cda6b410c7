"""Pure rules behind what follows a booking: the confirmation link, its page, the check-in QR and the rating.

Data in, decision out: when a link stops working, what the patient may still do on the page (confirm, cancel,
reschedule) and why not, what the check-in QR encodes, and how the chat buttons of these messages are spelled
("cf:yes:<session>", "cf:no:<session>", "rate:<session>:<n>") and read back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "CHECKIN_PREFIX",
    "LINK_GRACE",
    "PAGE_CANCEL_REASONS",
    "RATINGS",
    "Choices",
    "Refusal",
    "change_deadline",
    "checkin_content",
    "confirm_buttons",
    "link_expires_at",
    "page_choices",
    "rating_answer",
    "rating_buttons",
    "visit_answer",
]

#: A link keeps working this long after the visit ends (the patient may look up the code or the time afterwards).
LINK_GRACE = timedelta(days=1)
#: What the front desk scanner reads: "FD:" and the booking code (``queue.check_in_by_booking_code`` takes the code).
CHECKIN_PREFIX = "FD:"
#: The cancel reasons a patient chooses between on the page; "other" needs a note (the lifecycle's rule).
PAGE_CANCEL_REASONS: tuple[str, ...] = ("patient_request", "other")
RATINGS: tuple[int, ...] = (1, 2, 3, 4, 5)

Refusal = Literal["cancelled", "completed", "started", "checked_in", "too_late"]

_VISIT_ANSWER = re.compile(r"cf:(yes|no):([1-9][0-9]{0,17})")
_RATING_ANSWER = re.compile(r"rate:([1-9][0-9]{0,17}):([1-5])")


def link_expires_at(visit_end: datetime) -> datetime:
    """When a confirmation link stops working: a day after the visit ends."""
    if visit_end.tzinfo is None or visit_end.utcoffset() is None:
        raise ValueError("visit_end must be timezone-aware")
    return visit_end + LINK_GRACE


def change_deadline(starts_at: datetime, cutoff_min: int) -> datetime:
    """The last moment a patient may cancel or move the visit themselves (the examination's cut-off before it)."""
    return starts_at - timedelta(minutes=max(0, cutoff_min))


@dataclass(frozen=True)
class Choices:
    """What the page offers now. ``why_not`` says why changing (cancel / reschedule) is not offered."""

    can_confirm: bool
    can_change: bool
    why_not: Refusal | None
    confirmed: bool


def page_choices(
    *,
    status: str,
    confirmed: bool,
    starts_at: datetime,
    cutoff_min: int,
    checked_in: bool,
    now: datetime,
) -> Choices:
    """Confirm while the visit waits; cancel or reschedule only before the cut-off and before check-in."""
    if status == "cancelled":
        return Choices(False, False, "cancelled", confirmed)
    if status == "completed":
        return Choices(False, False, "completed", confirmed)
    if status != "waiting":
        return Choices(False, False, "started", confirmed)
    can_confirm = not confirmed
    if checked_in:
        return Choices(can_confirm, False, "checked_in", confirmed)
    if now >= change_deadline(starts_at, cutoff_min):
        return Choices(can_confirm, False, "too_late", confirmed)
    return Choices(can_confirm, True, None, confirmed)


def checkin_content(booking_code: str) -> str:
    """The text inside the check-in QR code."""
    return f"{CHECKIN_PREFIX}{booking_code}"


def confirm_buttons(session_id: int) -> tuple[str, str]:
    """Button data of the confirmation message: confirm, cancel."""
    return f"cf:yes:{session_id}", f"cf:no:{session_id}"


def rating_buttons(session_id: int) -> tuple[str, ...]:
    """Button data of the thank-you message, one per rating 1..5."""
    return tuple(f"rate:{session_id}:{n}" for n in RATINGS)


def visit_answer(data: str) -> tuple[Literal["yes", "no"], int] | None:
    """``"cf:yes:12"`` → ("yes", 12); anything else (including the booking summary's "cf:yes") → None."""
    found = _VISIT_ANSWER.fullmatch(data)
    if found is None:
        return None
    answer: Literal["yes", "no"] = "yes" if found[1] == "yes" else "no"
    return answer, int(found[2])


def rating_answer(data: str) -> tuple[int, int] | None:
    """``"rate:12:5"`` → (12, 5); anything else → None."""
    found = _RATING_ANSWER.fullmatch(data)
    return (int(found[1]), int(found[2])) if found else None
