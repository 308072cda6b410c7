"""What the dialog decides: a :class:`Decision` carries the next state, the replies and the effects the service
must perform; the one effect that yields an :data:`Outcome` comes last, and the outcome goes back to the dialog.

Each effect's docstring names the outcomes it may yield.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeAlias

from booking_core.domain.dialog.state import Reply, State

__all__ = [
    "AlreadyRated",
    "Booked",
    "BookingReceived",
    "CancelVisit",
    "ConfirmBooking",
    "ConfirmVisit",
    "DaysFound",
    "Decision",
    "Effect",
    "FindDays",
    "FindSlots",
    "Handoff",
    "Held",
    "HoldSlot",
    "NotChanged",
    "NotInQueue",
    "Outcome",
    "QueuePlace",
    "QueuePosition",
    "RateVisit",
    "Rated",
    "ReleaseHold",
    "Reschedule",
    "Rescheduled",
    "SlotTaken",
    "SlotUnavailable",
    "SlotsFound",
    "VisitCancelled",
    "VisitConfirmed",
]

# --- what the service is asked to do ----------------------------------------------------------------------


@dataclass(frozen=True)
class FindDays:
    """Which of the next ``within_days`` local days have a free slot? → :class:`DaysFound`."""

    branch_id: int
    examination_id: int
    doctor_id: int | None
    start: date
    within_days: int = 14
    limit: int = 7


@dataclass(frozen=True)
class FindSlots:
    """The free starts on one local day → :class:`SlotsFound`."""

    branch_id: int
    examination_id: int
    doctor_id: int | None
    day: date


@dataclass(frozen=True)
class HoldSlot:
    """Hold ``start`` for the patient → :class:`Held`, :class:`SlotTaken` or :class:`SlotUnavailable`."""

    branch_id: int
    examination_id: int
    doctor_id: int | None
    start: datetime


@dataclass(frozen=True)
class ReleaseHold:
    """Give a held slot back (no outcome)."""

    hold_id: int


@dataclass(frozen=True)
class ConfirmBooking:
    """Put the held slot on the conversation's lead (or book it, if the clinic lets the bot book).

    → :class:`BookingReceived`, :class:`Booked` or :class:`SlotTaken` (the hold lapsed and the time went).
    """

    hold_id: int
    branch_id: int
    examination_id: int
    doctor_id: int | None
    start: datetime
    name: str
    phone: str


@dataclass(frozen=True)
class CancelVisit:
    """Cancel the patient's session → :class:`VisitCancelled` or :class:`NotChanged`."""

    visit_id: int
    reason_code: str
    note: str


@dataclass(frozen=True)
class Reschedule:
    """Move a session to the held slot in one transaction → :class:`Rescheduled`, :class:`SlotTaken`, ..."""

    visit_id: int
    hold_id: int


@dataclass(frozen=True)
class QueuePosition:
    """The place of today's session in the queue → :class:`QueuePlace` or :class:`NotInQueue`."""

    visit_id: int


@dataclass(frozen=True)
class Handoff:
    """Pause the bot; staff answer in this conversation from now on (no outcome)."""


@dataclass(frozen=True)
class ConfirmVisit:
    """The patient confirms their visit (the confirmation message) → :class:`VisitConfirmed` or :class:`NotChanged`."""

    visit_id: int


@dataclass(frozen=True)
class RateVisit:
    """The patient rates a completed visit 1-5 (the thank-you message) → :class:`Rated`, :class:`AlreadyRated` or
    :class:`NotChanged`."""

    visit_id: int
    rating: int


Effect: TypeAlias = (
    FindDays
    | FindSlots
    | HoldSlot
    | ReleaseHold
    | ConfirmBooking
    | CancelVisit
    | Reschedule
    | QueuePosition
    | Handoff
    | ConfirmVisit
    | RateVisit
)


# --- what the service found -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaysFound:
    days: tuple[date, ...]


@dataclass(frozen=True)
class SlotsFound:
    day: date
    starts: tuple[datetime, ...]  # timezone-aware


@dataclass(frozen=True)
class Held:
    hold_id: int
    start: datetime
    doctor_id: int


@dataclass(frozen=True)
class SlotTaken:
    """The time went meanwhile; ``alternatives`` are the next free starts."""

    alternatives: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class SlotUnavailable:
    """The time cannot be booked at all any more (rules changed, too soon)."""


@dataclass(frozen=True)
class BookingReceived:
    lead_id: int


@dataclass(frozen=True)
class Booked:
    booking_code: str
    start: datetime


@dataclass(frozen=True)
class VisitCancelled:
    booking_code: str


@dataclass(frozen=True)
class Rescheduled:
    booking_code: str
    start: datetime


@dataclass(frozen=True)
class NotChanged:
    """The clinic refused the change (already started, cancelled meanwhile, ...); ``code`` says why."""

    code: str


@dataclass(frozen=True)
class QueuePlace:
    token: str
    position: int  # 0: with the doctor now
    ahead: int
    eta: datetime
    doctor_name: str


@dataclass(frozen=True)
class NotInQueue:
    """The visit is today but not checked in (or already done)."""


@dataclass(frozen=True)
class VisitConfirmed:
    booking_code: str
    start: datetime
    already: bool = False  # it was confirmed before: nothing changed


@dataclass(frozen=True)
class Rated:
    rating: int


@dataclass(frozen=True)
class AlreadyRated:
    """The visit was rated before; the first rating stands."""


Outcome: TypeAlias = (
    DaysFound
    | SlotsFound
    | Held
    | SlotTaken
    | SlotUnavailable
    | BookingReceived
    | Booked
    | VisitCancelled
    | Rescheduled
    | NotChanged
    | QueuePlace
    | NotInQueue
    | VisitConfirmed
    | Rated
    | AlreadyRated
)


@dataclass(frozen=True)
class Decision:
    """The next state, the replies to send (in order) and what the service must do (in order).

    At most one effect yields an :data:`Outcome`, and it comes last; the service feeds that outcome to
    :func:`booking_core.domain.dialog.resume`, which returns the next decision.
    """

    state: State
    replies: tuple[Reply, ...] = ()
    effects: tuple[Effect, ...] = ()
