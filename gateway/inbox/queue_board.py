"""The queue board, ``/inbox/queue``: today's waiting room of a branch, live.

Everyone signed in sees it (a doctor: their own patients). The front desk reorders it (drag and drop, or the
"move up/down" buttons), chooses the order patients are called in, cancels visits with a reason; the front desk
and doctors call the next patient in and complete visits. Every change goes through the queue and lifecycle
services and comes back here with a notice; the board region refreshes itself on queue and session changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from booking_core.domain.actors import Actor
from booking_core.domain.lifecycle import SessionStatus
from booking_core.domain.queue import SortMode
from booking_core.services import catalog, lifecycle, queue_actions
from booking_core.services import queue as queue_service
from booking_core.services.errors import Invalid
from gateway.api.common import follow_up, patient_facing, transaction
from gateway.inbox.web import ALL, DESK, back, form_of, render, staff_page
from gateway.keys import SESSIONMAKER

BOARD = "/inbox/queue"
VIEWS: tuple[tuple[SortMode, str], ...] = (
    (SortMode.ARRIVAL, "Arrival"),
    (SortMode.TIME, "Appointment time"),
    (SortMode.NEWEST, "Newest first"),
    (SortMode.MANUAL, "Manual order"),
)
ORDER_LABELS = {
    SortMode.ARRIVAL: "arrival order",
    SortMode.TIME: "appointment time",
    SortMode.MANUAL: "manual order (as dragged on this board)",
}


@dataclass(frozen=True)
class Where:
    """Which board a request is about: branch, day (None: today there) and how it is sorted (None: as called)."""

    branch_id: int | None
    day: date | None
    view: SortMode | None

    def url(self, *, view: SortMode | None = None) -> str:
        params: dict[str, str] = {}
        if self.branch_id is not None:
            params["branch"] = str(self.branch_id)
        if self.day is not None:
            params["day"] = self.day.isoformat()
        shown = view or self.view
        if shown is not None:
            params["sort"] = shown.value
        return f"{BOARD}?{urlencode(params)}" if params else BOARD


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 10 else None


def _where(values: dict[str, str] | web.Request) -> Where:
    source = values.query if isinstance(values, web.Request) else values
    try:
        day = date.fromisoformat(source.get("day", "")) if source.get("day") else None
    except ValueError:
        day = None
    try:
        view = SortMode(source.get("sort", "")) if source.get("sort") else None
    except ValueError:
        view = None
    return Where(_int(source.get("branch")), day, view)


def _label(code: str) -> str:
    return code.replace("_", " ").capitalize()


def _clock(instant: datetime | None, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).strftime("%H:%M") if instant else ""


def _row(line: queue_service.BoardLine, zone: ZoneInfo, now: datetime) -> dict[str, object]:
    ticket = line.ticket
    return {
        "entry_id": ticket.entry_id,
        "session_id": ticket.session_id,
        "token": ticket.token,
        "patient": line.patient_name,
        "doctor": ticket.doctor_name,
        "doctor_id": ticket.doctor_id,
        "examination": line.examination,
        "booking_code": line.booking_code,
        "status": ticket.status.value,
        "position": ticket.position,
        "ahead": ticket.ahead,
        "eta": _clock(ticket.eta, zone),
        "wait_min": ticket.wait_min,
        "scheduled": _clock(line.scheduled_start, zone),
        "arrived": _clock(line.arrived_at, zone),
        "started": _clock(line.started_at, zone),
        "with_doctor_min": int((now - line.started_at) / timedelta(minutes=1)) if line.started_at else 0,
    }


@staff_page(ALL)
async def board_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    where = _where(request)
    async with request.app[SESSIONMAKER]() as db:
        branches = await catalog.list_branches(db, actor=actor)
        ids = [b.id for b in branches]
        branch_id = where.branch_id if where.branch_id in ids else (actor.branch_id or (ids[0] if ids else None))
        if branch_id is None:
            return render(request, actor, "inbox/queue.html", {"branch": None, "branches": []}, title="Queue")
        board = await queue_service.board(db, branch_id, actor=actor, day=where.day, view=where.view)
        reasons = await lifecycle.cancel_reasons(db)
    branch = next(b for b in branches if b.id == branch_id)
    zone = ZoneInfo(branch.tz)
    now = board.now
    today = now.astimezone(zone).date()
    rows = [_row(line, zone, now) for line in board.lines]
    waiting = [r for r in rows if r["status"] == SessionStatus.WAITING.value]
    in_progress = [r for r in rows if r["status"] == SessionStatus.OPEN.value]
    busy = {r["doctor_id"] for r in in_progress}
    doctors: dict[object, dict[str, object]] = {}
    for r in waiting:
        doctor = doctors.setdefault(r["doctor_id"], {"id": r["doctor_id"], "name": r["doctor"], "waiting": 0})
        doctor["waiting"] = int(str(doctor["waiting"])) + 1
    for doctor in doctors.values():
        doctor["busy"] = doctor["id"] in busy
    here = Where(branch_id, board.day, where.view)
    context = {
        "branch": branch,
        "branches": branches,
        "pick_branch": actor.branch_id is None and len(branches) > 1,
        "day": board.day,
        "today": today,
        "is_today": board.day == today,
        "previous_day": (board.day - timedelta(days=1)).isoformat(),
        "next_day": (board.day + timedelta(days=1)).isoformat(),
        "view": board.view or board.sort,
        "views": VIEWS,
        "order": board.sort,
        "order_label": ORDER_LABELS.get(board.sort, board.sort.value),
        "orders": [(o, ORDER_LABELS[o]) for o in queue_actions.CALLING_ORDERS],
        "waiting": waiting,
        "in_progress": in_progress,
        "call_doctors": [d for d in doctors.values() if actor.role != "doctor" or d["id"] == actor.doctor_id],
        "desk": actor.role in DESK,
        "is_doctor": actor.role == "doctor",
        "reasons": [(code, _label(code)) for code in reasons.reasons],
        "note_needed": reasons.requires_note,
        "back_to": here.url(),
        "updated": _clock(now, zone),
    }
    return render(request, actor, "inbox/queue.html", context, title="Queue")


def _place(form: dict[str, str], name: str) -> int | None:
    value = _int(form.get(name))
    return value if value else None


@staff_page(DESK)
async def move(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Move a waiting patient before or after another (drag and drop, or the up/down buttons)."""
    entry_id = int(request.match_info["entry_id"])
    form = await form_of(request)
    where = _where(form)
    before, after = _place(form, "before"), _place(form, "after")
    if (before is None) == (after is None):
        raise Invalid("invalid_move", "Choose where to move the patient: before or after another one.")
    async with transaction(request) as db:
        switched = await queue_service.default_sort(db) is not SortMode.MANUAL
        if switched:  # the dragged order is the order patients are called in from now on
            await queue_actions.set_order(db, SortMode.MANUAL, actor=actor)
        moved = await queue_actions.move(
            db, entry_id, actor=actor, before=before, after=after, within=where.view or SortMode.MANUAL
        )
    token = next((line.ticket.token for line in moved.lines if line.ticket.entry_id == entry_id), "The patient")
    notice = f"{token} moved."
    if switched:
        notice += " Patients are now called in the order on this board (manual order)."
    to = Where(moved.branch_id, moved.day if where.day else None, SortMode.MANUAL)
    return back(request, to.url(), notice=notice)


@staff_page(DESK)
async def choose_order(request: web.Request, actor: Actor) -> web.StreamResponse:
    """The order patients are called in (clinic-wide): arrival, appointment time or manual."""
    form = await form_of(request)
    where = _where(form)
    try:
        order = SortMode(form.get("order", ""))
    except ValueError:
        raise Invalid("invalid_order", "Choose arrival, time or manual order.") from None
    async with transaction(request) as db:
        chosen = await queue_actions.set_order(db, order, actor=actor)
    to = Where(where.branch_id, where.day, chosen)
    return back(request, to.url(), notice=f"Patients are now called in {ORDER_LABELS[chosen]}.")


@staff_page(ALL)
async def call_next(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await form_of(request)
    where = _where(form)
    doctor_id = _int(form.get("doctor"))
    if where.branch_id is None or doctor_id is None:
        raise Invalid("invalid_form", "Choose the branch and the doctor to call the next patient for.")
    async with transaction(request) as db:
        line = await queue_actions.call_next(db, where.branch_id, doctor_id, actor=actor)
    notice = f"{line.ticket.token} {line.patient_name} is called in to {line.ticket.doctor_name}."
    return back(request, where.url(), notice=notice)


@staff_page(ALL)
async def complete(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = int(request.match_info["session_id"])
    form = await form_of(request)
    async with transaction(request) as db:
        session = await follow_up(request, db, await lifecycle.complete(db, session_id, actor=actor))
    return back(request, _where(form).url(), notice=f"Visit {session.booking_code} completed.")


@staff_page(DESK)
async def cancel(request: web.Request, actor: Actor) -> web.StreamResponse:
    session_id = int(request.match_info["session_id"])
    form = await form_of(request)
    note = form.get("note", "").strip() or None
    async with transaction(request) as db:
        cancelled = await lifecycle.cancel(
            db, session_id, actor=actor, reason_code=form.get("reason") or None, note=note, **patient_facing(request)
        )
        session = await follow_up(request, db, cancelled)
    return back(request, _where(form).url(), notice=f"Visit {session.booking_code} cancelled; the time is free again.")


def setup(app: web.Application) -> None:
    app.router.add_get(BOARD, board_page)
    app.router.add_post(r"/inbox/queue/{entry_id:\d{1,9}}/move", move)
    app.router.add_post("/inbox/queue/order", choose_order)
    app.router.add_post("/inbox/queue/call-next", call_next)
    app.router.add_post(r"/inbox/queue/sessions/{session_id:\d{1,9}}/complete", complete)
    app.router.add_post(r"/inbox/queue/sessions/{session_id:\d{1,9}}/cancel", cancel)
