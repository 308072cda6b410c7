"""Weekly hours: a branch's opening hours and its doctors' attendance there, with dated changes (a day off,
other hours one day).

Owners and admins change them; an admin tied to one branch only that branch's. A week is checked as a whole
(:func:`check_week`; :class:`~booking_core.services.settings.FieldErrors` per weekday), written in the caller's
transaction and audited with the old and new values; an unchanged week writes nothing. Availability reads them at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import settings as queries_s
from booking_core.db.tables import AttendanceOverride, Branch, Doctor
from booking_core.domain.actors import Actor
from booking_core.services import audit
from booking_core.services.errors import NotFound
from booking_core.services.settings import FieldErrors, require_manager

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


async def _branch(db: Db, branch_id: int, actor: Actor, *, lock: bool = False) -> Branch:
    """The branch an edit is about: 404 for an unknown one or one the actor does not manage (never say which)."""
    require_manager(actor)
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")
    branch = await (queries_s.lock_branch(db, branch_id) if lock else queries_s.get_branch(db, branch_id))
    if branch is None or not branch.active:
        raise NotFound("not_found", "There is no such branch.")
    return branch


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
    require_manager(actor)
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
    require_manager(actor)
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
