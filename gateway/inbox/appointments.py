"""Appointments (``/inbox/appointments``): visits patients booked that nobody accepted yet, newest first, with
accept / reject; the magenta "Doctor" switch shows doctors' schedule applications to accept or reject instead.

The list is a live region: a new booking from the chat or the form, or a new application, appears by itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from booking_core.domain.actors import Actor
from booking_core.services import appointments, catalog, lifecycle, schedule
from gateway.api.common import follow_up, patient_facing, transaction
from gateway.inbox.formats import as_int, hhmm, route_id, when
from gateway.inbox.session_page import REASON_LABELS
from gateway.inbox.web import ALL, DESK, back, form_of, render, staff_page
from gateway.keys import SESSIONMAKER, SETTINGS

#: Reasons a front desk turns a booking down with; "no_show" makes no sense before the visit.
REJECT_REASONS_FIRST = ("doctor_unavailable", "clinic_closed", "duplicate", "patient_request", "other")


def _ago(then: datetime, now: datetime) -> str:
    minutes = max(0, int((now - then).total_seconds() // 60))
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // (24 * 60)} days ago"


@staff_page(ALL)
async def show(request: web.Request, actor: Actor) -> web.StreamResponse:
    view = "doctors" if request.query.get("view") == "doctors" else "patients"
    branch_id = as_int(request.query.get("branch"))
    now = datetime.now(UTC)
    context: dict[str, Any] = {"view": view, "can_decide": actor.role in DESK, "branch_id": branch_id}
    async with request.app[SESSIONMAKER]() as db:
        branches = await catalog.list_branches(db, actor=actor)
        context["branches"] = branches
        if view == "patients":
            found = await appointments.new_appointments(db, actor=actor, branch_id=branch_id, now=now)
            reasons = (await lifecycle.cancel_reasons(db)).reasons
            ordered = [r for r in REJECT_REASONS_FIRST if r in reasons] + [
                r for r in reasons if r not in REJECT_REASONS_FIRST and r != "no_show"
            ]
            context["reasons"] = [(r, REASON_LABELS.get(r, r.replace("_", " ").capitalize())) for r in ordered]
            context["appointments"] = [
                {"id": a.id, "code": a.booking_code, "patient": a.patient_name, "phone": a.patient_phone or "",
                 "doctor": a.doctor_name, "room": a.room_name, "branch": a.branch_name,
                 "examinations": ", ".join(a.examinations), "when": when(a.starts_at, a.branch_tz),
                 "until": hhmm(a.ends_at, a.branch_tz), "booked": _ago(a.created_at, now),
                 "source": "chat or web" if a.from_lead else "front desk"}
                for a in found
            ]  # fmt: skip
        else:
            pending = await schedule.list_applications(db, actor=actor, status="pending", branch_id=branch_id)
            context["applications"] = [
                {"id": a.id, "doctor": a.doctor_name, "branch": a.branch_name,
                 "day": f"{a.day:%a} {a.day.day} {a.day:%b %Y}",
                 "hours": f"{a.starts.strftime('%H:%M')}–{a.ends.strftime('%H:%M')}", "note": a.note,
                 "applied": _ago(a.created_at, now)}
                for a in pending
            ]  # fmt: skip
    return render(request, actor, "inbox/appointments.html", context, title="Appointments")


@staff_page(DESK, refused_to="/inbox/appointments")
async def accept_appointment(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = route_id(request, "session_id")
    async with transaction(request) as db:
        done = await appointments.accept(
            db, session_id, actor=actor, default_language=request.app[SETTINGS].DEFAULT_LANGUAGE
        )
        code = done.session.booking_code
    notice = (
        f"Accepted {code}; the patient is sent their check-in QR." if done.changed else f"{code} was already accepted."
    )
    return back(request, "/inbox/appointments", notice=notice)


@staff_page(DESK, refused_to="/inbox/appointments")
async def reject_appointment(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = route_id(request, "session_id")
    form = await form_of(request)
    async with transaction(request) as db:
        rejected = await appointments.reject(
            db, session_id, actor=actor, reason_code=form.get("reason") or None, note=form.get("note") or None,
            **patient_facing(request),
        )  # fmt: skip
        session = await follow_up(request, db, rejected)
        code = session.booking_code
    return back(request, "/inbox/appointments", notice=f"Rejected {code}; its time is free again.")


@staff_page(ALL, refused_to="/inbox/appointments?view=doctors")
async def accept_application(request: web.Request, actor: Actor) -> web.StreamResponse:
    application_id = route_id(request, "application_id")
    async with transaction(request) as db:
        found = await schedule.accept(db, application_id, actor=actor)
    notice = (
        f"Accepted: {found.doctor_name} attends {found.branch_name} on {found.day:%a} {found.day.day} {found.day:%b}."
    )
    return back(request, "/inbox/appointments?view=doctors", notice=notice)


@staff_page(ALL, refused_to="/inbox/appointments?view=doctors")
async def reject_application(request: web.Request, actor: Actor) -> web.StreamResponse:
    application_id = route_id(request, "application_id")
    form = await form_of(request)
    async with transaction(request) as db:
        found = await schedule.reject(db, application_id, reason=form.get("reason", ""), actor=actor)
    return back(request, "/inbox/appointments?view=doctors", notice=f"Rejected the application of {found.doctor_name}.")


def setup(app: web.Application) -> None:
    app.router.add_get("/inbox/appointments", show)
    app.router.add_post(r"/inbox/appointments/{session_id:\d+}/accept", accept_appointment)
    app.router.add_post(r"/inbox/appointments/{session_id:\d+}/reject", reject_appointment)
    app.router.add_post(r"/inbox/appointments/applications/{application_id:\d+}/accept", accept_application)
    app.router.add_post(r"/inbox/appointments/applications/{application_id:\d+}/reject", reject_application)
