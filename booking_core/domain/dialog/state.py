"""The chatbot's own data: its persisted state, what comes in and what it says.

Everything here is plain frozen data. :class:`State` round-trips through JSON (``conversations.dialog_state``);
replies carry template names and raw values (ISO times, names), never rendered text, so the same question can be
asked again later in another language.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime, time
from typing import Any, Literal, TypeAlias, get_args

__all__ = ["LANGUAGES", "STATE_VERSION", "STEPS", "Choice", "Draft", "Event", "Flow", "Reply", "State", "Step"]

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
