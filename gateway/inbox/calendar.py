"""The calendar (``/inbox/calendar``): one branch's day by doctor or by room, booking a free slot, blackouts.

Free cells are links that open the booking form for that start (works without script); a cell that cannot be
booked says why on hover (the availability engine's reasons). The form books through the booking service and
answers with a redirect back to the calendar (post/redirect/get): after a booking, to the day with a notice; after a
refusal, to the same booking form with what was typed, the reason and, for a taken slot, the next free times to
pick from. The grid is a live region: a visit booked or cancelled anywhere, or a blackout added, redraws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer

from booking_core.db.engine import Db
from booking_core.domain.actors import Actor
from booking_core.services import blackouts, booking, catalog, patients
from booking_core.services import calendar as calendar_service
from booking_core.services.errors import Invalid, NotFound, ServiceError
from gateway.api.booking import plan_followups
from gateway.api.common import transaction
from gateway.inbox.formats import (
    as_date,
    as_instant,
    as_int,
    as_wall_time,
    hhmm,
    local,
    long_day,
    money,
    route_id,
    when,
)
from gateway.inbox.web import ALL, DESK, back, form_of, render, staff_page
from gateway.keys import SESSIONMAKER, SETTINGS

VIEW_LABELS = {"doctors": "By doctor", "rooms": "By room"}
#: A refused booking's form (what was typed, why, the next free times) on its way back to the calendar page.
DRAFT_COOKIE = "fd_calendar_draft"
#: The fields of the booking form that come back after a refusal.
KEPT_FIELDS = ("patient_id", "name", "phone", "examination_id")


def calendar_url(branch_id: int, on: date, view: str, **extra: object) -> str:
    query: dict[str, object] = {"branch": branch_id, "day": on.isoformat(), "view": view}
    query.update({k: v for k, v in extra.items() if v not in (None, "")})
    return "/inbox/calendar?" + urlencode(query)


# --- the page


@dataclass(frozen=True)
class Where:
    """Which calendar the request is about."""

    branch: catalog.BranchView
    day: date
    view: str
    branches: list[catalog.BranchView]


async def _where(request: web.Request, actor: Actor, source: dict[str, str]) -> Where | None:
    """The branch (asked for, else the actor's first), day (else today there) and view (else by doctor)."""
    async with request.app[SESSIONMAKER]() as db:
        branches = await catalog.list_branches(db, actor=actor)
    if not branches:
        return None
    wanted = as_int(source.get("branch"))
    branch = next((b for b in branches if b.id == wanted), None)
    if wanted is not None and branch is None:
        raise _no_branch()
    branch = branch or branches[0]
    on = as_date(source.get("day")) or datetime.now(ZoneInfo(branch.tz)).date()
    view = source.get("view") if source.get("view") in calendar_service.VIEWS else "doctors"
    return Where(branch, on, view or "doctors", branches)


def _no_branch() -> ServiceError:
    return NotFound("not_found", "There is no such branch.")


async def _posted_where(request: web.Request, actor: Actor) -> tuple[dict[str, str], Where]:
    """A calendar form and the branch, day and view it was sent from; 404 when there is no such branch."""
    form = await form_of(request)
    where = await _where(request, actor, form)
    if where is None:
        raise _no_branch()
    return form, where


def _grid_context(found: calendar_service.CalendarDay, actor: Actor, chosen: dict[str, Any]) -> dict[str, Any]:
    tz = found.branch.tz
    can_book = actor.role in DESK
    columns = []
    for column in found.columns:
        cells = []
        for index, start in enumerate(found.grid.rows):
            free = index in column.free
            key = "doctor" if column.kind == "doctor" else "room"
            link = (
                calendar_url(
                    found.branch.id, found.day, found.view, slot=local(start, tz).isoformat(), **{key: column.id}
                )
                + "#book"
            )
            cells.append(
                {
                    "row": index + 1,
                    "free": free,
                    "time": hhmm(start, tz),
                    "href": link if free and can_book else "",
                    "chosen": chosen.get("slot") == start and chosen.get(key) == column.id,
                    "why": "" if free else column.why_not.get(index, "Not bookable"),
                }
            )
        blocks = [
            {
                "kind": b.kind,
                "id": b.id,
                "row": b.row + 1,
                "rows": b.rows,
                "lane": b.lane,
                "lanes": b.lanes,
                "time": f"{hhmm(b.start, tz)}–{hhmm(b.end, tz)}",
                "title": b.title,
                "detail": b.detail,
                "status": b.status,
                "accepted": b.accepted,
                "code": b.booking_code,
            }
            for b in column.blocks
        ]
        hours = ", ".join(f"{hhmm(w.start, tz)}–{hhmm(w.end, tz)}" for w in column.working)
        columns.append(
            {"kind": column.kind, "id": column.id, "name": column.name, "subtitle": column.subtitle,
             "hours": hours or ("not attending" if column.kind == "doctor" else "closed"), "cells": cells,
             "blocks": blocks}
        )  # fmt: skip
    return {
        "rows": [{"row": i + 1, "time": hhmm(start, tz)} for i, start in enumerate(found.grid.rows)],
        "columns": columns,
        "opening": ", ".join(f"{hhmm(s.start, tz)}–{hhmm(s.end, tz)}" for s in found.opening),
    }


async def _page(
    request: web.Request,
    actor: Actor,
    where: Where,
    *,
    booking_form: dict[str, str] | None = None,
    booking_error: ServiceError | None = None,
    status: int = 200,
) -> web.StreamResponse:
    query = booking_form if booking_form is not None else dict(request.query)
    tz = where.branch.tz
    chosen: dict[str, Any] = {}
    slot = as_instant(query.get("slot") or query.get("start"))
    doctor_id = as_int(query.get("doctor") or query.get("doctor_id"))
    room_id = as_int(query.get("room") or query.get("room_id"))
    async with request.app[SESSIONMAKER]() as db:
        found = await calendar_service.day(db, actor=actor, branch_id=where.branch.id, on=where.day, view=where.view)
        book: dict[str, Any] | None = None
        if slot is not None and actor.role in DESK and (doctor_id or room_id):
            chosen = {"slot": slot.astimezone(UTC), "doctor": doctor_id, "room": room_id}
            book = await _booking_panel(
                db, actor, found, query, slot=slot, doctor_id=doctor_id, room_id=room_id, error=booking_error
            )
    context: dict[str, Any] = {
        "branch": where.branch,
        "branches": where.branches,
        "day": where.day,
        "day_label": long_day(where.day),
        "view": where.view,
        "views": VIEW_LABELS,
        "can_edit": actor.role in DESK,
        "book": book,
        "url": lambda **kw: calendar_url(
            kw.pop("branch", where.branch.id), kw.pop("day", where.day), kw.pop("view", where.view), **kw
        ),
        "prev_day": where.day - timedelta(days=1),
        "next_day": where.day + timedelta(days=1),
        "blackouts": [
            {
                "id": b.id,
                "scope": b.scope,
                "target": b.target,
                "reason": b.reason,
                "from": when(b.start, tz),
                "to": when(b.end, tz),
                "editable": actor.can_see_branch(b.branch_id),
            }
            for b in found.blackouts
        ],
        "doctors": found.doctors,
        "rooms": found.rooms,
        "blackout_from": f"{where.day.isoformat()}T12:00",
        "blackout_to": f"{where.day.isoformat()}T13:00",
        **_grid_context(found, actor, chosen),
    }
    if booking_error is not None and book is None:  # no form to show it in: the page's notice says it
        context["error"] = booking_error.message
    return render(request, actor, "inbox/calendar.html", context, status=status, title="Calendar")


async def _booking_panel(
    db: Db,
    actor: Actor,
    found: calendar_service.CalendarDay,
    query: dict[str, str],
    *,
    slot: datetime,
    doctor_id: int | None,
    room_id: int | None,
    error: ServiceError | None,
) -> dict[str, Any]:
    """The booking form for a free cell: the examinations that doctor or room can do, the patients found by the
    search (the one chosen before a refused booking stays), what was typed, and after a taken slot the next ones."""
    tz = found.branch.tz
    exams = await catalog.list_examinations(db, actor=actor, branch_id=found.branch.id, active=True)
    room_kind = next((kind for rid, _n, kind in found.rooms if rid == room_id), None)
    offered = [
        e for e in exams
        if (doctor_id is None or doctor_id in e.doctor_ids)
        and (room_id is None or e.room_kind in (None, room_kind))
    ]  # fmt: skip
    # What can start at that time in that column; all of the column's examinations once it has gone (the refusal
    # and the next free times then say why).
    startable = _startable(found, slot, doctor_id, room_id)
    offered = [e for e in offered if e.id in startable] or offered
    search = " ".join(query.get("q", "").split())[:120]
    matches = await patients.search(db, search, actor=actor) if search else []
    picked = as_int(query.get("patient_id"))
    if picked is not None and all(m.id != picked for m in matches):
        try:  # the patient chosen before a refused booking stays chosen
            kept = await patients.get(db, picked, actor=actor)
            matches = [patients.Match(kept.id, kept.name, kept.phone_e164), *matches]
        except ServiceError:
            pass
    column_name = next(
        (c.name for c in found.columns if c.id == (doctor_id if doctor_id else room_id)
         and c.kind == ("doctor" if doctor_id else "room")), ""
    )  # fmt: skip
    return {
        "start": slot.isoformat(),
        "when": when(slot, tz),
        "doctor_id": doctor_id or "",
        "room_id": room_id or "",
        "column": column_name,
        "examinations": [
            {"id": e.id, "name": e.name, "minutes": e.duration_min, "price": money(e.price, e.currency)}
            for e in offered
        ],
        "q": search,
        "matches": matches,
        "typed": {k: query.get(k, "") for k in KEPT_FIELDS},
        "error": error.message if error else "",
        "alternatives": _taken_alternatives(error, tz) if error is not None and error.code == "slot_taken" else [],
    }


def _taken_alternatives(error: ServiceError, tz: str) -> list[dict[str, str]]:
    """The next free times a "slot taken" refusal carries, as choices for the booking form."""
    details = error.details if isinstance(error.details, dict) else {}
    alternatives = []
    for option in details.get("alternatives", []):
        start = as_instant(str(option.get("start")))
        if start is None:
            continue
        alternatives.append(
            {"value": f"{start.isoformat()}|{option.get('doctor_id', '')}",
             "label": f"{when(start, tz)} with {option.get('doctor_name', '')}"}
        )  # fmt: skip
    return alternatives


def _startable(
    found: calendar_service.CalendarDay, slot: datetime, doctor_id: int | None, room_id: int | None
) -> tuple[int, ...]:
    """The examinations that can start at ``slot`` in the chosen doctor's (else room's) column."""
    kind, wanted = ("doctor", doctor_id) if doctor_id else ("room", room_id)
    column = next((c for c in found.columns if c.kind == kind and c.id == wanted), None)
    row = next((i for i, start in enumerate(found.grid.rows) if start == slot), None)
    return () if column is None or row is None else column.bookable.get(row, ())


def _drafts(request: web.Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app[SETTINGS].SECRET_KEY, salt="frontdesk.staff.calendar-draft")


def _refused(request: web.Request, where: Where, form: dict[str, str], start: datetime | None,
             doctor_id: int | None, room_id: int | None, refusal: ServiceError) -> web.Response:  # fmt: skip
    """Back to the calendar (post/redirect/get): to the booking form of that time, with what was typed, the reason
    and the next free times; without a time, to the day with the reason as the page's notice."""
    if start is None or (doctor_id is None and room_id is None):
        return back(request, calendar_url(where.branch.id, where.day, where.view), error=refusal.message)
    details = refusal.details if isinstance(refusal.details, dict) else {}
    draft = {
        "slot": start.isoformat(),
        "form": {k: form.get(k, "")[:200] for k in KEPT_FIELDS},
        "code": refusal.code,
        "message": refusal.message[:300],
        "alternatives": list(details.get("alternatives", []))[:5] if refusal.code == "slot_taken" else [],
    }
    tz = where.branch.tz
    column = {"doctor": doctor_id} if doctor_id else {"room": room_id}
    url = calendar_url(where.branch.id, local(start, tz).date(), where.view, slot=local(start, tz).isoformat(),
                       **column) + "#book"  # fmt: skip
    response = web.Response(status=303, headers={"Location": url})
    response.set_cookie(DRAFT_COOKIE, _drafts(request).dumps(draft), path="/inbox/calendar", httponly=True,
                        samesite="Strict", max_age=120)  # fmt: skip
    return response


def _take_draft(request: web.Request) -> tuple[dict[str, str], ServiceError] | None:
    """A refused booking's form and refusal, when this page is its booking form (not a live region's refresh)."""
    raw = request.cookies.get(DRAFT_COOKIE)
    if not raw or request.headers.get("X-Partial"):
        return None
    try:
        draft = _drafts(request).loads(raw)
    except BadSignature:
        return None
    slot = as_instant(request.query.get("slot"))
    if not isinstance(draft, dict) or slot is None or as_instant(str(draft.get("slot"))) != slot:
        return None
    typed = draft.get("form")
    typed = typed if isinstance(typed, dict) else {}
    form = {**request.query, **{k: str(typed.get(k, "")) for k in KEPT_FIELDS}}
    refusal = ServiceError(str(draft.get("code", "")), str(draft.get("message", "")),
                           details={"alternatives": draft.get("alternatives") or []})  # fmt: skip
    return form, refusal


@staff_page(ALL)
async def show(request: web.Request, actor: Actor) -> web.StreamResponse:
    where = await _where(request, actor, dict(request.query))
    if where is None:
        return render(request, actor, "inbox/calendar_empty.html", {}, title="Calendar")
    draft = _take_draft(request)
    if draft is None:
        return await _page(request, actor, where)
    form, refusal = draft
    response = await _page(request, actor, where, booking_form=form, booking_error=refusal)
    response.del_cookie(DRAFT_COOKIE, path="/inbox/calendar")
    return response


@staff_page(DESK, refused_to="/inbox/calendar")
async def book_slot(request: web.Request, actor: Actor) -> web.StreamResponse:
    form, where = await _posted_where(request, actor)
    start = as_instant(form.get("start"))
    doctor_id, room_id = as_int(form.get("doctor_id")), as_int(form.get("room_id"))
    alternative = form.get("alternative", "")
    if alternative:
        raw_start, _, raw_doctor = alternative.partition("|")
        start, doctor_id, room_id = as_instant(raw_start), as_int(raw_doctor), None
        form = {**form, "start": raw_start, "doctor_id": raw_doctor, "room_id": ""}
        if doctor_id is not None:
            # The alternative is the doctor's: show the booking form on that doctor's column if it fails again.
            on = local(start, where.branch.tz).date() if start else where.day
            where = Where(where.branch, on, "doctors", where.branches)
    try:
        if start is None:
            raise Invalid("invalid_start", "Choose a free time on the calendar first.")
        exam_id = as_int(form.get("examination_id"))
        if exam_id is None:
            raise Invalid("examination_required", "Choose the examination.")
        booked_at = start

        async def attempt() -> tuple[str, str, datetime]:  # run again whole if PostgreSQL aborts it (a deadlock)
            async with transaction(request) as db:
                patient_id = as_int(form.get("patient_id"))
                if patient_id is not None:
                    patient = await patients.get(db, patient_id, actor=actor)
                else:
                    patient = (await patients.register(
                        db, name=form.get("name", ""), phone=form.get("phone", ""), actor=actor
                    )).patient  # fmt: skip
                session = await booking.book(
                    db, actor=actor, branch_id=where.branch.id, patient_id=patient.id, examination_ids=[exam_id],
                    start=booked_at, doctor_id=doctor_id, room_id=room_id,
                )  # fmt: skip
                if session.status == "waiting":
                    await plan_followups(request, db, session.id)
                return session.booking_code, patient.name, session.starts_at

        code, patient_name, starts_at = await booking.retrying(attempt)
    except ServiceError as exc:
        return _refused(request, where, form, start, doctor_id, room_id, exc)
    on = local(starts_at, where.branch.tz).date()
    notice = f"Booked {patient_name} on {when(starts_at, where.branch.tz)} (booking code {code})."
    return back(request, calendar_url(where.branch.id, on, where.view), notice=notice)


@staff_page(DESK, refused_to="/inbox/calendar")
async def add_blackout(request: web.Request, actor: Actor) -> web.StreamResponse:
    form, where = await _posted_where(request, actor)
    tz = where.branch.tz
    starts, ends = as_wall_time(form.get("starts"), tz), as_wall_time(form.get("ends"), tz)
    if starts is None or ends is None:
        raise Invalid("invalid_range", "Enter when the blackout starts and ends.")
    async with transaction(request) as db:
        added = await blackouts.add(
            db, actor=actor, branch_id=where.branch.id, scope=form.get("scope", ""), starts_at=starts, ends_at=ends,
            reason=form.get("reason", ""), doctor_id=as_int(form.get("doctor_id")), room_id=as_int(form.get("room_id")),
        )  # fmt: skip
        block = added.block
        notice = f"Blackout added: {block.reason}, {when(block.starts_at, tz)} to {when(block.ends_at, tz)}."
    if added.covered_sessions:
        notice += f" {added.covered_sessions} booked visit(s) fall in it; they stay booked — move or cancel them."
    return back(request, calendar_url(where.branch.id, where.day, where.view), notice=notice)


@staff_page(DESK, refused_to="/inbox/calendar")
async def remove_blackout(request: web.Request, actor: Actor) -> web.StreamResponse:
    blackout_id = route_id(request, "blackout_id")
    async with transaction(request) as db:
        removed = await blackouts.remove(db, blackout_id, actor=actor)
        reason = removed.reason
    return back(request, notice=f"Blackout removed: {reason}. Its time can be booked again.")


def setup(app: web.Application) -> None:
    app.router.add_get("/inbox/calendar", show)
    app.router.add_post("/inbox/calendar/book", book_slot)
    app.router.add_post("/inbox/calendar/blackouts", add_blackout)
    app.router.add_post(r"/inbox/calendar/blackouts/{blackout_id:\d+}/remove", remove_blackout)
