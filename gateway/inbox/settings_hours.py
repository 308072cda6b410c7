"""Settings: a branch's opening hours and its doctors' attendance (weekly days and dated changes).

Owners and admins; an admin tied to a branch sees and changes only that branch (another branch's id is a 404).
A form with mistakes comes back with each one marked next to its field, and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from aiohttp import web

from booking_core.db.engine import Db
from booking_core.domain.actors import Actor
from booking_core.services import hours as service
from booking_core.services.errors import NotFound
from booking_core.services.settings import FieldErrors
from gateway.inbox.formats import as_int
from gateway.inbox.settings_common import (
    UI_PERIODS,
    branch_choice,
    parse_time,
    settings_page,
    week_from_form,
    week_summary,
    week_values,
)
from gateway.inbox.web import MANAGERS, back, form_of, staff_page
from gateway.keys import SESSIONMAKER

HOURS = "/inbox/settings/hours"
ATTENDANCE = "/inbox/settings/attendance"


Week = dict[int, list[service.Period]]


async def _save_week(
    request: web.Request, form: dict[str, str], save: Callable[[Db, Week], Awaitable[bool]]
) -> tuple[bool, dict[str, str]]:
    """Read the week form and ``save`` it unless a field is wrong: (whether anything changed, the field errors)."""
    week, errors = week_from_form(form)
    if errors:
        return False, errors
    try:
        async with request.app[SESSIONMAKER]() as db, db.begin():
            return await save(db, week), {}
    except FieldErrors as exc:
        return False, exc.errors


# --- branch hours


async def _hours_page(
    request: web.Request,
    actor: Actor,
    branch_raw: str | None,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> web.StreamResponse:
    async with request.app[SESSIONMAKER]() as db:
        branches, branch_id = await branch_choice(db, actor, branch_raw)
        week = await service.branch_hours(db, branch_id, actor=actor) if branch_id else {}
    context = {
        "branches": branches,
        "branch": next((b for b in branches if b.id == branch_id), None),
        "values": week_values(week) if values is None else values,
        "weekdays": service.WEEKDAYS,
        "periods": UI_PERIODS,
    }
    return settings_page(request, actor, "inbox/settings_hours.html", context, title="Branch hours", errors=errors)


@staff_page(MANAGERS)
async def hours(request: web.Request, actor: Actor) -> web.StreamResponse:
    return await _hours_page(request, actor, request.query.get("branch"))


@staff_page(MANAGERS, refused_to=HOURS)
async def save_hours(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await form_of(request)
    branch_id = as_int(form.get("branch"))
    if branch_id is None:
        raise NotFound("not_found", "There is no such branch.")
    changed, errors = await _save_week(
        request, form, lambda db, week: service.set_branch_hours(db, branch_id, week, actor=actor)
    )
    if errors:
        return await _hours_page(request, actor, str(branch_id), values=form, errors=errors)
    notice = "Opening hours saved; availability uses them from now on." if changed else "Nothing changed."
    return back(request, f"{HOURS}?branch={branch_id}", notice=notice)


# --- doctor attendance


async def _attendance_page(
    request: web.Request,
    actor: Actor,
    branch_raw: str | None,
    doctor_raw: str | None,
    *,
    values: dict[str, str] | None = None,
    change: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> web.StreamResponse:
    async with request.app[SESSIONMAKER]() as db:
        branches, branch_id = await branch_choice(db, actor, branch_raw)
        view = await service.attendance(db, branch_id, actor=actor) if branch_id else None
    context: dict[str, Any] = {
        "branches": branches,
        "view": view,
        "weekdays": service.WEEKDAYS,
        "periods": UI_PERIODS,
        "change": change or {},
        "change_form": change is not None,
        "editing": None,
    }
    if view is not None:
        doctors = {d.id: d for d in view.doctors}
        editing = doctors.get(as_int(doctor_raw) or 0)
        if doctor_raw and editing is None:
            raise NotFound("not_found", "There is no such doctor.")
        empty = {d: () for d in range(7)}
        context.update(
            attending=[d for d in view.doctors if d.id in view.weekly],
            others=[d for d in view.doctors if d.id not in view.weekly],
            summaries={i: {d: week_summary(p) for d, p in week.items()} for i, week in view.weekly.items()},
            doctor_names={d.id: d.name for d in view.doctors},
            editing=editing,
            hour_hints={d: f"branch open {week_summary(p)}" if p else "branch closed" for d, p in view.hours.items()},
        )
        if editing is not None:
            stored = week_values(view.weekly.get(editing.id, empty))
            context["values"] = stored if values is None else values
    return settings_page(
        request, actor, "inbox/settings_attendance.html", context, title="Doctor attendance",
        errors=errors,
    )  # fmt: skip


@staff_page(MANAGERS)
async def attendance(request: web.Request, actor: Actor) -> web.StreamResponse:
    return await _attendance_page(request, actor, request.query.get("branch"), request.query.get("doctor"))


@staff_page(MANAGERS, refused_to=ATTENDANCE)
async def save_attendance(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await form_of(request)
    branch_id, doctor_id = as_int(form.get("branch")), as_int(form.get("doctor"))
    if branch_id is None or doctor_id is None:
        raise NotFound("not_found", "There is no such doctor or branch.")
    changed, errors = await _save_week(
        request, form, lambda db, week: service.set_attendance(db, doctor_id, branch_id, week, actor=actor)
    )
    if errors:
        return await _attendance_page(request, actor, str(branch_id), str(doctor_id), values=form, errors=errors)
    notice = "Attendance saved; availability uses it from now on." if changed else "Nothing changed."
    return back(request, f"{ATTENDANCE}?branch={branch_id}", notice=notice)


@staff_page(MANAGERS, refused_to=ATTENDANCE)
async def add_change(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await form_of(request)
    branch_id, doctor_id = as_int(form.get("branch")), as_int(form.get("doctor"))
    if branch_id is None or doctor_id is None:
        raise NotFound("not_found", "There is no such doctor or branch.")
    errors: dict[str, str] = {}
    day = None
    try:
        day = date.fromisoformat(form.get("day", "").strip())
    except ValueError:
        errors["day"] = "Choose the date of the change."
    period = None
    if form.get("kind") == "hours":
        starts, ends = parse_time(form.get("starts", "")), parse_time(form.get("ends", ""))
        if starts is None or ends is None:
            errors["starts"] = "Enter both times, like 09:00 and 13:00, or choose Day off."
        else:
            period = service.Period(starts, ends)
    if day is not None and not errors:
        try:
            async with request.app[SESSIONMAKER]() as db, db.begin():
                await service.add_dated_change(
                    db, doctor_id=doctor_id, branch_id=branch_id, day=day, period=period,
                    note=form.get("note", ""), actor=actor,
                )  # fmt: skip
        except FieldErrors as exc:
            errors = exc.errors
    if errors:
        return await _attendance_page(request, actor, str(branch_id), None, change=form, errors=errors)
    return back(request, f"{ATTENDANCE}?branch={branch_id}#changes-title", notice="Dated change added.")


@staff_page(MANAGERS, refused_to=ATTENDANCE)
async def remove_change(request: web.Request, actor: Actor) -> web.StreamResponse:
    change_id = int(request.match_info["change_id"])
    async with request.app[SESSIONMAKER]() as db, db.begin():
        removed = await service.remove_dated_change(db, change_id, actor=actor)
    notice = f"The change on {removed.day:%-d %b %Y} was removed; the weekly days apply again."
    return back(request, f"{ATTENDANCE}?branch={removed.branch_id}#changes-title", notice=notice)


def setup(app: web.Application) -> None:
    app.router.add_get(HOURS, hours)
    app.router.add_post(HOURS, save_hours)
    app.router.add_get(ATTENDANCE, attendance)
    app.router.add_post(ATTENDANCE, save_attendance)
    app.router.add_post(f"{ATTENDANCE}/changes", add_change)
    app.router.add_post(ATTENDANCE + r"/changes/{change_id:\d{1,9}}/remove", remove_change)
