"""The booking chatbot: a channel-neutral state machine. Pure: data in, a :class:`Decision` out.

    decision = decide(state, event, ctx)        # replies to send, effects for the service to perform
    decision = resume(decision.state, outcome, ctx)   # after the service performed the last effect

This module is the package's public surface: code outside the package imports from ``booking_core.domain.dialog``
only, never from its modules, which are free to move things between them. Inside, one module per concern:

* :mod:`.machine` — :func:`decide`, :func:`resume`, :func:`first_state`; the commands that work at every step
* :mod:`.flows` — the flows (book, reschedule, cancel, queue): their steps, ``advance`` to the next, the questions
* :mod:`.answers` — reading the patient's answer at each step (one handler per step)
* :mod:`.outcomes` — what the dialog says once the service has done what it asked
* :mod:`.ask` — asking, re-asking and leaving: the helpers every step uses
* :mod:`.words` — reading free text: commands, intents, yes/no, names, phone numbers, fuzzy catalogue matches
* :mod:`.state` — the persisted state, what comes in (:class:`Event`) and what the bot says (:class:`Reply`)
* :mod:`.context` — what the dialog knows of the clinic and the patient (:class:`Context`)
* :mod:`.effects` — the :class:`Decision`, the effects it asks the service for and the outcomes that come back
"""

from booking_core.domain.dialog.context import BranchInfo, Context, DoctorInfo, ExaminationInfo, OpeningHours, VisitInfo
from booking_core.domain.dialog.effects import (
    AlreadyRated,
    Booked,
    BookingReceived,
    CancelVisit,
    ConfirmBooking,
    ConfirmVisit,
    DaysFound,
    Decision,
    Effect,
    FindDays,
    FindSlots,
    Handoff,
    Held,
    HoldSlot,
    NotChanged,
    NotInQueue,
    Outcome,
    QueuePlace,
    QueuePosition,
    Rated,
    RateVisit,
    ReleaseHold,
    Reschedule,
    Rescheduled,
    SlotsFound,
    SlotTaken,
    SlotUnavailable,
    VisitCancelled,
    VisitConfirmed,
)
from booking_core.domain.dialog.machine import decide, first_state, resume
from booking_core.domain.dialog.state import LANGUAGES, STATE_VERSION, Choice, Draft, Event, Reply, State, Step

__all__ = [
    "LANGUAGES",
    "STATE_VERSION",
    "AlreadyRated",
    "Booked",
    "BookingReceived",
    "BranchInfo",
    "CancelVisit",
    "Choice",
    "ConfirmBooking",
    "ConfirmVisit",
    "Context",
    "DaysFound",
    "Decision",
    "DoctorInfo",
    "Draft",
    "Effect",
    "Event",
    "ExaminationInfo",
    "FindDays",
    "FindSlots",
    "Handoff",
    "Held",
    "HoldSlot",
    "NotChanged",
    "NotInQueue",
    "OpeningHours",
    "Outcome",
    "QueuePlace",
    "QueuePosition",
    "RateVisit",
    "Rated",
    "ReleaseHold",
    "Reply",
    "Reschedule",
    "Rescheduled",
    "SlotTaken",
    "SlotUnavailable",
    "SlotsFound",
    "State",
    "Step",
    "VisitCancelled",
    "VisitConfirmed",
    "VisitInfo",
    "decide",
    "first_state",
    "resume",
]
