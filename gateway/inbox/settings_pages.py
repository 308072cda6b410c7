"""``/inbox/settings``: the settings overview and the clinic-wide settings (booking form, reminders, queue tracker
privacy); the branch and catalog settings and the message texts live in the sibling ``settings_*`` modules, which
:func:`setup` registers too.

Owners and admins open every page; the clinic-wide ones are changed only by an owner or an admin of the whole
clinic (an admin tied to a branch sees them read-only). Every change is validated with an error next to each
field, audited, and changes nothing when invalid.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from booking_core.domain.actors import Actor
from booking_core.domain.privacy import NAME_MODES, QueuePrivacy, public_name
from booking_core.services import catalog
from booking_core.services import settings as service
from gateway.inbox import settings_exams, settings_hours, settings_messages
from gateway.inbox.formats import as_int
from gateway.inbox.settings_common import settings_page
from gateway.inbox.web import MANAGERS, back, form_of, staff_page
from gateway.keys import SESSIONMAKER

OVERVIEW = "/inbox/settings"
FORM = "/inbox/settings/booking-form"
REMINDERS = "/inbox/settings/reminders"
QUEUE = "/inbox/settings/queue"
UNITS = {"days": 24 * 60, "hours": 60, "minutes": 1}


@staff_page(MANAGERS)
async def overview(request: web.Request, actor: Actor) -> web.StreamResponse:
    async with request.app[SESSIONMAKER]() as db:
        branches = await catalog.list_branches(db, actor=actor)
    names = ", ".join(b.name for b in branches) if actor.branch_id is not None else ""
    return settings_page(request, actor, "inbox/settings.html", {"branch_names": names}, title="Settings")


# --- booking form


async def _form_page(
    request: web.Request,
    actor: Actor,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> web.StreamResponse:
    async with request.app[SESSIONMAKER]() as db:
        setup = await service.booking_form(db)
        branches = await catalog.list_branches(db, actor=actor)
        exams = await catalog.list_examinations(db, actor=actor, active=True)
    if values is None:
        values = {f"mode-{name}": mode for name, mode in setup.modes.items()}
        values["branches"] = "all" if setup.branch_ids is None else "chosen"
        values["examinations"] = "all" if setup.examination_ids is None else "chosen"
        values.update({f"branch-{b}": "1" for b in setup.branch_ids or ()})
        values.update({f"exam-{e}": "1" for e in setup.examination_ids or ()})
    context = {
        "values": values,
        "labels": service.FORM_FIELD_LABELS,
        "modes": service.FIELD_MODES,
        "branches": branches,
        "exams": exams,
    }
    return settings_page(request, actor, "inbox/settings_form.html", context, title="Booking form", errors=errors)


@staff_page(MANAGERS)
async def booking_form(request: web.Request, actor: Actor) -> web.StreamResponse:
    return await _form_page(request, actor)


def _chosen(form: dict[str, str], choice: str, prefix: str) -> list[int] | None:
    if form.get(choice) != "chosen":
        return None
    return sorted(i for k in form if k.startswith(prefix) and (i := as_int(k[len(prefix) :])) is not None)


@staff_page(MANAGERS, refused_to=FORM)
async def save_booking_form(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await form_of(request)
    modes = {name: form.get(f"mode-{name}", "") for name in service.FORM_FIELD_LABELS}
    branch_ids = _chosen(form, "branches", "branch-")
    exam_ids = _chosen(form, "examinations", "exam-")
    try:
        async with request.app[SESSIONMAKER]() as db, db.begin():
            changed = await service.set_booking_form(
                db, modes, branch_ids=branch_ids, examination_ids=exam_ids, actor=actor
            )
    except service.FieldErrors as exc:
        return await _form_page(request, actor, values=form, errors=exc.errors)
    notice = "The booking form is updated; patients see it at once." if changed else "Nothing changed."
    return back(request, FORM, notice=notice)


# --- reminders


def _offset_rows(offsets: list[int]) -> dict[str, str]:
    values: dict[str, str] = {}
    for index, minutes in enumerate(offsets):
        unit = next(u for u, size in UNITS.items() if minutes % size == 0)
        values[f"amount-{index}"] = str(minutes // UNITS[unit])
        values[f"unit-{index}"] = unit
    return values


async def _reminders_page(
    request: web.Request,
    actor: Actor,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> web.StreamResponse:
    async with request.app[SESSIONMAKER]() as db:
        offsets = await service.reminder_offsets(db)
    context: dict[str, Any] = {
        "values": _offset_rows(offsets) if values is None else values,
        "rows": service.MAX_REMINDERS,
        "units": tuple(UNITS),
        "offsets": offsets,
    }
    return settings_page(request, actor, "inbox/settings_reminders.html", context, title="Reminders", errors=errors)


@staff_page(MANAGERS)
async def reminders(request: web.Request, actor: Actor) -> web.StreamResponse:
    return await _reminders_page(request, actor)


@staff_page(MANAGERS, refused_to=REMINDERS)
async def save_reminders(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await form_of(request)
    offsets: list[int] = []
    rows: list[int] = []  # the form row of each offset, to show the service's errors next to it
    errors: dict[str, str] = {}
    for index in range(service.MAX_REMINDERS):
        amount, unit = form.get(f"amount-{index}", "").strip(), form.get(f"unit-{index}", "hours")
        if not amount:
            continue
        if not amount.isdigit() or len(amount) > 6 or unit not in UNITS:
            errors[f"row-{index}"] = "Enter a whole number, like 24 hours or 90 minutes."
            continue
        offsets.append(int(amount) * UNITS[unit])
        rows.append(index)
    if not errors:
        try:
            async with request.app[SESSIONMAKER]() as db, db.begin():
                changed = await service.set_reminder_offsets(db, offsets, actor=actor)
        except service.FieldErrors as exc:
            errors = {(f"row-{rows[int(k[7:])]}" if k.startswith("offset-") else k): v for k, v in exc.errors.items()}
    if errors:
        return await _reminders_page(request, actor, values=form, errors=errors)
    notice = "Reminder times saved; visits booked or moved from now on get them." if changed else "Nothing changed."
    return back(request, REMINDERS, notice=notice)


# --- queue tracker privacy


async def _queue_page(
    request: web.Request,
    actor: Actor,
    *,
    privacy: QueuePrivacy | None = None,
    errors: dict[str, str] | None = None,
) -> web.StreamResponse:
    if privacy is None:
        async with request.app[SESSIONMAKER]() as db:
            privacy = await service.queue_privacy(db)
    example = "Siti Rahmawati"
    context = {
        "privacy": privacy,
        "name_modes": service.QUEUE_NAME_MODES,
        "example": example,
        "examples": {mode: public_name(example, mode) for mode in NAME_MODES},
    }
    return settings_page(
        request, actor, "inbox/settings_queue.html", context, title="Queue tracker privacy",
        errors=errors,
    )  # fmt: skip


@staff_page(MANAGERS)
async def queue_privacy(request: web.Request, actor: Actor) -> web.StreamResponse:
    return await _queue_page(request, actor)


@staff_page(MANAGERS, refused_to=QUEUE)
async def save_queue_privacy(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await form_of(request)
    privacy = QueuePrivacy(
        show_name=form.get("show_name", ""),  # type: ignore[arg-type]  # checked by the service
        show_doctor=bool(form.get("show_doctor")),
        show_eta=bool(form.get("show_eta")),
    )
    try:
        async with request.app[SESSIONMAKER]() as db, db.begin():
            changed = await service.set_queue_privacy(db, privacy, actor=actor)
    except service.FieldErrors as exc:
        return await _queue_page(request, actor, privacy=privacy, errors=exc.errors)
    return back(request, QUEUE, notice="The queue tracker settings are saved." if changed else "Nothing changed.")


def setup(app: web.Application) -> None:
    app.router.add_get(OVERVIEW, overview)
    app.router.add_get(FORM, booking_form)
    app.router.add_post(FORM, save_booking_form)
    app.router.add_get(REMINDERS, reminders)
    app.router.add_post(REMINDERS, save_reminders)
    app.router.add_get(QUEUE, queue_privacy)
    app.router.add_post(QUEUE, save_queue_privacy)
    for module in (settings_hours, settings_exams, settings_messages):
        module.setup(app)
