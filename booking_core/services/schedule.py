"""Doctors' schedule applications: a doctor asks to attend a branch on a day; staff accept or reject.

An accepted application *is* attendance: the availability engine reads accepted applications as added attendance
on their day, so accepting writes nothing else. Deciding is one atomic ``UPDATE ... WHERE status = 'pending'``, so
of two staff deciding at once exactly one wins and the other is told it was already decided.

Who sees what: a doctor sees only their own applications; staff tied to a branch only that branch's; others all.
Anything else is "not found" (never "forbidden"), so ids of other doctors' or branches' applications reveal nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import schedule as queries
from booking_core.db.tables import ScheduleApplication
from booking_core.domain.actors import Actor
from booking_core.services import audit
from booking_core.services.errors import Conflict, Forbidden, Invalid, NotFound

__all__ = [
    "MAX_NOTE",
    "MAX_REASON",
    "ApplicationStatus",
    "ApplicationView",
    "accept",
    "apply",
    "get_application",
    "list_applications",
    "reject",
]

ApplicationStatus = Literal["pending", "accepted", "rejected"]
MAX_NOTE = 500
MAX_REASON = 500
DECIDERS = ("owner", "admin", "staff")


@dataclass(frozen=True)
class ApplicationView:
    """A schedule application as the inbox shows it (with the doctor's and branch's names)."""

    id: int
    doctor_id: int
    doctor_name: str
    branch_id: int
    branch_name: str
    day: date
    starts: time
    ends: time
    status: str
    note: str
    decision_reason: str | None
    decided_by: int | None
    decided_at: datetime | None
    created_at: datetime


def _view(row: queries.Row) -> ApplicationView:
    app, doctor_name, branch_name = row
    return ApplicationView(
        id=app.id,
        doctor_id=app.doctor_id,
        doctor_name=doctor_name,
        branch_id=app.branch_id,
        branch_name=branch_name,
        day=app.day,
        starts=app.starts,
        ends=app.ends,
        status=app.status,
        note=app.note,
        decision_reason=app.decision_reason,
        decided_by=app.decided_by,
        decided_at=app.decided_at,
        created_at=app.created_at,
    )


def _not_found() -> NotFound:
    return NotFound("not_found", "There is no such schedule application.")


def _may_see(actor: Actor, app: ScheduleApplication) -> bool:
    if actor.role == "doctor" and app.doctor_id != actor.doctor_id:
        return False
    return actor.can_see_branch(app.branch_id)


def _audit_data(app: ApplicationView) -> dict[str, object]:
    return {
        "doctor_id": app.doctor_id,
        "branch_id": app.branch_id,
        "day": app.day.isoformat(),
        "starts": app.starts.isoformat(),
        "ends": app.ends.isoformat(),
    }


# --- applying


async def apply(
    db: Db,
    *,
    actor: Actor,
    branch_id: int,
    day: date,
    starts: time,
    ends: time,
    note: str = "",
    doctor_id: int | None = None,
    today: date | None = None,
) -> ApplicationView:
    """File an application for a shift.

    A doctor applies for themself (``doctor_id`` omitted or their own); owner, admin and staff file on a doctor's
    behalf and must name the doctor. Refused: an unknown doctor or branch (404), times that do not run forwards or
    carry a UTC offset, a day already past in the branch's zone, a shift entirely outside the branch's opening
    hours (``outside_branch_hours``; partly outside is allowed), and a shift overlapping a pending or accepted
    application of the same doctor at the branch that day (409 ``duplicate_application``). ``today`` overrides
    the branch's current date (tests).
    """
    doctor_id = _applicant(actor, doctor_id)
    doctor = await queries.get_doctor(db, doctor_id)
    if doctor is None or not doctor.active:
        raise NotFound("not_found", "There is no such doctor.")
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")
    branch = await queries.get_branch(db, branch_id)
    if branch is None or not branch.active:
        raise NotFound("not_found", "There is no such branch.")
    if starts.tzinfo is not None or ends.tzinfo is not None:
        raise Invalid("invalid_times", "Shift times are the branch's wall time, without a UTC offset.")
    if not starts < ends:
        raise Invalid("invalid_times", "A shift starts before it ends.")
    today = today or datetime.now(ZoneInfo(branch.tz)).date()
    if day < today:
        raise Invalid("day_in_past", f"{day.isoformat()} has already passed at {branch.name}.")
    hours = await queries.branch_hours(db, branch_id, day.weekday())
    if not any(starts < closes and opens < ends for opens, closes in hours):
        raise Invalid(
            "outside_branch_hours",
            f"{branch.name} is closed then on {day.strftime('%A')}s; pick a shift within its opening hours.",
            details={"hours": [{"opens": o.isoformat(), "closes": c.isoformat()} for o, c in hours]},
        )
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise Invalid("invalid_note", f"A note is at most {MAX_NOTE} characters.")

    await queries.lock_doctor(db, doctor_id)
    clash = await queries.overlapping(
        db, doctor_id=doctor_id, branch_id=branch_id, day=day, starts=starts, ends=ends,
        statuses=("pending", "accepted"),
    )  # fmt: skip
    if clash is not None:
        what = "already attends" if clash.status == "accepted" else "already has a pending application"
        raise Conflict(
            "duplicate_application",
            f"{doctor.name} {what} at {branch.name} on {day.isoformat()} "
            f"{clash.starts.isoformat('minutes')}-{clash.ends.isoformat('minutes')}.",
            details={"application_id": clash.id, "status": clash.status},
        )
    application_id = await queries.insert_application(
        db, doctor_id=doctor_id, branch_id=branch_id, day=day, starts=starts, ends=ends, note=note, status="pending"
    )
    view = await _load(db, application_id)
    audit.record(db, actor, "schedule_application.applied", "schedule_application", application_id, _audit_data(view))
    return view


def _applicant(actor: Actor, doctor_id: int | None) -> int:
    if actor.role == "doctor":
        if actor.doctor_id is None:
            raise Forbidden("not_a_doctor", "Your sign-in is not linked to a doctor; ask an admin to link it.")
        if doctor_id is not None and doctor_id != actor.doctor_id:
            raise Forbidden("forbidden", "A doctor applies only for their own shifts.")
        return actor.doctor_id
    if doctor_id is None:
        raise Invalid("doctor_required", "Name the doctor this application is for.")
    return doctor_id


async def _load(db: Db, application_id: int) -> ApplicationView:
    row = await queries.get_application(db, application_id)
    if row is None:
        raise _not_found()
    return _view(row)


# --- reading


async def get_application(db: Db, application_id: int, *, actor: Actor) -> ApplicationView:
    row = await queries.get_application(db, application_id)
    if row is None or not _may_see(actor, row[0]):
        raise _not_found()
    return _view(row)


async def list_applications(
    db: Db,
    *,
    actor: Actor,
    status: ApplicationStatus | None = None,
    branch_id: int | None = None,
    doctor_id: int | None = None,
    day_from: date | None = None,
    limit: int = 200,
) -> list[ApplicationView]:
    """The inbox's "Doctor" view: applications by day and start, filtered, limited to what the actor may see."""
    if branch_id is not None and not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")
    if branch_id is None and actor.kind == "staff":
        branch_id = actor.branch_id
    if actor.role == "doctor":
        if actor.doctor_id is None or (doctor_id is not None and doctor_id != actor.doctor_id):
            return []
        doctor_id = actor.doctor_id
    rows = await queries.list_applications(
        db, status=status, branch_id=branch_id, doctor_id=doctor_id, day_from=day_from, limit=limit
    )
    return [_view(row) for row in rows]


# --- deciding


async def accept(db: Db, application_id: int, *, actor: Actor, now: datetime | None = None) -> ApplicationView:
    """Accept a pending application: from now on the doctor attends the branch for that shift."""
    return await _decide(db, application_id, "accepted", actor=actor, reason=None, now=now)


async def reject(
    db: Db, application_id: int, *, reason: str, actor: Actor, now: datetime | None = None
) -> ApplicationView:
    """Reject a pending application; the reason (1..500 characters) is shown to the doctor."""
    reason = reason.strip()
    if not 1 <= len(reason) <= MAX_REASON:
        raise Invalid("invalid_reason", f"Give a reason of 1 to {MAX_REASON} characters.")
    return await _decide(db, application_id, "rejected", actor=actor, reason=reason, now=now)


async def _decide(
    db: Db,
    application_id: int,
    status: Literal["accepted", "rejected"],
    *,
    actor: Actor,
    reason: str | None,
    now: datetime | None,
) -> ApplicationView:
    if actor.kind == "staff" and actor.role not in DECIDERS:
        raise Forbidden("forbidden", "Only clinic staff decide schedule applications.")
    row = await queries.get_application(db, application_id)
    if row is None or not _may_see(actor, row[0]):
        raise _not_found()
    decided = await queries.decide(
        db,
        application_id,
        status=status,
        decided_by=actor.id if actor.kind == "staff" else None,
        reason=reason,
        now=now or datetime.now(UTC),
    )
    view = await _load(db, application_id)
    if not decided:
        raise Conflict(
            "already_decided",
            f"This application was already {view.status}.",
            details={"status": view.status, "decided_at": view.decided_at.isoformat() if view.decided_at else None},
        )
    data = _audit_data(view)
    if reason is not None:
        data["reason"] = reason
    audit.record(db, actor, f"schedule_application.{status}", "schedule_application", application_id, data)
    return view
