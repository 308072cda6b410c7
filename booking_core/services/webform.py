"""The public booking form: which fields a clinic asks for, checking a submission, and turning it into a lead.

A valid submission goes through ``ingest.receive`` like a chat message (channel "webform", the submission's uuid as
its external id, so a double submit is one lead), then the lead gets the structured details the form collected.
Nothing answers a form in chat, so its message is marked processed at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import catalog as catalog_queries
from booking_core.db.queries import website as queries
from booking_core.domain.messages import ContactRef, InboundMessage
from booking_core.domain.phones import to_e164
from booking_core.services import ingest
from booking_core.services import settings as clinic_settings

#: Every field the form knows, in the order it shows them.
FIELDS = ("name", "phone", "email", "branch", "examination", "preferred_date", "preferred_time", "note")
MAX_NAME = 120
MAX_EMAIL = 200
MAX_NOTE = 1000
#: How far ahead a preferred date may be (further is surely a typo in the year).
MAX_DAYS_AHEAD = 366
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class FieldRule:
    name: str
    required: bool


@dataclass(frozen=True)
class BranchChoice:
    id: int
    name: str
    tz: str


@dataclass(frozen=True)
class ExaminationChoice:
    id: int
    name: str
    branch_ids: tuple[int, ...]


@dataclass(frozen=True)
class FormSetup:
    """The clinic's form: the fields it asks (from the ``booking_form`` setting) and today's choices."""

    fields: tuple[FieldRule, ...]
    branches: tuple[BranchChoice, ...]
    examinations: tuple[ExaminationChoice, ...]

    def shows(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    def required(self, name: str) -> bool:
        return any(f.name == name and f.required for f in self.fields)

    def branch(self, branch_id: int | None) -> BranchChoice | None:
        return next((b for b in self.branches if b.id == branch_id), None)

    def examination(self, examination_id: int | None) -> ExaminationChoice | None:
        return next((e for e in self.examinations if e.id == examination_id), None)


@dataclass(frozen=True)
class BookingRequest:
    """A checked submission: what the lead will say."""

    name: str = ""
    phone: str | None = None  # E.164
    email: str | None = None
    branch_id: int | None = None
    examination_id: int | None = None
    preferred_date: date | None = None
    preferred_time: time | None = None
    note: str = ""

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else ""


@dataclass(frozen=True)
class Checked:
    """The outcome of :func:`check`: a request, or field name → error code (``required``, ``invalid_phone``, ...)."""

    request: BookingRequest | None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Submitted:
    lead_id: int | None
    duplicate: bool


def field_rules(setting: Any) -> tuple[FieldRule, ...]:
    """The fields of the ``booking_form`` setting (a field is shown when listed and not ``"enabled": false``)."""
    configured = setting.get("fields") if isinstance(setting, Mapping) else None
    if not isinstance(configured, Mapping):
        configured = clinic_settings.DEFAULT_SETTINGS["booking_form"]["fields"]
    rules = []
    for name in FIELDS:
        options = configured.get(name)
        if options is None:
            continue
        options = options if isinstance(options, Mapping) else {}
        if options.get("enabled", True) is False:
            continue
        rules.append(FieldRule(name=name, required=bool(options.get("required", False))))
    return tuple(rules)


async def form_setup(db: Db) -> FormSetup:
    """The form as the clinic configured it, with active branches and the active examinations each one offers
    (limited to the branches and examinations the clinic chose to offer on the form, if it chose)."""
    setting = await clinic_settings.get(db, "booking_form")
    rules = field_rules(setting)
    chosen = clinic_settings.booking_form_setup(setting)
    branches = [
        b for b in await catalog_queries.list_branches(db) if chosen.branch_ids is None or b.id in chosen.branch_ids
    ]
    branch_ids = {b.id for b in branches}
    examinations = [
        e
        for e in await catalog_queries.list_examinations(db, active=True)
        if chosen.examination_ids is None or e.id in chosen.examination_ids
    ]
    links, _, _ = await catalog_queries.examination_links(db, [e.id for e in examinations])
    offered = [
        ExaminationChoice(e.id, e.name, tuple(b for b in links.get(e.id, []) if b in branch_ids)) for e in examinations
    ]
    return FormSetup(
        fields=rules,
        branches=tuple(BranchChoice(b.id, b.name, b.tz) for b in branches),
        examinations=tuple(e for e in offered if e.branch_ids),
    )


def _clean(value: str | None) -> str:
    """Strip surrounding space and control characters (keeping line breaks); the rest is stored as typed."""
    text = (value or "").replace("\r\n", "\n")
    return "".join(c for c in text if c == "\n" or unicodedata.category(c) != "Cc").strip()


def _as_int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) <= 12 else None


def check(values: Mapping[str, str], form: FormSetup, *, now: datetime) -> Checked:
    """Check a submission against the form; every problem is reported at once, per field."""
    errors: dict[str, str] = {}
    raw = {name: _clean(values.get(name)) if form.shows(name) else "" for name in FIELDS}
    for rule in form.fields:
        if rule.required and not raw[rule.name]:
            errors[rule.name] = "required"

    name = " ".join(raw["name"].split())
    if len(name) > MAX_NAME:
        errors["name"] = "too_long"

    phone = None
    if raw["phone"]:
        phone = to_e164(raw["phone"])
        if phone is None:
            errors["phone"] = "invalid_phone"

    email = raw["email"] or None
    if email is not None and (len(email) > MAX_EMAIL or not _EMAIL.match(email)):
        errors["email"] = "invalid_email"

    branch = None
    if raw["branch"]:
        branch = form.branch(_as_int(raw["branch"]))
        if branch is None:
            errors["branch"] = "invalid_choice"

    examination = None
    if raw["examination"]:
        examination = form.examination(_as_int(raw["examination"]))
        if examination is None:
            errors["examination"] = "invalid_choice"
        elif branch is not None and branch.id not in examination.branch_ids:
            errors["examination"] = "not_at_branch"

    zone = ZoneInfo(branch.tz if branch else form.branches[0].tz if form.branches else "UTC")
    preferred_date, preferred_time = _preferred(raw, form, now.astimezone(zone), errors)

    note = raw["note"]
    if len(note) > MAX_NOTE:
        errors["note"] = "too_long"

    if errors:
        return Checked(None, errors)
    return Checked(
        BookingRequest(
            name=name,
            phone=phone,
            email=email,
            branch_id=branch.id if branch else None,
            examination_id=examination.id if examination else None,
            preferred_date=preferred_date,
            preferred_time=preferred_time,
            note=note,
        )
    )


def _preferred(
    raw: Mapping[str, str], form: FormSetup, local_now: datetime, errors: dict[str, str]
) -> tuple[date | None, time | None]:
    """The preferred date (from today, within :data:`MAX_DAYS_AHEAD`) and time (not already gone today), as
    typed in the branch's wall time; problems go into ``errors``."""
    preferred_date = None
    if raw["preferred_date"]:
        try:
            preferred_date = date.fromisoformat(raw["preferred_date"])
        except ValueError:
            errors["preferred_date"] = "invalid_date"
        else:
            if preferred_date < local_now.date():
                errors["preferred_date"] = "past_date"
            elif preferred_date > local_now.date() + timedelta(days=MAX_DAYS_AHEAD):
                errors["preferred_date"] = "too_far"
    preferred_time = None
    if raw["preferred_time"]:
        try:
            preferred_time = time.fromisoformat(raw["preferred_time"])
        except ValueError:
            errors["preferred_time"] = "invalid_time"
        else:
            if preferred_time.tzinfo is not None:
                errors["preferred_time"] = "invalid_time"
            elif not raw["preferred_date"] and form.shows("preferred_date"):
                errors.setdefault("preferred_date", "date_needed")
            elif preferred_date == local_now.date() and preferred_time <= local_now.time():
                errors["preferred_time"] = "past_time"
    return preferred_date, preferred_time


def requested_start(request: BookingRequest, form: FormSetup) -> datetime | None:
    """The preferred date and time as an instant (branch time zone), when both were given."""
    if request.preferred_date is None or request.preferred_time is None:
        return None
    branch = form.branch(request.branch_id)
    zone = ZoneInfo(branch.tz if branch else form.branches[0].tz if form.branches else "UTC")
    return datetime.combine(request.preferred_date, request.preferred_time, zone).astimezone(UTC)


def summary(request: BookingRequest, form: FormSetup) -> str:
    """The submission in words, for the staff inbox (the message text and the lead's requested text)."""
    branch = form.branch(request.branch_id)
    examination = form.examination(request.examination_id)
    when = ""
    if request.preferred_date is not None:
        when = request.preferred_date.isoformat()
        when += f" {request.preferred_time:%H:%M}" if request.preferred_time is not None else " (any time)"
    details = [
        ("Name", request.name),
        ("Phone", request.phone or ""),
        ("Email", request.email or ""),
        ("Branch", branch.name if branch else ""),
        ("Examination", examination.name if examination else ""),
        ("Preferred", when),
        ("Note", request.note),
    ]
    return "\n".join(["Booking form", *(f"{label}: {value}" for label, value in details if value)])


async def submit(
    db: Db,
    request: BookingRequest,
    *,
    form: FormSetup,
    submission_id: str,
    language: str | None = None,
    now: datetime | None = None,
    default_language: str = "en",
) -> Submitted:
    """Create the lead for a checked submission in the caller's transaction; a repeated ``submission_id`` is a no-op."""
    now = now or datetime.now(UTC)
    text = summary(request, form)
    received = await ingest.receive(
        db,
        InboundMessage(
            channel="webform",
            external_id=submission_id,
            # One identity per submission: each form is its own request (the phone still finds the patient).
            contact=ContactRef(
                channel="webform",
                external_id=submission_id,
                display_name=request.name,
                phone=request.phone,
                language_code=language,
            ),
            received_at=now,
            kind="text",
            text=text,
            raw={
                "form": {
                    "name": request.name,
                    "phone": request.phone,
                    "email": request.email,
                    "branch_id": request.branch_id,
                    "examination_id": request.examination_id,
                    "preferred_date": request.preferred_date.isoformat() if request.preferred_date else None,
                    "preferred_time": request.preferred_time.isoformat() if request.preferred_time else None,
                    "note": request.note,
                }
            },
        ),
        now=now,
        default_language=default_language,
    )
    if received.duplicate:
        return Submitted(lead_id=None, duplicate=True)
    await queries.mark_processed(db, received.message_id, now=now)
    if received.lead_id is not None:
        await queries.update_lead(
            db,
            received.lead_id,
            {
                "branch_id": request.branch_id,
                "examination_id": request.examination_id,
                "requested_start": requested_start(request, form),
                "requested_text": text,
                "contact_name": request.name,
                "contact_phone": request.phone,
                "updated_at": now,
            },
        )
    return Submitted(lead_id=received.lead_id, duplicate=False)
