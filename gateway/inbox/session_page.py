"""The session page (``/inbox/sessions/{id}``): one visit, its examination lines and invoice, its lifecycle.

Lines are added, re-counted and removed through the invoicing service (forms that post here; the page's script
sends them without a reload and previews the invoice through ``POST /api/v1/invoices/preview`` while staff
choose). Only the lifecycle changes the transition table allows from the current status are offered; the owner
alone may delete a visit for good, by typing ``DELETE <booking code>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from booking_core.db.engine import Db
from booking_core.domain.actors import Actor
from booking_core.domain.archive import confirmation_phrase
from booking_core.domain.lifecycle import ACTIVE_STATUSES, SessionStatus, can_transition
from booking_core.domain.money import money_str
from booking_core.services import (
    appointments,
    catalog,
    invoicing,
    lifecycle,
    queue,
    queue_actions,
    session_deletion,
    session_lines,
)
from booking_core.services.errors import Invalid
from booking_core.services.lifecycle import SessionChange
from gateway.api.common import follow_up, patient_facing, transaction
from gateway.inbox.calendar import calendar_url
from gateway.inbox.formats import as_int, hhmm, local, money, route_id, when
from gateway.inbox.web import ALL, DESK, View, back, form_of, render, staff_page
from gateway.keys import SESSIONMAKER, SETTINGS

TOTALS = (
    ("gross", "Examinations"),
    ("package_covered", "Covered by package"),
    ("insurer_pays", "Insurer pays"),
    ("tax", "Tax"),
    ("consumables", "Consumables"),
    ("coupon_discount", "Coupons"),
    ("loyalty_discount", "Loyalty points"),
)
REASON_LABELS = {
    "patient_request": "Patient asked",
    "no_show": "Did not come (no-show)",
    "doctor_unavailable": "Doctor unavailable",
    "clinic_closed": "Clinic closed",
    "duplicate": "Duplicate booking",
    "other": "Other (write why)",
}


def _session_id(request: web.Request) -> int:
    return route_id(request, "session_id")


def _here(session_id: int) -> str:
    return f"/inbox/sessions/{session_id}"


def _invoice_context(view: invoicing.InvoiceView) -> dict[str, Any]:
    cur, breakdown = view.currency, view.breakdown
    totals = breakdown.get("totals", {})
    return {
        "status": view.status,
        "lines": [
            {
                "name": line["name"],
                "kind": line["kind"],
                "ref_id": line.get("ref_id"),
                "quantity": line["quantity"],
                "patient_amount": money(line["patient_amount"], cur),
                "insurer_amount": money(line["insurer_amount"], cur) if Decimal(str(line["insurer_amount"])) else "",
                "steps": [
                    {"explanation": s["explanation"], "amount": money(s["amount"], cur), "kind": s["kind"]}
                    for s in line["steps"]
                ],
            }
            for line in breakdown.get("lines", [])
        ],
        "totals": [
            {"key": key, "label": label, "amount": money(totals[key], cur)}
            for key, label in TOTALS
            if key in totals and (key == "gross" or Decimal(str(totals[key])))
        ],
        "patient_pays": money(totals.get("patient_pays", "0"), cur),
        "requested_points": int(breakdown.get(invoicing.LOYALTY_REQUESTED, 0) or 0),
    }


@staff_page(ALL)
async def show(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = _session_id(request)
    now = datetime.now(UTC)
    async with request.app[SESSIONMAKER]() as db:
        found = await lifecycle.detail(db, session_id, actor=actor)
        invoice = await invoicing.session_invoice(db, session_id, actor=actor, now=now)
        ticket = await queue.position_for_session(db, session_id, now=now)
        reasons = (await lifecycle.cancel_reasons(db)).reasons
        exams = await catalog.list_examinations(db, actor=actor, branch_id=found.branch.id, active=True)
        start_refused = await lifecycle.step_refusal_for(db, found.session, SessionStatus.OPEN, now=now)
        complete_refused = await lifecycle.step_refusal_for(db, found.session, SessionStatus.COMPLETED, now=now)
    s, tz, cur = found.session, found.branch.tz, found.branch.currency
    status = SessionStatus(s.status)
    today = local(now, tz).date()
    can_start = can_transition(status, SessionStatus.OPEN)
    can_complete = can_transition(status, SessionStatus.COMPLETED)
    # Why the next step is not offered (the same words the API answers with), and the back-dated entry instead.
    blocked = start_refused if can_start else complete_refused if can_complete else None
    desk = actor.role in DESK
    actions = {
        "accept": desk and status is SessionStatus.WAITING and not s.accepted,
        "check_in": desk
        and status is SessionStatus.WAITING
        and s.accepted
        and ticket is None
        and local(s.starts_at, tz).date() == today,
        "start": can_start and start_refused is None,
        "complete": can_complete and complete_refused is None,
        "backdate": desk and blocked is not None and blocked.code == "not_accepted" and s.starts_at <= now,
        "cancel": desk and can_transition(status, SessionStatus.CANCELLED),
        "no_show": desk and status is SessionStatus.WAITING and "no_show" in reasons,
        "delete": actor.role == "owner",
    }
    context = {
        "s": s,
        "branch": found.branch,
        "patient": found.patient,
        "doctor": found.doctor,
        "room": found.room,
        "day_link": calendar_url(found.branch.id, local(s.starts_at, tz).date(), "doctors"),
        "when": when(s.starts_at, tz),
        "until": hhmm(s.ends_at, tz),
        "checked_in_waiting_day": local(s.starts_at, tz).date() != today,
        "ticket": ticket,
        "eta": hhmm(ticket.eta, tz) if ticket else "",
        "editable": status in ACTIVE_STATUSES,
        **_lines_context(found, exams, invoice),
        "actions": actions,
        "blocked": str(blocked) if blocked is not None else "",
        "backdate_step": "start" if can_start else "complete",
        "reasons": [(r, REASON_LABELS.get(r, r.replace("_", " ").capitalize())) for r in reasons],
        "phrase": confirmation_phrase(s.booking_code),
        "commission": actor.role in ("owner", "admin") and s.doctor_commission is not None,
        "doctor_commission": money(s.doctor_commission, cur) if s.doctor_commission is not None else "",
        "manager_commission": money(s.manager_commission, cur) if s.manager_commission is not None else "",
    }
    return render(request, actor, "inbox/session.html", context, title=f"Session {s.booking_code}")


def _lines_context(
    found: lifecycle.SessionDetail, exams: list[catalog.ExaminationView], invoice: invoicing.InvoiceView
) -> dict[str, Any]:
    """The session's lines, the examinations that can be added, its invoice, and the data the page's live invoice
    preview sends (the same lines, as the invoice preview API takes them)."""
    cur = found.branch.currency
    return {
        "lines": [
            {
                "id": line.id,
                "kind": line.kind,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": money(line.unit_price, cur),
                "examination_id": line.examination_id,
            }
            for line in found.lines
        ],
        "examination_count": sum(1 for line in found.lines if line.kind == "examination"),
        "examinations": [{"id": e.id, "name": e.name, "price": money(e.price, e.currency)} for e in exams],
        "invoice": _invoice_context(invoice),
        "preview_data": {
            "branch_id": found.branch.id,
            "patient_id": found.patient.id,
            "loyalty_points": int(invoice.breakdown.get(invoicing.LOYALTY_REQUESTED, 0) or 0),
            "examinations": [
                {"line_id": line.id, "examination_id": line.examination_id, "quantity": line.quantity}
                for line in found.lines
                if line.kind == "examination"
            ],
            "consumables": [
                {
                    "line_id": line.id,
                    "name": line.name,
                    "unit_price": money_str(line.unit_price, cur),
                    "quantity": line.quantity,
                    "taxable": line.taxable,
                }
                for line in found.lines
                if line.kind == "consumable"
            ],
            "names": {str(e.id): e.name for e in exams},
        },
    }


# --- lines


@staff_page(ALL)
async def add_line(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = _session_id(request)
    form = await form_of(request)
    exam_id = as_int(form.get("examination_id"))
    if exam_id is None:
        raise Invalid("examination_required", "Choose the examination to add.")
    quantity = as_int(form.get("quantity")) or 0
    async with transaction(request) as db:
        line = await session_lines.add_line(db, session_id, actor=actor, examination_id=exam_id, quantity=quantity)
        name, count = line.name, line.quantity
    return back(request, _here(session_id), notice=f"Added {count} × {name}; the invoice is updated.")


@staff_page(ALL)
async def set_quantity(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id, line_id = _session_id(request), route_id(request, "line_id")
    form = await form_of(request)
    quantity = as_int(form.get("quantity")) or 0
    async with transaction(request) as db:
        line = await session_lines.set_line_quantity(db, session_id, line_id, quantity, actor=actor)
        name, count = line.name, line.quantity
    return back(request, _here(session_id), notice=f"{name}: quantity {count}; the invoice is updated.")


@staff_page(ALL)
async def remove_line(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id, line_id = _session_id(request), route_id(request, "line_id")
    async with transaction(request) as db:
        await session_lines.remove_line(db, session_id, line_id, actor=actor)
    return back(request, _here(session_id), notice="Line removed; the invoice is updated.")


# --- lifecycle


@staff_page(DESK)
async def accept(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = _session_id(request)
    async with transaction(request) as db:
        done = await appointments.accept(
            db, session_id, actor=actor, default_language=request.app[SETTINGS].DEFAULT_LANGUAGE
        )
    notice = "Accepted; the patient is sent their check-in QR." if done.changed else "This visit was already accepted."
    return back(request, _here(session_id), notice=notice)


@staff_page(DESK)
async def check_in(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = _session_id(request)
    async with transaction(request) as db:
        ticket = await queue_actions.check_in(db, session_id, actor=actor)
    return back(
        request, _here(session_id), notice=f"Checked in: queue number {ticket.token}, position {ticket.position}."
    )


def _step(roles: Iterable[str], change: Callable[[Db, int, Actor], Awaitable[SessionChange]], notice: str) -> View:
    """A lifecycle button: apply ``change`` to the session, then back to its page with ``notice`` (a refusal comes
    back as the page's error: the same words as the API's)."""

    @staff_page(roles)
    async def step(request: web.Request, actor: Actor) -> web.StreamResponse:
        session_id = _session_id(request)
        async with transaction(request) as db:
            await follow_up(request, db, await change(db, session_id, actor))
        return back(request, _here(session_id), notice=notice)

    return step


def _lifecycle_step(change: Callable[..., Awaitable[SessionChange]], notice: str, backdated_notice: str) -> View:
    """Start or complete: the plain button, or the back-dated entry form (``backdated=1`` and a ``reason``)."""

    @staff_page(ALL)
    async def step(request: web.Request, actor: Actor) -> web.StreamResponse:
        session_id = _session_id(request)
        form = await form_of(request)
        backdated = form.get("backdated") == "1"
        async with transaction(request) as db:
            changed = await change(db, session_id, actor=actor, backdated=backdated, reason=form.get("reason") or None)
            await follow_up(request, db, changed)
        return back(request, _here(session_id), notice=backdated_notice if backdated else notice)

    return step


start = _lifecycle_step(
    lifecycle.start, "The visit has started (open).", "Entered back-dated: the visit started at its booked time."
)
complete = _lifecycle_step(
    lifecycle.complete,
    "The visit is completed and its invoice finalised.",
    "Entered back-dated: the visit is completed and its invoice finalised.",
)


@staff_page(DESK)
async def cancel(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = _session_id(request)
    form = await form_of(request)
    async with transaction(request) as db:
        cancelled = await lifecycle.cancel(
            db, session_id, actor=actor, reason_code=form.get("reason") or None, note=form.get("note") or None,
            **patient_facing(request),
        )  # fmt: skip
        await follow_up(request, db, cancelled)
    return back(request, _here(session_id), notice="The visit is cancelled; its time is free again.")


no_show = _step(
    DESK,
    lambda db, session_id, actor: lifecycle.cancel(db, session_id, actor=actor, reason_code="no_show"),
    "Recorded as a no-show; the visit is cancelled.",
)


@staff_page(DESK)
async def delete(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = _session_id(request)
    form = await form_of(request)
    async with transaction(request) as db:
        found = await lifecycle.detail(db, session_id, actor=actor)
        branch_id, tz, starts_at = found.branch.id, found.branch.tz, found.session.starts_at
        deleted = await session_deletion.delete_permanently(db, session_id, actor=actor, confirm=form.get("confirm"))
    kept = " Its invoice is kept in the archive." if deleted.invoice_id else ""
    return back(
        request,
        calendar_url(branch_id, local(starts_at, tz).date(), "doctors"),
        notice=f"Session {deleted.booking_code} deleted for good.{kept}",
    )


def setup(app: web.Application) -> None:
    base = r"/inbox/sessions/{session_id:\d+}"
    app.router.add_get(base, show)
    app.router.add_post(base + "/lines", add_line)
    app.router.add_post(base + r"/lines/{line_id:\d+}/quantity", set_quantity)
    app.router.add_post(base + r"/lines/{line_id:\d+}/remove", remove_line)
    app.router.add_post(base + "/accept", accept)
    app.router.add_post(base + "/check-in", check_in)
    app.router.add_post(base + "/start", start)
    app.router.add_post(base + "/complete", complete)
    app.router.add_post(base + "/cancel", cancel)
    app.router.add_post(base + "/no-show", no_show)
    app.router.add_post(base + "/delete", delete)
