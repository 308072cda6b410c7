"""Clinic settings that staff edit (defaults live here; the database holds the current values).

Besides the clinic-wide values (booking form, reminder offsets, message texts, queue privacy) this is where a
branch's opening hours and its doctors' attendance are changed. Only owners and admins change settings; an admin
tied to one branch changes that branch's hours and attendance, not what applies to every branch. Every change is
validated as a whole (:class:`FieldErrors` names each field that is wrong, and nothing is written), is written in
the caller's transaction and leaves an audit row with the old and new values; an unchanged value writes nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import catalog as catalog_queries
from booking_core.db.queries import clinic as queries
from booking_core.db.queries import settings as queries_s
from booking_core.db.tables import AttendanceOverride, Branch, Doctor
from booking_core.domain import privacy
from booking_core.domain.actors import Actor
from booking_core.services import audit, messages
from booking_core.services.errors import Forbidden, Invalid, NotFound

DEFAULT_SETTINGS: dict[str, Any] = {
    "reminder_offsets_min": [24 * 60, 2 * 60],
    "cancel_reasons": [
        "patient_request",
        "no_show",
        "doctor_unavailable",
        "clinic_closed",
        "duplicate",
        "other",
    ],
    "hold_minutes": 10,
    "queue_sort": "arrival",
    # What the public queue tracker shows (booking_core/domain/privacy.py reads it).
    "queue_privacy": {"show_name": "masked", "show_doctor": True, "show_eta": True},
    "booking_form": {
        "fields": {
            "name": {"required": True},
            "phone": {"required": True},
            "email": {"required": False},
            "branch": {"required": True},
            "examination": {"required": True},
            "preferred_date": {"required": False},
            "preferred_time": {"required": False},
            "note": {"required": False},
        }
    },
    "loyalty": {"earn_per": "10000", "point_value": "100", "cap_pct": "20"},
    "dialog_books_directly": False,
    # Sites (besides PUBLIC_BASE_URL) whose pages may embed the chat widget, e.g. ["https://www.klinik-sehat.id"].
    "webchat_allowed_origins": [],
}


async def get(db: Db, key: str) -> Any:
    return await queries.get_setting(db, key, DEFAULT_SETTINGS.get(key))


# --- who may change settings ---------------------------------------------------------------------------------

MANAGERS = ("owner", "admin")


def _manager(actor: Actor) -> None:
    if actor.kind == "system":
        return
    if actor.kind != "staff" or actor.role not in MANAGERS:
        raise Forbidden("forbidden", "Only the owner or an admin may change the clinic's settings.")


def may_edit_clinic_wide(actor: Actor) -> bool:
    """Settings for every branch (booking form, reminders, messages, queue privacy): owners and admins of the
    whole clinic, not an admin tied to one branch."""
    return actor.kind == "system" or (actor.kind == "staff" and actor.role in MANAGERS and actor.branch_id is None)


def _clinic_wide(actor: Actor) -> None:
    _manager(actor)
    if not may_edit_clinic_wide(actor):
        raise Forbidden(
            "forbidden", "These settings apply to every branch: the owner or an admin of the whole clinic changes them."
        )


async def _branch(db: Db, branch_id: int, actor: Actor, *, lock: bool = False) -> Branch:
    """The branch an edit is about: 404 for an unknown one or one the actor does not manage (never say which)."""
    _manager(actor)
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")
    branch = await (queries_s.lock_branch(db, branch_id) if lock else queries_s.get_branch(db, branch_id))
    if branch is None or not branch.active:
        raise NotFound("not_found", "There is no such branch.")
    return branch


class FieldErrors(Invalid):
    """The input has problems in several places: ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        first = next(iter(self.errors.values()), "Some fields need attention.")
        super().__init__("invalid_fields", first, details=self.errors)


# --- weekly hours: branch opening hours and doctor attendance --------------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: Periods per day: a lunch break makes two.
MAX_PERIODS = 2


@dataclass(frozen=True, order=True)
class Period:
    """From ``starts`` to ``ends`` in the branch's wall time."""

    starts: time
    ends: time

    def __str__(self) -> str:
        return f"{self.starts:%H:%M}–{self.ends:%H:%M}"


#: Weekday (0 = Monday) → that day's periods, sorted; a day with none is closed / not attended.
Week = dict[int, tuple[Period, ...]]


def day_key(weekday: int) -> str:
    """The field name errors about one weekday are reported under."""
    return f"day-{weekday}"


def check_week(week: Mapping[int, Sequence[Period]]) -> Week:
    """A week as entered, checked: every period starts before it ends, a day's periods do not overlap, at most
    :data:`MAX_PERIODS` a day. Raises :class:`FieldErrors` (per weekday) or returns all seven days, sorted."""
    errors: dict[str, str] = {}
    checked: Week = {}
    for weekday in range(7):
        periods = sorted(week.get(weekday, ()))
        name = WEEKDAYS[weekday]
        problem = ""
        if len(periods) > MAX_PERIODS:
            problem = f"{name}: at most {MAX_PERIODS} periods a day."
        for period in periods:
            if period.starts.tzinfo is not None or period.ends.tzinfo is not None:
                problem = problem or f"{name}: times are the branch's wall time, without a UTC offset."
            elif not period.starts < period.ends:
                problem = problem or f"{name}: {period.starts:%H:%M} is not before {period.ends:%H:%M}."
        for earlier, later in itertools.pairwise(periods):
            if later.starts < earlier.ends:
                problem = problem or f"{name}: {earlier} and {later} overlap."
        if problem:
            errors[day_key(weekday)] = problem
        checked[weekday] = tuple(periods)
    unknown = sorted(set(week) - set(range(7)))
    if unknown:
        errors["week"] = f"There is no weekday {unknown[0]} (0 is Monday, 6 is Sunday)."
    if errors:
        raise FieldErrors(errors)
    return checked


def _week_of(rows: Iterable[queries_s.WeeklyRow]) -> Week:
    week: dict[int, list[Period]] = {d: [] for d in range(7)}
    for weekday, starts, ends in rows:
        week[weekday].append(Period(starts, ends))
    return {d: tuple(sorted(p)) for d, p in week.items()}


def _rows_of(week: Week) -> list[queries_s.WeeklyRow]:
    return [(d, p.starts, p.ends) for d, periods in sorted(week.items()) for p in periods]


def _week_json(week: Week) -> dict[str, list[str]]:
    return {WEEKDAYS[d][:3]: [str(p) for p in periods] for d, periods in sorted(week.items())}


@dataclass(frozen=True)
class BranchInfo:
    id: int
    name: str
    tz: str


def _info(branch: Branch) -> BranchInfo:
    return BranchInfo(branch.id, branch.name, branch.tz)


async def branch_hours(db: Db, branch_id: int, *, actor: Actor) -> Week:
    """The branch's weekly opening hours (all seven days; a closed day has no periods)."""
    await _branch(db, branch_id, actor)
    return _week_of(await queries_s.branch_hours(db, branch_id))


async def set_branch_hours(db: Db, branch_id: int, week: Mapping[int, Sequence[Period]], *, actor: Actor) -> bool:
    """Replace the branch's weekly opening hours (owner/admin; a branch's admin only theirs). Availability uses
    them at once. Returns whether anything changed (an unchanged week writes nothing, no audit row)."""
    checked = check_week(week)
    await _branch(db, branch_id, actor, lock=True)
    current = _week_of(await queries_s.branch_hours(db, branch_id))
    if current == checked:
        return False
    await queries_s.replace_branch_hours(db, branch_id, _rows_of(checked))
    audit.record(
        db, actor, "branch.hours_changed", "branch", branch_id,
        {"from": _week_json(current), "to": _week_json(checked)},
    )  # fmt: skip
    return True


@dataclass(frozen=True)
class DoctorInfo:
    id: int
    name: str
    specialty: str


@dataclass(frozen=True)
class DatedChange:
    """A dated attendance change: ``period`` None is a day off."""

    id: int
    doctor_id: int
    branch_id: int
    day: date
    period: Period | None
    note: str


@dataclass(frozen=True)
class Attendance:
    """A branch's doctors and when they attend: weekly pattern per doctor, dated changes from today on."""

    branch: BranchInfo
    today: date
    hours: Week
    doctors: tuple[DoctorInfo, ...]
    weekly: dict[int, Week]  # doctor id → week (doctors without any attendance here are absent)
    changes: tuple[DatedChange, ...]


async def active_doctors(db: Db, *, actor: Actor) -> list[DoctorInfo]:
    """Every active doctor (doctors are the clinic's; any branch may schedule them)."""
    _manager(actor)
    return [DoctorInfo(d.id, d.name, d.specialty) for d in await queries_s.active_doctors(db)]


def _today(branch: Branch, now: datetime | None) -> date:
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(branch.tz)).date()


async def attendance(db: Db, branch_id: int, *, actor: Actor, now: datetime | None = None) -> Attendance:
    """Everything the attendance page shows for one branch."""
    branch = await _branch(db, branch_id, actor)
    today = _today(branch, now)
    doctors = await queries_s.active_doctors(db)
    rows: dict[int, list[queries_s.WeeklyRow]] = {}
    for doctor_id, row in await queries_s.attendance(db, branch_id):
        rows.setdefault(doctor_id, []).append(row)
    changes = await queries_s.overrides(db, branch_id, from_day=today)
    return Attendance(
        branch=_info(branch),
        today=today,
        hours=_week_of(await queries_s.branch_hours(db, branch_id)),
        doctors=tuple(DoctorInfo(d.id, d.name, d.specialty) for d in doctors),
        weekly={doctor_id: _week_of(r) for doctor_id, r in rows.items()},
        changes=tuple(_change(o) for o in changes),
    )


def _change(row: AttendanceOverride) -> DatedChange:
    period = Period(row.starts, row.ends) if row.starts is not None and row.ends is not None else None
    return DatedChange(row.id, row.doctor_id, row.branch_id, row.day, period, row.note)


async def _doctor(db: Db, doctor_id: int) -> Doctor:
    doctor = await queries_s.get_doctor(db, doctor_id)
    if doctor is None or not doctor.active:
        raise NotFound("not_found", "There is no such doctor.")
    return doctor


async def set_attendance(
    db: Db, doctor_id: int, branch_id: int, week: Mapping[int, Sequence[Period]], *, actor: Actor
) -> bool:
    """Replace a doctor's weekly attendance at a branch. Returns whether anything changed."""
    checked = check_week(week)
    await _branch(db, branch_id, actor, lock=True)
    doctor = await _doctor(db, doctor_id)
    current = _week_of(row for _, row in await queries_s.attendance(db, branch_id, doctor_id))
    if current == checked:
        return False
    await queries_s.replace_attendance(db, doctor_id, branch_id, _rows_of(checked))
    audit.record(
        db, actor, "attendance.changed", "doctor", doctor_id,
        {"branch_id": branch_id, "doctor": doctor.name, "from": _week_json(current), "to": _week_json(checked)},
    )  # fmt: skip
    return True


MAX_NOTE = 200


async def add_dated_change(
    db: Db,
    *,
    doctor_id: int,
    branch_id: int,
    day: date,
    period: Period | None,
    note: str = "",
    actor: Actor,
    now: datetime | None = None,
) -> int:
    """A dated change of a doctor's attendance: a day off (``period`` None) or other hours that day (several
    periods on one day add up). Refused: a day in the past, a period that ends before it starts or overlaps one
    already there, a day off where hours are set (or hours on a day off): remove the other first."""
    errors: dict[str, str] = {}
    note = " ".join(note.split())
    if len(note) > MAX_NOTE:
        errors["note"] = f"A note has at most {MAX_NOTE} characters."
    if period is not None and not period.starts < period.ends:
        errors["starts"] = f"{period.starts:%H:%M} is not before {period.ends:%H:%M}."
    branch = await _branch(db, branch_id, actor, lock=True)
    doctor = await _doctor(db, doctor_id)
    if day < _today(branch, now):
        errors["day"] = "That day is in the past."
    if errors:
        raise FieldErrors(errors)
    same_day = [
        _change(o) for o in await queries_s.overrides(db, branch_id, from_day=day, doctor_id=doctor_id, day=day)
    ]
    if period is None and same_day:
        what = "a day off" if any(c.period is None for c in same_day) else "other hours"
        raise FieldErrors({"day": f"{doctor.name} already has {what} on {day:%-d %b %Y}; remove it first."})
    if period is not None:
        if any(c.period is None for c in same_day):
            raise FieldErrors({"day": f"{doctor.name} has a day off on {day:%-d %b %Y}; remove it first."})
        clash = next((c.period for c in same_day if c.period and _overlap(c.period, period)), None)
        if clash is not None:
            raise FieldErrors({"starts": f"{period} overlaps {clash}, already set for that day."})
    new_id = await queries_s.insert_override(
        db, doctor_id=doctor_id, branch_id=branch_id, day=day,
        starts=period.starts if period else None, ends=period.ends if period else None, note=note,
    )  # fmt: skip
    audit.record(
        db, actor, "attendance.override_added", "doctor", doctor_id,
        {"branch_id": branch_id, "doctor": doctor.name, "day": day.isoformat(),
         "hours": str(period) if period else "day off", "note": note},
    )  # fmt: skip
    return new_id


def _overlap(one: Period, other: Period) -> bool:
    return one.starts < other.ends and other.starts < one.ends


async def remove_dated_change(db: Db, change_id: int, *, actor: Actor) -> DatedChange:
    """Remove a dated change (the weekly pattern applies that day again)."""
    _manager(actor)
    row = await queries_s.get_override(db, change_id)
    if row is None or not actor.can_see_branch(row.branch_id):
        raise NotFound("not_found", "There is no such change.")
    await _branch(db, row.branch_id, actor, lock=True)
    change = _change(row)
    await queries_s.delete_override(db, change_id)
    audit.record(
        db, actor, "attendance.override_removed", "doctor", row.doctor_id,
        {"branch_id": row.branch_id, "day": change.day.isoformat(),
         "hours": str(change.period) if change.period else "day off", "note": change.note},
    )  # fmt: skip
    return change


# --- the public booking form ---------------------------------------------------------------------------------

FORM_SETTING = "booking_form"
FIELD_MODES = ("required", "optional", "hidden")
FORM_FIELD_LABELS = {
    "name": "Name",
    "phone": "Phone number",
    "email": "Email",
    "branch": "Branch",
    "examination": "Examination",
    "preferred_date": "Preferred date",
    "preferred_time": "Preferred time",
    "note": "Note",
}


@dataclass(frozen=True)
class BookingFormSetup:
    """How the public form asks: each field required, optional or hidden; which branches and examinations it
    offers (None: every active one)."""

    modes: dict[str, str]
    branch_ids: tuple[int, ...] | None = None
    examination_ids: tuple[int, ...] | None = None


def booking_form_setup(value: Any) -> BookingFormSetup:
    """The ``booking_form`` setting read leniently (what the public form does with it)."""
    value = value if isinstance(value, Mapping) else DEFAULT_SETTINGS[FORM_SETTING]
    fields = value.get("fields")
    fields = fields if isinstance(fields, Mapping) else DEFAULT_SETTINGS[FORM_SETTING]["fields"]
    modes = {}
    for name in FORM_FIELD_LABELS:
        options = fields.get(name)
        if options is None or (isinstance(options, Mapping) and options.get("enabled", True) is False):
            modes[name] = "hidden"
        else:
            required = isinstance(options, Mapping) and bool(options.get("required", False))
            modes[name] = "required" if required else "optional"
    return BookingFormSetup(modes, _ids(value.get("branch_ids")), _ids(value.get("examination_ids")))


def _ids(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(sorted({v for v in value if isinstance(v, int) and not isinstance(v, bool)}))


async def booking_form(db: Db) -> BookingFormSetup:
    return booking_form_setup(await get(db, FORM_SETTING))


async def set_booking_form(
    db: Db,
    modes: Mapping[str, str],
    *,
    branch_ids: Sequence[int] | None,
    examination_ids: Sequence[int] | None,
    actor: Actor,
) -> bool:
    """Change the public booking form (clinic-wide). Staff must be able to answer: the phone number or the email
    is required. A preferred time needs the preferred date; a shown branch or examination field offers at least
    one choice. Returns whether anything changed."""
    _clinic_wide(actor)
    errors: dict[str, str] = {}
    checked = {}
    for name, label in FORM_FIELD_LABELS.items():
        mode = modes.get(name, "hidden")
        if mode not in FIELD_MODES:
            errors[name] = f"{label}: choose required, optional or hidden."
        checked[name] = mode
    if "phone" not in errors and "email" not in errors and "required" not in (checked["phone"], checked["email"]):
        errors["phone"] = "Require the phone number or the email, so the clinic can answer the patient."
    if checked["preferred_time"] != "hidden" and checked["preferred_date"] == "hidden":
        errors["preferred_time"] = "A preferred time needs the preferred date: show the date too, or hide the time."
    branches = {b.id: b for b in await catalog_queries.list_branches(db)}
    examinations = {e.id: e for e in await catalog_queries.list_examinations(db, active=True)}
    chosen_branches = None if branch_ids is None else tuple(sorted(set(branch_ids)))
    chosen_exams = None if examination_ids is None else tuple(sorted(set(examination_ids)))
    if chosen_branches is not None and set(chosen_branches) - set(branches):
        errors["branch_ids"] = "One of the branches is not an active branch."
    elif checked["branch"] != "hidden" and chosen_branches == ():
        errors["branch_ids"] = "Offer at least one branch, or hide the branch field."
    if chosen_exams is not None and set(chosen_exams) - set(examinations):
        errors["examination_ids"] = "One of the examinations is not an active examination."
    elif checked["examination"] != "hidden" and chosen_exams == ():
        errors["examination_ids"] = "Offer at least one examination, or hide the examination field."
    if errors:
        raise FieldErrors(errors)
    stored = await queries_s.lock_setting(db, FORM_SETTING, DEFAULT_SETTINGS[FORM_SETTING])
    before = booking_form_setup(stored)
    after = BookingFormSetup(checked, chosen_branches, chosen_exams)
    if before == after:
        return False
    value = dict(stored) if isinstance(stored, Mapping) else {}
    value["fields"] = {
        name: {"required": mode == "required", "enabled": mode != "hidden"} for name, mode in checked.items()
    }
    value["branch_ids"] = None if chosen_branches is None else list(chosen_branches)
    value["examination_ids"] = None if chosen_exams is None else list(chosen_exams)
    await queries.put_setting(db, FORM_SETTING, value)
    audit.record(
        db, actor, "settings.booking_form_changed", "clinic_setting", None,
        {"from": _form_json(before), "to": _form_json(after)},
    )  # fmt: skip
    return True


def _form_json(setup: BookingFormSetup) -> dict[str, Any]:
    return {
        "fields": dict(setup.modes),
        "branch_ids": None if setup.branch_ids is None else list(setup.branch_ids),
        "examination_ids": None if setup.examination_ids is None else list(setup.examination_ids),
    }


# --- reminders -------------------------------------------------------------------------------------------------

REMINDERS_SETTING = "reminder_offsets_min"
MIN_REMINDER_MIN = 10
MAX_REMINDER_MIN = 14 * 24 * 60
MAX_REMINDERS = 4


async def reminder_offsets(db: Db) -> list[int]:
    """The configured offsets in minutes before a visit, largest first (what the reminder service uses)."""
    value = await get(db, REMINDERS_SETTING)
    found = (
        {int(v) for v in value if isinstance(v, int) and not isinstance(v, bool)} if isinstance(value, list) else set()
    )
    return sorted((v for v in found if v > 0), reverse=True)


async def set_reminder_offsets(db: Db, offsets_min: Sequence[int], *, actor: Actor) -> bool:
    """Change when reminders go out (minutes before the visit; none at all is allowed). Visits booked or moved
    from now on get them; visits already booked keep the reminders planned for them. Returns whether changed."""
    _clinic_wide(actor)
    errors: dict[str, str] = {}
    for index, offset in enumerate(offsets_min):
        if not MIN_REMINDER_MIN <= offset <= MAX_REMINDER_MIN:
            errors[f"offset-{index}"] = "A reminder goes out between 10 minutes and 14 days before the visit."
    if len(set(offsets_min)) != len(offsets_min):
        errors["offsets"] = "Two reminders are set for the same time."
    if len(offsets_min) > MAX_REMINDERS:
        errors["offsets"] = f"At most {MAX_REMINDERS} reminders per visit."
    if errors:
        raise FieldErrors(errors)
    stored = await queries_s.lock_setting(db, REMINDERS_SETTING, DEFAULT_SETTINGS[REMINDERS_SETTING])
    before = sorted((v for v in stored if isinstance(v, int)), reverse=True) if isinstance(stored, list) else []
    after = sorted(offsets_min, reverse=True)
    if before == after:
        return False
    await queries.put_setting(db, REMINDERS_SETTING, after)
    audit.record(db, actor, "settings.reminders_changed", "clinic_setting", None, {"from": before, "to": after})
    return True


# --- the public queue tracker ----------------------------------------------------------------------------------

QUEUE_PRIVACY_SETTING = "queue_privacy"
#: How the public queue tracker may show a patient's name (the modes of booking_core/domain/privacy.py).
QUEUE_NAME_MODES = {
    "hidden": "Not at all (number only)",
    "initial": "First initial only",
    "masked": "Masked",
    "first_name": "First name",
}


async def queue_privacy(db: Db) -> privacy.QueuePrivacy:
    """What the public queue tracker shows (read as the tracker reads it)."""
    return privacy.queue_privacy(await get(db, QUEUE_PRIVACY_SETTING))


async def set_queue_privacy(db: Db, chosen: privacy.QueuePrivacy, *, actor: Actor) -> bool:
    """Change what the public queue tracker shows (clinic-wide). Returns whether anything changed."""
    _clinic_wide(actor)
    if chosen.show_name not in privacy.NAME_MODES:
        raise FieldErrors({"show_name": "Choose how names are shown."})
    stored = await queries_s.lock_setting(db, QUEUE_PRIVACY_SETTING, DEFAULT_SETTINGS[QUEUE_PRIVACY_SETTING])
    before = privacy.queue_privacy(stored)
    if before == chosen:
        return False
    value = {**(stored if isinstance(stored, Mapping) else {}), **dataclasses.asdict(chosen)}
    await queries.put_setting(db, QUEUE_PRIVACY_SETTING, value)
    audit.record(
        db, actor, "settings.queue_privacy_changed", "clinic_setting", None,
        {"from": dataclasses.asdict(before), "to": dataclasses.asdict(chosen)},
    )  # fmt: skip
    return True


# --- message texts -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageText:
    """One message in one language: the standard text, the clinic's own (if any) and the values it may use."""

    lang: str
    name: str
    default: str
    override: str | None
    variables: tuple[str, ...]

    @property
    def text(self) -> str:
        """What the clinic sends today."""
        return self.override if self.override is not None else self.default


def _stored_overrides(value: Any) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for lang, names in value.items() if isinstance(value, Mapping) else ():
        if isinstance(names, Mapping):
            found[lang] = {n: t for n, t in names.items() if isinstance(t, str)}
    return found


async def message_texts(db: Db, lang: str, *, actor: Actor) -> list[MessageText]:
    """Every message of a language the clinic may rewrite, with its own text where it has one."""
    _manager(actor)
    if lang not in messages.overridable():
        raise NotFound("not_found", "There is no such language.")
    stored = _stored_overrides(await get(db, messages.OVERRIDES_SETTING)).get(lang, {})
    return [
        MessageText(lang, name, messages.default_text(lang, name), stored.get(name), messages.variables(lang, name))
        for name in messages.overridable()[lang]
    ]


async def message_text(db: Db, lang: str, name: str, *, actor: Actor) -> MessageText:
    _manager(actor)
    default = messages.default_text(lang, name)  # NotFound for an unknown message
    stored = _stored_overrides(await get(db, messages.OVERRIDES_SETTING)).get(lang, {})
    return MessageText(lang, name, default, stored.get(name), messages.variables(lang, name))


async def save_message_text(db: Db, lang: str, name: str, text: str, *, actor: Actor) -> bool:
    """Use the clinic's own text for a message (clinic-wide). It must compile, use only the message's values and
    render with sample values (:func:`messages.check_override`), else nothing is saved. Every process uses it
    within :data:`messages.OVERRIDES_TTL` seconds; the caller calls :func:`messages.forget_overrides` after commit
    so this one does at once. Saving the standard text itself removes the override. Returns whether changed."""
    _clinic_wide(actor)
    checked = messages.check_override(lang, name, text)
    default = messages.default_text(lang, name)
    stored = _stored_overrides(await queries_s.lock_setting(db, messages.OVERRIDES_SETTING, {}))
    before = stored.get(lang, {}).get(name)
    after = None if checked == default.strip() else checked
    if before == after:
        return False
    if after is None:
        stored.get(lang, {}).pop(name, None)
    else:
        stored.setdefault(lang, {})[name] = after
    await _save_overrides(db, stored, "settings.message_changed", lang, name, before, after, actor=actor)
    return True


async def reset_message_text(db: Db, lang: str, name: str, *, actor: Actor) -> bool:
    """Go back to the standard text of a message. Returns whether the clinic had its own."""
    _clinic_wide(actor)
    messages.default_text(lang, name)  # NotFound for an unknown message
    stored = _stored_overrides(await queries_s.lock_setting(db, messages.OVERRIDES_SETTING, {}))
    before = stored.get(lang, {}).pop(name, None)
    if before is None:
        return False
    await _save_overrides(db, stored, "settings.message_reset", lang, name, before, None, actor=actor)
    return True


async def _save_overrides(
    db: Db,
    stored: dict[str, dict[str, str]],
    action: str,
    lang: str,
    name: str,
    before: str | None,
    after: str | None,
    *,
    actor: Actor,
) -> None:
    """Store the clinic's own texts (languages left without any dropped) and audit the one that changed."""
    await queries.put_setting(db, messages.OVERRIDES_SETTING, {k: v for k, v in stored.items() if v})
    audit.record(
        db, actor, action, "clinic_setting", None, {"lang": lang, "message": name, "from": before, "to": after}
    )
