"""Clinic settings that staff edit (defaults live here; the database holds the current values).

The clinic-wide values are here: the booking form, reminder offsets and what the public queue tracker shows; a
branch's opening hours and its doctors' attendance are in :mod:`booking_core.services.hours`, the clinic's own
message texts in :mod:`booking_core.services.message_texts`. Only owners and admins change settings; an admin tied
to one branch changes that branch's hours and attendance, not what applies to every branch. Every change is
validated as a whole (:class:`FieldErrors` names each field that is wrong, and nothing is written), is written in
the caller's transaction and leaves an audit row with the old and new values; an unchanged value writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import catalog as catalog_queries
from booking_core.db.queries import clinic as queries
from booking_core.db.queries import settings as queries_s
from booking_core.domain import privacy
from booking_core.domain.actors import Actor
from booking_core.services import audit
from booking_core.services.errors import Forbidden, Invalid

DEFAULT_SETTINGS: dict[str, Any] = {
    "reminder_offsets_min": [24 * 60, 2 * 60],
    "cancel_reasons": [
        "patient_request",
        "no_show",
        "doctor_unavailable",
        "clinic_closed",
        "duplicate",
        "other",
    ],
    "hold_minutes": 10,
    "queue_sort": "arrival",
    # What the public queue tracker shows (booking_core/domain/privacy.py reads it).
    "queue_privacy": {"show_name": "masked", "show_doctor": True, "show_eta": True},
    "booking_form": {
        "fields": {
            "name": {"required": True},
            "phone": {"required": True},
            "email": {"required": False},
            "branch": {"required": True},
            "examination": {"required": True},
            "preferred_date": {"required": False},
            "preferred_time": {"required": False},
            "note": {"required": False},
        }
    },
    "loyalty": {"earn_per": "10000", "point_value": "100", "cap_pct": "20"},
    "dialog_books_directly": False,
    # Sites (besides PUBLIC_BASE_URL) whose pages may embed the chat widget, e.g. ["https://www.klinik-sehat.id"].
    "webchat_allowed_origins": [],
}


async def get(db: Db, key: str) -> Any:
    return await queries.get_setting(db, key, DEFAULT_SETTINGS.get(key))


# --- who may change settings ---------------------------------------------------------------------------------

MANAGERS = ("owner", "admin")


def require_manager(actor: Actor) -> None:
    """Settings are changed by the owner or an admin (or the system), else :class:`Forbidden`."""
    if actor.kind == "system":
        return
    if actor.kind != "staff" or actor.role not in MANAGERS:
        raise Forbidden("forbidden", "Only the owner or an admin may change the clinic's settings.")


def may_edit_clinic_wide(actor: Actor) -> bool:
    """Settings for every branch (booking form, reminders, messages, queue privacy): owners and admins of the
    whole clinic, not an admin tied to one branch."""
    return actor.kind == "system" or (actor.kind == "staff" and actor.role in MANAGERS and actor.branch_id is None)


def require_clinic_wide(actor: Actor) -> None:
    """A manager of the whole clinic (:func:`may_edit_clinic_wide`), else :class:`Forbidden`."""
    require_manager(actor)
    if not may_edit_clinic_wide(actor):
        raise Forbidden(
            "forbidden", "These settings apply to every branch: the owner or an admin of the whole clinic changes them."
        )


class FieldErrors(Invalid):
    """The input has problems in several places: ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        first = next(iter(self.errors.values()), "Some fields need attention.")
        super().__init__("invalid_fields", first, details=self.errors)


# --- the public booking form ---------------------------------------------------------------------------------

FORM_SETTING = "booking_form"
FIELD_MODES = ("required", "optional", "hidden")
FORM_FIELD_LABELS = {
    "name": "Name",
    "phone": "Phone number",
    "email": "Email",
    "branch": "Branch",
    "examination": "Examination",
    "preferred_date": "Preferred date",
    "preferred_time": "Preferred time",
    "note": "Note",
}


@dataclass(frozen=True)
class BookingFormSetup:
    """How the public form asks: each field required, optional or hidden; which branches and examinations it
    offers (None: every active one)."""

    modes: dict[str, str]
    branch_ids: tuple[int, ...] | None = None
    examination_ids: tuple[int, ...] | None = None


def booking_form_setup(value: Any) -> BookingFormSetup:
    """The ``booking_form`` setting read leniently (what the public form does with it)."""
    value = value if isinstance(value, Mapping) else DEFAULT_SETTINGS[FORM_SETTING]
    fields = value.get("fields")
    fields = fields if isinstance(fields, Mapping) else DEFAULT_SETTINGS[FORM_SETTING]["fields"]
    modes = {}
    for name in FORM_FIELD_LABELS:
        options = fields.get(name)
        if options is None or (isinstance(options, Mapping) and options.get("enabled", True) is False):
            modes[name] = "hidden"
        else:
            required = isinstance(options, Mapping) and bool(options.get("required", False))
            modes[name] = "required" if required else "optional"
    return BookingFormSetup(modes, _ids(value.get("branch_ids")), _ids(value.get("examination_ids")))


def _ids(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(sorted({v for v in value if isinstance(v, int) and not isinstance(v, bool)}))


async def booking_form(db: Db) -> BookingFormSetup:
    return booking_form_setup(await get(db, FORM_SETTING))


async def set_booking_form(
    db: Db,
    modes: Mapping[str, str],
    *,
    branch_ids: Sequence[int] | None,
    examination_ids: Sequence[int] | None,
    actor: Actor,
) -> bool:
    """Change the public booking form (clinic-wide). Staff must be able to answer: the phone number or the email
    is required. A preferred time needs the preferred date; a shown branch or examination field offers at least
    one choice. Returns whether anything changed."""
    require_clinic_wide(actor)
    errors: dict[str, str] = {}
    checked = {}
    for name, label in FORM_FIELD_LABELS.items():
        mode = modes.get(name, "hidden")
        if mode not in FIELD_MODES:
            errors[name] = f"{label}: choose required, optional or hidden."
        checked[name] = mode
    if "phone" not in errors and "email" not in errors and "required" not in (checked["phone"], checked["email"]):
        errors["phone"] = "Require the phone number or the email, so the clinic can answer the patient."
    if checked["preferred_time"] != "hidden" and checked["preferred_date"] == "hidden":
        errors["preferred_time"] = "A preferred time needs the preferred date: show the date too, or hide the time."
    branches = {b.id: b for b in await catalog_queries.list_branches(db)}
    examinations = {e.id: e for e in await catalog_queries.list_examinations(db, active=True)}
    chosen_branches = None if branch_ids is None else tuple(sorted(set(branch_ids)))
    chosen_exams = None if examination_ids is None else tuple(sorted(set(examination_ids)))
    if chosen_branches is not None and set(chosen_branches) - set(branches):
        errors["branch_ids"] = "One of the branches is not an active branch."
    elif checked["branch"] != "hidden" and chosen_branches == ():
        errors["branch_ids"] = "Offer at least one branch, or hide the branch field."
    if chosen_exams is not None and set(chosen_exams) - set(examinations):
        errors["examination_ids"] = "One of the examinations is not an active examination."
    elif checked["examination"] != "hidden" and chosen_exams == ():
        errors["examination_ids"] = "Offer at least one examination, or hide the examination field."
    if errors:
        raise FieldErrors(errors)
    stored = await queries_s.lock_setting(db, FORM_SETTING, DEFAULT_SETTINGS[FORM_SETTING])
    before = booking_form_setup(stored)
    after = BookingFormSetup(checked, chosen_branches, chosen_exams)
    if before == after:
        return False
    value = dict(stored) if isinstance(stored, Mapping) else {}
    value["fields"] = {
        name: {"required": mode == "required", "enabled": mode != "hidden"} for name, mode in checked.items()
    }
    value["branch_ids"] = None if chosen_branches is None else list(chosen_branches)
    value["examination_ids"] = None if chosen_exams is None else list(chosen_exams)
    await queries.put_setting(db, FORM_SETTING, value)
    audit.record(
        db, actor, "settings.booking_form_changed", "clinic_setting", None,
        {"from": _form_json(before), "to": _form_json(after)},
    )  # fmt: skip
    return True


def _form_json(setup: BookingFormSetup) -> dict[str, Any]:
    return {
        "fields": dict(setup.modes),
        "branch_ids": None if setup.branch_ids is None else list(setup.branch_ids),
        "examination_ids": None if setup.examination_ids is None else list(setup.examination_ids),
    }


# --- reminders -------------------------------------------------------------------------------------------------

REMINDERS_SETTING = "reminder_offsets_min"
MIN_REMINDER_MIN = 10
MAX_REMINDER_MIN = 14 * 24 * 60
MAX_REMINDERS = 4


async def reminder_offsets(db: Db) -> list[int]:
    """The configured offsets in minutes before a visit, largest first (what the reminder service uses)."""
    value = await get(db, REMINDERS_SETTING)
    found = (
        {int(v) for v in value if isinstance(v, int) and not isinstance(v, bool)} if isinstance(value, list) else set()
    )
    return sorted((v for v in found if v > 0), reverse=True)


async def set_reminder_offsets(db: Db, offsets_min: Sequence[int], *, actor: Actor) -> bool:
    """Change when reminders go out (minutes before the visit; none at all is allowed). Visits booked or moved
    from now on get them; visits already booked keep the reminders planned for them. Returns whether changed."""
    require_clinic_wide(actor)
    errors: dict[str, str] = {}
    for index, offset in enumerate(offsets_min):
        if not MIN_REMINDER_MIN <= offset <= MAX_REMINDER_MIN:
            errors[f"offset-{index}"] = "A reminder goes out between 10 minutes and 14 days before the visit."
    if len(set(offsets_min)) != len(offsets_min):
        errors["offsets"] = "Two reminders are set for the same time."
    if len(offsets_min) > MAX_REMINDERS:
        errors["offsets"] = f"At most {MAX_REMINDERS} reminders per visit."
    if errors:
        raise FieldErrors(errors)
    stored = await queries_s.lock_setting(db, REMINDERS_SETTING, DEFAULT_SETTINGS[REMINDERS_SETTING])
    before = sorted((v for v in stored if isinstance(v, int)), reverse=True) if isinstance(stored, list) else []
    after = sorted(offsets_min, reverse=True)
    if before == after:
        return False
    await queries.put_setting(db, REMINDERS_SETTING, after)
    audit.record(db, actor, "settings.reminders_changed", "clinic_setting", None, {"from": before, "to": after})
    return True


# --- the public queue tracker ----------------------------------------------------------------------------------

QUEUE_PRIVACY_SETTING = "queue_privacy"
#: How the public queue tracker may show a patient's name (the modes of booking_core/domain/privacy.py).
QUEUE_NAME_MODES = {
    "hidden": "Not at all (number only)",
    "initial": "First initial only",
    "masked": "Masked",
    "first_name": "First name",
}


async def queue_privacy(db: Db) -> privacy.QueuePrivacy:
    """What the public queue tracker shows (read as the tracker reads it)."""
    return privacy.queue_privacy(await get(db, QUEUE_PRIVACY_SETTING))


async def set_queue_privacy(db: Db, chosen: privacy.QueuePrivacy, *, actor: Actor) -> bool:
    """Change what the public queue tracker shows (clinic-wide). Returns whether anything changed."""
    require_clinic_wide(actor)
    if chosen.show_name not in privacy.NAME_MODES:
        raise FieldErrors({"show_name": "Choose how names are shown."})
    stored = await queries_s.lock_setting(db, QUEUE_PRIVACY_SETTING, DEFAULT_SETTINGS[QUEUE_PRIVACY_SETTING])
    before = privacy.queue_privacy(stored)
    if before == chosen:
        return False
    value = {**(stored if isinstance(stored, Mapping) else {}), **dataclasses.asdict(chosen)}
    await queries.put_setting(db, QUEUE_PRIVACY_SETTING, value)
    audit.record(
        db, actor, "settings.queue_privacy_changed", "clinic_setting", None,
        {"from": dataclasses.asdict(before), "to": dataclasses.asdict(chosen)},
    )  # fmt: skip
    return True
