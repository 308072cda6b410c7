"""The slot picker on a lead's page: staff choose branch, examination, doctor and day, and see the free times
(live availability), the lead's own held slot and, after a time was taken or on a day with none, the next free
times. :func:`picked_slot` reads the choice back from the convert form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.domain.actors import Actor
from booking_core.services import availability, catalog, leads, placement
from booking_core.services.errors import Invalid, NotFound, ServiceError
from gateway.inbox.formats import as_int
from gateway.inbox.lead_views import minutes_left, when, zone

MAX_SLOTS = 96  # free times shown for one day (a day of 15-minute steps for a few doctors)
ALTERNATIVES = 6  # next free times offered after a taken time, or when the day has none


@dataclass
class Picker:
    """The slot picker of the convert form: what is chosen, and the free times for it."""

    branches: list[catalog.BranchView]
    examinations: list[catalog.ExaminationView]
    doctors: list[catalog.DoctorView]
    branch_id: int | None
    examination_id: int | None
    doctor_id: int | None
    day: date
    tz: str
    options: list[dict[str, Any]]  # the day's free times
    alternatives: list[dict[str, Any]]  # next free times (after a taken slot, or when the day has none)
    held: dict[str, Any] | None  # the lead's live hold, preselected
    taken: str  # the time that was just taken, shown in the message
    problem: str  # why no times can be shown
    selected: str


async def slot_picker(db: Db, query: Mapping[str, str], actor: Actor, page: leads.LeadPage, now: datetime) -> Picker:
    """The picker for a lead: branch, examination and doctor as chosen in ``query``, else as the lead asked, else
    the first offered; the day asked, else the requested one, never before today."""
    picker = await _choices(db, query, actor, page, now)
    if picker.problem:
        return picker
    _preselect_hold(picker, page.hold, now)
    day_end = datetime.combine(picker.day, time(0), zone(picker.tz)) + timedelta(days=1)
    await _free_times(db, picker, page.lead, day_end, now)
    if picker.problem:
        return picker
    await _alternatives(db, picker, query.get("taken", ""), day_end, now)
    return picker


def picked_slot(form: Mapping[str, str], actor: Actor, now: datetime) -> tuple[datetime, int, int, int]:
    """(start, doctor, branch, examination) from the convert form; 422 for a form not sent from the picker."""
    raw = form.get("slot", "")
    start_raw, _, doctor_raw = raw.partition("|")
    branch_id, exam_id, doctor_id = as_int(form.get("branch")), as_int(form.get("exam")), as_int(doctor_raw)
    if not raw or doctor_id is None:
        raise Invalid("slot_required", "Choose a free time first.")
    if branch_id is None or exam_id is None:
        raise Invalid("examination_required", "Choose the branch and the examination.")
    try:
        start = datetime.fromisoformat(start_raw)
    except ValueError:
        raise Invalid("slot_required", "Choose a free time first.") from None
    if start.tzinfo is None or start.utcoffset() is None:
        raise Invalid("slot_required", "Choose a free time first.")
    if start < now - timedelta(minutes=5):
        raise Invalid("slot_in_the_past", "That time has passed; choose a later one.")
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    return start, doctor_id, branch_id, exam_id


def _slot_value(start: datetime, doctor_id: int) -> str:
    return f"{start.astimezone(UTC).isoformat()}|{doctor_id}"


def _option(start: datetime, doctor_id: int, doctor_name: str, tz: str, *, with_day: bool) -> dict[str, Any]:
    return {"value": _slot_value(start, doctor_id), "time": when(start, tz, with_day=with_day), "doctor": doctor_name}


async def _choices(db: Db, query: Mapping[str, str], actor: Actor, page: leads.LeadPage, now: datetime) -> Picker:
    """Branch, examination, doctor and day; ``problem`` says why there is nothing to pick from."""
    lead, hold = page.lead, page.hold
    branches = await catalog.list_branches(db, actor=actor)
    visible = {b.id: b for b in branches}
    wanted_branch = as_int(query.get("branch"))
    branch_id = next(
        (b for b in (wanted_branch, lead.branch_id, hold.branch_id if hold else None) if b in visible),
        branches[0].id if branches else None,
    )
    tz = visible[branch_id].tz if branch_id is not None else page.tz
    local = zone(tz)
    picker = Picker(branches, [], [], branch_id, None, None, now.astimezone(local).date(), tz, [], [], None, "", "", "")
    if branch_id is None:
        picker.problem = "No branch is open for booking."
        return picker
    picker.examinations = await catalog.list_examinations(db, actor=actor, branch_id=branch_id, active=True)
    offered = {e.id: e for e in picker.examinations}
    wanted_exam = as_int(query.get("exam"))
    exam_id = next(
        (e for e in (wanted_exam, lead.examination_id, hold.examination_id if hold else None) if e in offered),
        picker.examinations[0].id if picker.examinations else None,
    )
    picker.examination_id = exam_id
    if exam_id is None:
        picker.problem = "This branch offers no examinations yet."
        return picker
    performing = set(offered[exam_id].doctor_ids)
    picker.doctors = [d for d in await catalog.list_doctors(db, actor=actor, branch_id=branch_id) if d.id in performing]
    picker.doctor_id = (
        as_int(query.get("doctor"))
        if "doctor" in query
        else (lead.doctor_id if lead.examination_id == exam_id else None)
    )
    if picker.doctor_id not in {d.id for d in picker.doctors}:
        picker.doctor_id = None
    picker.day = _day(query.get("day"), lead.requested_start, now, local)
    return picker


def _day(asked_raw: str | None, requested_start: datetime | None, now: datetime, local: ZoneInfo) -> date:
    """The day asked for, else the day the lead requested if still ahead, else today (never a past day)."""
    today = now.astimezone(local).date()
    try:
        asked = date.fromisoformat(asked_raw) if asked_raw else None
    except ValueError:
        asked = None
    requested = requested_start.astimezone(local).date() if requested_start else None
    return max(asked or (requested if requested and requested >= today else today), today)


def _preselect_hold(picker: Picker, hold: leads.HoldInfo | None, now: datetime) -> None:
    """The lead's live hold for the chosen branch and examination comes first, chosen."""
    if hold is None or not hold.live or hold.branch_id != picker.branch_id:
        return
    if hold.examination_id != picker.examination_id:
        return
    picker.held = {
        "value": _slot_value(hold.starts_at, hold.doctor_id),
        "time": when(hold.starts_at, picker.tz),
        "doctor": hold.doctor_name or "",
        "minutes": minutes_left(hold.expires_at, now),
        "expires_iso": hold.expires_at.isoformat(),
    }
    picker.selected = picker.held["value"]


async def _free_times(db: Db, picker: Picker, lead: leads.LeadSummary, day_end: datetime, now: datetime) -> None:
    """The day's free times (from now on); the lead's requested time is chosen when it is among them."""
    assert picker.branch_id is not None and picker.examination_id is not None
    start = datetime.combine(picker.day, time(0), zone(picker.tz))
    try:
        ctx, slots = await availability.find_slots(
            db, branch_id=picker.branch_id, examination_id=picker.examination_id, start=max(start, now),
            end=day_end, doctor_id=picker.doctor_id, now=now,
        )  # fmt: skip
    except ServiceError as exc:
        picker.problem = exc.message
        return
    names = ctx.doctor_names
    options = [_option(s.start, s.doctor_id, names.get(s.doctor_id, ""), picker.tz, with_day=False) for s in slots]
    picker.options = options[:MAX_SLOTS]
    if not picker.selected and lead.requested_start is not None:
        wanted = lead.requested_start.astimezone(UTC).isoformat()
        picker.selected = next((o["value"] for o in picker.options if o["value"].startswith(wanted)), "")


async def _alternatives(db: Db, picker: Picker, taken: str, day_end: datetime, now: datetime) -> None:
    """The next free times after the one just taken (``taken``, from the convert form's redirect), or after the
    day when it has none."""
    assert picker.branch_id is not None and picker.examination_id is not None
    after: datetime | None = None
    if taken:
        try:
            after = datetime.fromisoformat(taken)
        except ValueError:
            after = None
        if after is not None and (after.tzinfo is None or after.utcoffset() is None):
            after = None
        picker.taken = when(after, picker.tz) if after else ""
    if after is None and not picker.options:
        after = day_end  # nothing that day: offer the next free times after it
    if after is None:
        return
    try:
        found = await placement.alternatives(
            db, branch_id=picker.branch_id, examination_id=picker.examination_id, after=after,
            doctor_id=picker.doctor_id, now=now, limit=ALTERNATIVES,
        )  # fmt: skip
    except ServiceError:
        found = []
    picker.alternatives = [
        _option(datetime.fromisoformat(str(a["start"])), int(str(a["doctor_id"])), str(a["doctor_name"]), picker.tz,
                with_day=True)
        for a in found
    ]  # fmt: skip
