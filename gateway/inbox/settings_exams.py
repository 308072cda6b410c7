"""Settings: the examination catalog (list, create, edit price/duration/branches/doctors/windows/cut-off, withdraw).

The page reads a form into the same models the JSON API validates with (gateway/api/catalog.py) and calls the
catalog service, which enforces the clinic's rules (currency precision, branch currencies, who may offer it where)
and writes the audit row. A mistake comes back next to its field and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from booking_core.domain.actors import Actor
from booking_core.domain.money import format_money
from booking_core.services import catalog, hours
from booking_core.services.errors import Invalid, NotFound, ServiceError
from gateway.api.catalog import ExaminationCreate, ExaminationPatch
from gateway.inbox.settings_common import parse_time, settings_page
from gateway.inbox.web import MANAGERS, back, form_of, staff_page
from gateway.keys import SESSIONMAKER

EXAMS = "/inbox/settings/examinations"
#: Empty weekly-window rows shown under the examination's own.
SPARE_WINDOWS = 3
LABELS = {
    "code": "Code",
    "name": "Name",
    "description": "Description",
    "price": "Price",
    "currency": "Currency",
    "duration_min": "Duration",
    "room_kind": "Room kind",
    "min_notice_min": "Minimum notice",
    "horizon_days": "Booking horizon",
    "buffer_before_min": "Buffer before",
    "buffer_after_min": "Buffer after",
    "cancel_cutoff_min": "Cancellation cut-off",
    "keywords": "Other names",
    "branch_ids": "Branches",
    "doctor_ids": "Doctors",
    "windows": "Weekly windows",
    "doctor_commission": "Doctor commission",
    "manager_commission": "Manager commission",
}
#: The catalog service's refusal codes, and the field each one is about.
CODE_FIELDS = {
    "invalid_code": "code",
    "duplicate_code": "code",
    "invalid_name": "name",
    "unknown_currency": "currency",
    "invalid_duration": "duration_min",
    "invalid_examination": "min_notice_min",
    "invalid_window": "windows",
    "currency_mismatch": "branch_ids",
    "no_doctor_at_branch": "branch_ids",
}
_INTS = ("duration_min", "min_notice_min", "horizon_days", "buffer_before_min", "buffer_after_min", "cancel_cutoff_min")


def _error_field(exc: ServiceError) -> str:
    if exc.code in CODE_FIELDS:
        return CODE_FIELDS[exc.code]
    if exc.code in ("invalid_amount", "invalid_commission"):
        if "doctor commission" in exc.message:
            return "doctor_commission"
        if "manager commission" in exc.message:
            return "manager_commission"
        return "price"
    if exc.code == "not_found" and isinstance(exc.details, dict):
        return "doctor_ids" if "doctor_ids" in exc.details else "branch_ids"
    return "form"


def _refused_fields(exc: ValidationError | ServiceError, *, editing: bool) -> dict[str, str]:
    """A refusal of the examination form as errors next to its fields; any other refusal is raised again.

    While ``editing``, a NotFound without details is the examination itself: the same 404 as any unknown id."""
    if isinstance(exc, ValidationError):
        return _pydantic_errors(exc)
    if isinstance(exc, Invalid) or (isinstance(exc, NotFound) and not (editing and exc.details is None)):
        return {_error_field(exc): exc.message}
    if exc.code == "duplicate_code":
        return {"code": exc.message}
    raise exc


def _data_of(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The form as the API's examination fields (strings left for pydantic to check), plus reading errors."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {
        "code": form.get("code", "").strip(),
        "name": form.get("name", "").strip(),
        "description": form.get("description", "").strip(),
        "price": form.get("price", "").strip().replace(",", "") or None,
        "currency": form.get("currency", "").strip().upper(),
        "taxable": bool(form.get("taxable")),
        "room_kind": form.get("room_kind", "").strip() or None,
        "keywords": [k.strip() for k in form.get("keywords", "").split(",") if k.strip()],
        "branch_ids": sorted(int(k[7:]) for k in form if k.startswith("branch-") and k[7:].isdigit()),
        "doctor_ids": sorted(int(k[7:]) for k in form if k.startswith("doctor-") and k[7:].isdigit()),
    }
    for name in _INTS:
        data[name] = form.get(name, "").strip()
        if not data[name]:
            errors[name] = f"{LABELS[name]}: enter a number of {'days' if name == 'horizon_days' else 'minutes'}."
    if data["price"] is None:
        errors["price"] = "Price: enter the price, like 150000 (0 for free)."
    for who in ("doctor", "manager"):
        kind = form.get(f"{who}_commission_kind", "percent")
        data[f"{who}_commission"] = {"kind": kind, "value": form.get(f"{who}_commission_value", "").strip() or "0"}
    windows = []
    for index in range(100):
        weekday = form.get(f"window-day-{index}")
        if weekday is None:
            break
        raw_start, raw_end = form.get(f"window-starts-{index}", ""), form.get(f"window-ends-{index}", "")
        if not weekday and not raw_start.strip() and not raw_end.strip():
            continue
        starts, ends = parse_time(raw_start), parse_time(raw_end)
        if not weekday.isdigit() or starts is None or ends is None:
            errors["windows"] = "Each window needs a weekday and both times, like Monday 08:00 to 12:00."
            continue
        windows.append({"weekday": int(weekday), "starts": starts, "ends": ends})
    data["windows"] = windows
    return data, errors


def _pydantic_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for problem in exc.errors():
        field = str(problem["loc"][0]) if problem["loc"] else "form"
        field = field if field in LABELS else "form"
        kind, given = problem["type"], problem.get("input")
        if kind in ("missing", "string_too_short") and not given:
            message = "this is needed."
        elif kind == "int_parsing":
            message = "enter a whole number."
        elif kind.startswith("decimal"):
            message = "enter a number, like 150000."
        else:
            message = problem["msg"].removeprefix("Value error, ")
        errors.setdefault(field, f"{LABELS.get(field, 'Form')}: {message}")
    return errors


def _values_of(view: catalog.ExaminationView | None) -> dict[str, str]:
    """An examination as the form's values (a new one: sensible defaults)."""
    if view is None:
        draft = catalog.ExaminationDraft(code="", name="", price=Decimal("0"), currency="", duration_min=30)
        values = {"price": ""}
    else:
        draft = view
        values = {"price": format(view.price, "f")}
    values.update(
        code=draft.code,
        name=draft.name,
        description=draft.description,
        currency=draft.currency,
        taxable="1" if draft.taxable else "",
        room_kind=draft.room_kind or "",
        keywords=", ".join(draft.keywords),
        doctor_commission_kind=draft.doctor_commission.kind,
        doctor_commission_value=format(draft.doctor_commission.value, "f"),
        manager_commission_kind=draft.manager_commission.kind,
        manager_commission_value=format(draft.manager_commission.value, "f"),
    )
    for name in _INTS:
        values[name] = str(getattr(draft, name))
    for branch_id in draft.branch_ids:
        values[f"branch-{branch_id}"] = "1"
    for doctor_id in draft.doctor_ids:
        values[f"doctor-{doctor_id}"] = "1"
    for index, window in enumerate(draft.windows):
        values[f"window-day-{index}"] = str(window.weekday)
        values[f"window-starts-{index}"] = f"{window.starts:%H:%M}"
        values[f"window-ends-{index}"] = f"{window.ends:%H:%M}"
    return values


def _window_rows(values: Mapping[str, str]) -> int:
    used = 0
    while f"window-day-{used}" in values:
        used += 1
    return used + SPARE_WINDOWS


# --- pages


@staff_page(MANAGERS)
async def exam_list(request: web.Request, actor: Actor) -> web.StreamResponse:
    show_all = request.query.get("show") == "all"
    async with request.app[SESSIONMAKER]() as db:
        exams = await catalog.list_examinations(db, actor=actor, active=None if show_all else True)
        branches = await catalog.list_branches(db, actor=actor)
        doctors = await hours.active_doctors(db, actor=actor)
    context = {
        "exams": exams,
        "show_all": show_all,
        "branch_names": {b.id: b.name for b in branches},
        "doctor_names": {d.id: d.name for d in doctors},
        "money": format_money,
    }
    return settings_page(request, actor, "inbox/settings_exams.html", context, title="Examinations")


async def _form_page(
    request: web.Request,
    actor: Actor,
    exam: catalog.ExaminationView | None,
    *,
    values: Mapping[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> web.StreamResponse:
    async with request.app[SESSIONMAKER]() as db:
        branches = await catalog.list_branches(db, actor=actor)
        doctors = await hours.active_doctors(db, actor=actor)
        kinds = sorted({e.room_kind for e in await catalog.list_examinations(db, actor=actor) if e.room_kind})
    shown = dict(_values_of(exam) if values is None else values)
    if exam is None and not shown.get("currency") and branches:
        shown["currency"] = branches[0].currency
    context = {
        "exam": exam,
        "values": shown,
        "branches": branches,
        "doctors": doctors,
        "currencies": sorted({b.currency for b in branches} | ({exam.currency} if exam else set())),
        "room_kinds": kinds,
        "weekdays": hours.WEEKDAYS,
        "window_rows": _window_rows(shown),
    }
    title = f"Edit {exam.name}" if exam else "New examination"
    return settings_page(request, actor, "inbox/settings_exam.html", context, title=title, errors=errors)


@staff_page(MANAGERS)
async def new_exam(request: web.Request, actor: Actor) -> web.StreamResponse:
    return await _form_page(request, actor, None)


@staff_page(MANAGERS)
async def edit_exam(request: web.Request, actor: Actor) -> web.StreamResponse:
    async with request.app[SESSIONMAKER]() as db:
        exam = await catalog.get_examination(db, int(request.match_info["exam_id"]), actor=actor)
    return await _form_page(request, actor, exam)


@staff_page(MANAGERS, refused_to=EXAMS)
async def create_exam(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await form_of(request)
    data, errors = _data_of(form)
    view = None
    if not errors:
        try:
            draft = catalog.ExaminationDraft(**ExaminationCreate.model_validate(data).changes())
            async with request.app[SESSIONMAKER]() as db, db.begin():
                view = await catalog.create_examination(db, draft, actor=actor)
        except (ValidationError, ServiceError) as exc:
            errors = _refused_fields(exc, editing=False)
    if view is None:
        return await _form_page(request, actor, None, values=form, errors=errors)
    return back(request, f"{EXAMS}/{view.id}", notice=f"{view.name} was added to the catalog.")


@staff_page(MANAGERS, refused_to=EXAMS)
async def update_exam(request: web.Request, actor: Actor) -> web.StreamResponse:
    exam_id = int(request.match_info["exam_id"])
    form = await form_of(request)
    data, errors = _data_of(form)
    view = None
    if not errors:
        try:
            changes = ExaminationPatch.model_validate(data).changes()
            async with request.app[SESSIONMAKER]() as db, db.begin():
                view = await catalog.update_examination(db, exam_id, changes, actor=actor)
        except (ValidationError, ServiceError) as exc:
            errors = _refused_fields(exc, editing=True)
    if view is None:
        async with request.app[SESSIONMAKER]() as db:
            exam = await catalog.get_examination(db, exam_id, actor=actor)
        return await _form_page(request, actor, exam, values=form, errors=errors)
    return back(request, f"{EXAMS}/{exam_id}", notice=f"{view.name} saved.")


@staff_page(MANAGERS, refused_to=EXAMS)
async def withdraw_exam(request: web.Request, actor: Actor) -> web.StreamResponse:
    exam_id = int(request.match_info["exam_id"])
    async with request.app[SESSIONMAKER]() as db, db.begin():
        view = await catalog.delete_examination(db, exam_id, actor=actor)
    notice = f"{view.name} is withdrawn: patients can no longer book it; past visits and invoices keep it."
    return back(request, f"{EXAMS}/{exam_id}", notice=notice)


@staff_page(MANAGERS, refused_to=EXAMS)
async def restore_exam(request: web.Request, actor: Actor) -> web.StreamResponse:
    exam_id = int(request.match_info["exam_id"])
    async with request.app[SESSIONMAKER]() as db, db.begin():
        view = await catalog.update_examination(db, exam_id, {"active": True}, actor=actor)
    return back(request, f"{EXAMS}/{exam_id}", notice=f"{view.name} can be booked again.")


def setup(app: web.Application) -> None:
    app.router.add_get(EXAMS, exam_list)
    app.router.add_post(EXAMS, create_exam)
    app.router.add_get(f"{EXAMS}/new", new_exam)
    app.router.add_get(EXAMS + r"/{exam_id:\d{1,9}}", edit_exam)
    app.router.add_post(EXAMS + r"/{exam_id:\d{1,9}}", update_exam)
    app.router.add_post(EXAMS + r"/{exam_id:\d{1,9}}/withdraw", withdraw_exam)
    app.router.add_post(EXAMS + r"/{exam_id:\d{1,9}}/restore", restore_exam)
