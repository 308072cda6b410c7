"""Session lifecycle: which status changes a clinic visit may go through, and what each one records.

A session starts ``waiting`` (booked, or checked in and waiting), becomes ``open`` when the doctor calls the
patient in, and ends ``completed``. Either of the first two may be ``cancelled`` with a reason. Nothing comes
back from ``completed`` or ``cancelled``: a new visit is a new session.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "ACTIVE_STATUSES",
    "ALLOWED_TRANSITIONS",
    "DEFAULT_CANCEL_REASONS",
    "MAX_NOTE_LENGTH",
    "REASONS_REQUIRING_NOTE",
    "InvalidCancelReason",
    "InvalidTransition",
    "SessionStatus",
    "TransitionResult",
    "auto_complete_past",
    "can_transition",
    "transition",
]


class SessionStatus(StrEnum):
    """Where a clinic session (one visit) stands."""

    WAITING = "waiting"
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


#: Sessions that still occupy the doctor's (and room's) time: the overlap rule and the queue see only these.
ACTIVE_STATUSES: frozenset[SessionStatus] = frozenset({SessionStatus.WAITING, SessionStatus.OPEN})

#: Every permitted change, current -> targets. Anything not listed is refused.
ALLOWED_TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.WAITING: frozenset({SessionStatus.OPEN, SessionStatus.CANCELLED}),
    SessionStatus.OPEN: frozenset({SessionStatus.COMPLETED, SessionStatus.CANCELLED}),
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
}

#: Cancel reasons a clinic gets unless it configures its own list.
DEFAULT_CANCEL_REASONS: frozenset[str] = frozenset(
    {"patient_request", "no_show", "doctor_unavailable", "clinic_closed", "duplicate", "other"}
)

#: "other" says nothing by itself, so the person cancelling must write why.
REASONS_REQUIRING_NOTE: frozenset[str] = frozenset({"other"})

#: Free text is shown to staff and stored next to the audit row; keep it a note, not an essay.
MAX_NOTE_LENGTH = 500

_ARTICLE = {
    SessionStatus.WAITING: "a",
    SessionStatus.OPEN: "an",
    SessionStatus.COMPLETED: "a",
    SessionStatus.CANCELLED: "a",
}
_VERB = {
    SessionStatus.WAITING: "put back to waiting",
    SessionStatus.OPEN: "opened",
    SessionStatus.COMPLETED: "completed",
    SessionStatus.CANCELLED: "cancelled",
}


class InvalidTransition(ValueError):
    """The session cannot go from ``current`` to ``target``."""

    code = "invalid_transition"

    def __init__(self, current: SessionStatus, target: SessionStatus) -> None:
        self.current = current
        self.target = target
        if current is target:
            message = f"the session is already {current}"
        elif current is SessionStatus.WAITING and target is SessionStatus.COMPLETED:
            message = "a waiting session cannot be completed before it is opened"
        else:
            message = f"{_ARTICLE[current]} {current} session cannot be {_VERB[target]}"
        super().__init__(message)


class InvalidCancelReason(ValueError):
    """The cancel reason is missing, not in the clinic's list, or needs a note that was not given."""

    code = "invalid_reason"

    def __init__(self, message: str, *, reason_code: str | None = None) -> None:
        self.reason_code = reason_code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """What to write after an accepted change: the new status, the timestamp it sets, the cancel reason."""

    previous: SessionStatus
    status: SessionStatus
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancelled_at: datetime | None = None
    reason_code: str | None = None
    note: str | None = None

    def timestamps(self) -> dict[str, datetime]:
        """Only the timestamp fields this change sets, e.g. ``{"started_at": at}``."""
        fields = {"started_at": self.started_at, "ended_at": self.ended_at, "cancelled_at": self.cancelled_at}
        return {name: value for name, value in fields.items() if value is not None}


def can_transition(current: SessionStatus, target: SessionStatus) -> bool:
    """Whether ``current -> target`` is an allowed change (reasons are not checked here)."""
    return target in ALLOWED_TRANSITIONS[SessionStatus(current)]


def transition(
    current: SessionStatus,
    target: SessionStatus,
    *,
    at: datetime,
    reason_code: str | None = None,
    note: str | None = None,
    allowed_reasons: Collection[str] = DEFAULT_CANCEL_REASONS,
) -> TransitionResult:
    """Decide a status change at time ``at`` (timezone-aware).

    Raises :class:`InvalidTransition` for a change that is not allowed and :class:`InvalidCancelReason` when
    a cancellation has no reason, a reason outside ``allowed_reasons``, or a reason that needs a note without
    one.
    ``reason_code`` and ``note`` only matter for cancellations and are left out of the result otherwise.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("transition time must be timezone-aware")
    current = SessionStatus(current)
    target = SessionStatus(target)
    if not can_transition(current, target):
        raise InvalidTransition(current, target)

    if target is SessionStatus.OPEN:
        return TransitionResult(previous=current, status=target, started_at=at)
    if target is SessionStatus.COMPLETED:
        return TransitionResult(previous=current, status=target, ended_at=at)

    clean_note = _check_cancel_reason(reason_code, note, allowed_reasons)
    return TransitionResult(previous=current, status=target, cancelled_at=at, reason_code=reason_code, note=clean_note)


def _check_cancel_reason(reason_code: str | None, note: str | None, allowed: Collection[str]) -> str | None:
    """Validate a cancel reason; returns the note stripped (``None`` when blank)."""
    if not reason_code:
        raise InvalidCancelReason("a reason is required to cancel a session")
    if reason_code not in allowed:
        raise InvalidCancelReason(f"unknown cancel reason {reason_code!r}", reason_code=reason_code)
    clean_note = note.strip() if note else ""
    if reason_code in REASONS_REQUIRING_NOTE and not clean_note:
        raise InvalidCancelReason(f"the reason {reason_code!r} needs a note", reason_code=reason_code)
    if len(clean_note) > MAX_NOTE_LENGTH:
        raise InvalidCancelReason(f"the note is longer than {MAX_NOTE_LENGTH} characters", reason_code=reason_code)
    return clean_note or None


def auto_complete_past(start: datetime, end: datetime, now: datetime) -> bool:
    """Whether a session booked for ``start``–``end`` lies entirely in the past and is completed at once.

    Staff enter visits after the fact (paper day sheets, walk-ins recorded late); those never wait in the
    queue.
    """
    if end <= start:
        raise ValueError("a session must end after it starts")
    return end <= now
