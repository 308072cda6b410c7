"""Session lifecycle: which status changes a clinic visit may go through, and what each one records.

A session starts ``waiting`` (booked, or checked in and waiting), becomes ``open`` when the doctor calls the
patient in, and ends ``completed``. Either of the first two may be ``cancelled`` with a reason. Nothing comes
back from ``completed`` or ``cancelled``: a new visit is a new session.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

__all__ = [
    "ACTIVE_STATUSES",
    "ALLOWED_TRANSITIONS",
    "DEFAULT_CANCEL_REASONS",
    "DEFAULT_START_DAYS_AHEAD",
    "MAX_NOTE_LENGTH",
    "NOT_ACCEPTED_MESSAGE",
    "REASONS_REQUIRING_NOTE",
    "START_DAYS_SETTING",
    "InvalidCancelReason",
    "InvalidTransition",
    "SessionStatus",
    "StepRefused",
    "TransitionResult",
    "VisitFacts",
    "auto_complete_past",
    "can_transition",
    "check_in_refusal",
    "earliest_start_day",
    "start_days_ahead",
    "step_refusal",
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


# --- the visit's own rules: acceptance, its day, back-dated entry ------------------------------------------------

#: A visit may be started on its own local day; a clinic may allow this many days earlier (setting
#: ``visit_start_days_ahead``). Nothing is ever started "two days before it" by accident.
DEFAULT_START_DAYS_AHEAD = 0
#: The clinic setting that holds it.
START_DAYS_SETTING = "visit_start_days_ahead"

#: The one answer, on the API, the staff pages, the scanner and the chat, to a step that needs an accepted visit.
NOT_ACCEPTED_MESSAGE = "This visit was not accepted yet; accept it first (in Appointments or on the visit page)."

#: Longest reason kept with a back-dated entry.
MAX_BACKDATE_REASON = MAX_NOTE_LENGTH


@dataclass(frozen=True, slots=True)
class VisitFacts:
    """What the step rules need to know about one visit: accepted or not, its booked time, its branch's zone."""

    accepted: bool
    starts_at: datetime
    ends_at: datetime
    tz: str


class StepRefused(ValueError):
    """A check-in, start or complete that the visit's own state does not allow; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def _local_day(instant: datetime, tz: str) -> date:
    return instant.astimezone(ZoneInfo(tz)).date()


def start_days_ahead(setting: object) -> int:
    """The clinic setting ``visit_start_days_ahead`` read safely: a whole number of days 0-31, else the default."""
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        return DEFAULT_START_DAYS_AHEAD
    return min(setting, 31)


def earliest_start_day(visit: VisitFacts, *, days_ahead: int = DEFAULT_START_DAYS_AHEAD) -> date:
    """The first local day on which the visit may be started: its own day, less ``days_ahead``."""
    return _local_day(visit.starts_at, visit.tz) - timedelta(days=max(days_ahead, 0))


def check_in_refusal(visit: VisitFacts) -> StepRefused | None:
    """Why the patient cannot be checked in for this visit (``not_accepted``), or ``None`` when they can.

    The day and the status are the queue's rules; acceptance is this one, the same for every way in.
    """
    if not visit.accepted:
        return StepRefused("not_accepted", NOT_ACCEPTED_MESSAGE)
    return None


def step_refusal(
    target: SessionStatus,
    visit: VisitFacts,
    *,
    now: datetime,
    days_ahead: int = DEFAULT_START_DAYS_AHEAD,
    backdated_reason: str | None = None,
    backdated: bool = False,
) -> StepRefused | None:
    """Why the visit cannot be started or completed now (``None`` when it can; other targets are not checked).

    * A visit is started and completed only once accepted (``not_accepted``) and not before
      :func:`earliest_start_day` in its branch's zone (``not_its_day``).
    * ``backdated``: staff record, after the fact, a visit whose booked start has passed (paper day sheets). It
      needs a reason (``reason_required``), is refused for a visit still to come (``not_in_the_past``) and then does
      not need the acceptance: staff vouch for the visit by entering it.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    target = SessionStatus(target)
    if target not in (SessionStatus.OPEN, SessionStatus.COMPLETED):
        return None
    if backdated:
        reason = " ".join((backdated_reason or "").split())
        if not reason:
            return StepRefused(
                "reason_required", "Say why this visit is entered back-dated (e.g. from the paper day sheet)."
            )
        if len(reason) > MAX_BACKDATE_REASON:
            return StepRefused("reason_too_long", f"Keep the reason under {MAX_BACKDATE_REASON} characters.")
        if visit.starts_at > now:
            return StepRefused(
                "not_in_the_past", "Only a visit whose booked time has passed can be entered back-dated."
            )
        return None
    if not visit.accepted:
        return StepRefused("not_accepted", NOT_ACCEPTED_MESSAGE)
    first = earliest_start_day(visit, days_ahead=days_ahead)
    if _local_day(now, visit.tz) < first:
        day = _local_day(visit.starts_at, visit.tz)
        when = "on its day" if first == day else f"from {first:%a %-d %b}"
        return StepRefused("not_its_day", f"This visit is on {day:%a %-d %b %Y}; it can be started {when}.")
    return None
