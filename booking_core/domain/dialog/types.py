"""The chatbot's data: its persisted state, what comes in, what it knows, what it says and asks the service to do.

Everything here is plain frozen data. :class:`State` round-trips through JSON (``conversations.dialog_state``);
replies carry template names and raw values (ISO times, names), never rendered text, so the same question can be
asked again later in another language.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime, time
from typing import Any, Literal, TypeAlias, get_args

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
    "Visit",
    "VisitCancelled",
    "VisitConfirmed",
]

LANGUAGES = ("en", "id")
STATE_VERSION = 1

Step: TypeAlias = Literal[
    "menu", "exam", "branch", "doctor", "day", "time", "name", "phone", "confirm", "pick", "reason", "lang"
]
STEPS: tuple[str, ...] = get_args(Step)
Flow: TypeAlias = Literal["book", "reschedule", "cancel", "queue"]


# --- what the bot says ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A button: ``label`` names a macro in ``templates/messages/<lang>/_buttons.txt``; ``data`` comes back."""

    label: str
    data: str
    vars: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.data.encode()) > 64:  # Telegram's callback_data limit
            raise ValueError(f"button data longer than 64 bytes: {self.data!r}")


@dataclass(frozen=True)
class Reply:
    """One outbound message: ``templates/messages/<lang>/<template>.txt`` rendered with ``vars``, plus buttons."""

    template: str
    vars: dict[str, Any] = field(default_factory=dict)
    buttons: tuple[Choice, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "vars": self.vars,
            "buttons": [{"label": b.label, "data": b.data, "vars": b.vars} for b in self.buttons],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        return cls(
            template=str(data["template"]),
            vars=dict(data.get("vars") or {}),
            buttons=tuple(Choice(str(b["label"]), str(b["data"]), dict(b.get("vars") or {})) for b in data["buttons"]),
        )


# --- state ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """What the patient has chosen so far in the current flow (name and phone survive from flow to flow)."""

    examination_id: int | None = None
    branch_id: int | None = None
    doctor_id: int | None = None  # None with doctor_chosen: any doctor
    doctor_chosen: bool = False
    day: date | None = None
    wanted: time | None = None  # a time named before the free times were known ("besok jam 3")
    start: datetime | None = None
    hold_id: int | None = None
    held_doctor_id: int | None = None  # the doctor the hold went to (when "any" was chosen)
    name: str | None = None
    phone: str | None = None
    visit_id: int | None = None  # the session being cancelled, rescheduled or looked up in the queue


_DRAFT_CODECS: dict[str, tuple[Any, Any]] = {
    "day": (date.isoformat, date.fromisoformat),
    "wanted": (lambda t: t.isoformat(timespec="minutes"), time.fromisoformat),
    "start": (lambda d: d.isoformat(), datetime.fromisoformat),
}


@dataclass(frozen=True)
class State:
    """The conversation's place in the dialog; persisted as JSON between messages."""

    lang: str = "en"
    step: Step = "menu"
    flow: Flow | None = None
    trail: tuple[str, ...] = ()  # the questions asked in this flow, for "back"
    draft: Draft = field(default_factory=Draft)
    question: Reply | None = None  # the last question: numeric replies and button data are checked against it
    misses: int = 0  # wrong answers in a row
    slots: tuple[datetime, ...] = ()  # free starts offered at the time step
    page: int = 0
    greeted: bool = False
    closed_notice: str | None = None  # the opening time already announced while the clinic is closed
    resume_step: Step | None = None  # after a side question (/lang): where to go back to
    resume_question: Reply | None = None

    @property
    def offered(self) -> tuple[str, ...]:
        """Button data of the last question, in order (WhatsApp shows them as 1..n)."""
        return tuple(b.data for b in self.question.buttons) if self.question else ()

    def to_json(self) -> dict[str, Any]:
        draft = {}
        for key, value in asdict(self.draft).items():
            if value is not None:
                draft[key] = _DRAFT_CODECS[key][0](value) if key in _DRAFT_CODECS else value
        return {
            "v": STATE_VERSION,
            "lang": self.lang,
            "step": self.step,
            "flow": self.flow,
            "trail": list(self.trail),
            "draft": draft,
            "question": self.question.to_json() if self.question else None,
            "misses": self.misses,
            "slots": [s.isoformat() for s in self.slots],
            "page": self.page,
            "greeted": self.greeted,
            "closed_notice": self.closed_notice,
            "resume_step": self.resume_step,
            "resume_question": self.resume_question.to_json() if self.resume_question else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, *, lang: str = "en") -> State:
        """The stored state; an empty, foreign or damaged one starts afresh in ``lang`` (never an error)."""
        if not data or data.get("v") != STATE_VERSION or data.get("step", "menu") not in STEPS:
            return cls(lang=lang)
        try:
            known = {f.name for f in fields(Draft)}
            raw = {k: v for k, v in dict(data.get("draft") or {}).items() if k in known}
            draft = Draft(**{k: _DRAFT_CODECS[k][1](v) if k in _DRAFT_CODECS else v for k, v in raw.items()})
            question, resume = data.get("question"), data.get("resume_question")
            return cls(
                lang=str(data.get("lang") or lang),
                step=data.get("step") or "menu",
                flow=data.get("flow"),
                trail=tuple(str(s) for s in data.get("trail") or ()),
                draft=draft,
                question=Reply.from_json(question) if question else None,
                misses=int(data.get("misses") or 0),
                slots=tuple(datetime.fromisoformat(s) for s in data.get("slots") or ()),
                page=int(data.get("page") or 0),
                greeted=bool(data.get("greeted")),
                closed_notice=data.get("closed_notice"),
                resume_step=data.get("resume_step"),
                resume_question=Reply.from_json(resume) if resume else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return cls(lang=lang)

    def but(self, **changes: Any) -> State:
        return replace(self, **changes)

    def drafting(self, **changes: Any) -> State:
        return replace(self, draft=replace(self.draft, **changes))


# --- what comes in ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One inbound message as the dialog sees it (channel-neutral)."""

    kind: Literal["text", "button", "contact", "start", "media"] = "text"
    text: str = ""
    button_data: str | None = None  # user-controlled: checked against what was offered
    contact_phone: str | None = None  # a shared contact (Telegram) or the sender's number
    media_count: int = 0


# --- what the bot knows (loaded by the service) -----------------------------------------------------------


@dataclass(frozen=True)
class OpeningHours:
    weekday: int  # 0 = Monday
    opens: time
    closes: time


@dataclass(frozen=True)
class BranchInfo:
    id: int
    name: str
    tz: str
    hours: tuple[OpeningHours, ...] = ()
    doctor_ids: tuple[int, ...] = ()  # doctors who attend here (empty: not known, any)


@dataclass(frozen=True)
class ExaminationInfo:
    id: int
    name: str
    keywords: tuple[str, ...] = ()
    branch_ids: tuple[int, ...] = ()
    doctor_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class DoctorInfo:
    id: int
    name: str


@dataclass(frozen=True)
class Visit:
    """One of the patient's upcoming sessions."""

    id: int
    booking_code: str
    branch_id: int
    examination_id: int | None
    examination_name: str
    doctor_id: int
    doctor_name: str
    starts_at: datetime
    status: str = "waiting"
    cancel_cutoff_min: int = 0
    in_queue: bool = False


@dataclass(frozen=True)
class Context:
    """Plain data the service loaded for this step: the catalogue, the patient's visits, the clock."""

    now: datetime
    examinations: tuple[ExaminationInfo, ...] = ()
    branches: tuple[BranchInfo, ...] = ()
    doctors: tuple[DoctorInfo, ...] = ()
    visits: tuple[Visit, ...] = ()
    patient_name: str | None = None
    patient_phone: str | None = None
    cancel_reasons: tuple[str, ...] = ("patient_request", "duplicate", "other")
    hold_minutes: int = 10
    # Button data of our latest message in the chat when it is a follow-up (confirmation, thank-you): a bare
    # "1".."n" answers that message rather than the menu (WhatsApp shows its buttons as numbered options).
    followup: tuple[str, ...] = ()

    def examination(self, examination_id: int | None) -> ExaminationInfo | None:
        return next((e for e in self.examinations if e.id == examination_id), None)

    def branch(self, branch_id: int | None) -> BranchInfo | None:
        return next((b for b in self.branches if b.id == branch_id), None)

    def doctor(self, doctor_id: int | None) -> DoctorInfo | None:
        return next((d for d in self.doctors if d.id == doctor_id), None)

    def visit(self, visit_id: int | None) -> Visit | None:
        return next((v for v in self.visits if v.id == visit_id), None)


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
