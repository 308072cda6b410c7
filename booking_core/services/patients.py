"""Patients at the front desk: find one by name or phone, or register a new one (one living record per phone)."""

from __future__ import annotations

from dataclasses import dataclass

from booking_core.db.engine import Db
from booking_core.db.queries import ingest as ingest_queries
from booking_core.db.queries import patients as queries
from booking_core.db.tables import Patient
from booking_core.domain.actors import Actor
from booking_core.domain.phones import to_e164
from booking_core.services import audit
from booking_core.services.errors import Forbidden, Invalid, NotFound

__all__ = ["MAX_NAME", "Match", "Registered", "get", "register", "search"]

MAX_NAME = 120
SEARCH_LIMIT = 10
DESK = ("owner", "admin", "staff")


@dataclass(frozen=True)
class Match:
    id: int
    name: str
    phone: str | None


@dataclass(frozen=True)
class Registered:
    """The patient to book for, and whether the desk just created them (False: the phone was already known)."""

    patient: Patient
    created: bool


def _desk_only(actor: Actor) -> None:
    if actor.kind == "staff" and actor.role not in DESK:
        raise Forbidden("forbidden", "The front desk looks up and registers patients.")


async def search(db: Db, text: str, *, actor: Actor, limit: int = SEARCH_LIMIT) -> list[Match]:
    """Up to ``limit`` patients whose name contains ``text`` or whose phone contains its digits ("0812 3456"
    finds +62812 3456…). Fewer than two characters find nothing (too many to be useful)."""
    _desk_only(actor)
    text = " ".join(text.split())[:MAX_NAME]
    if len(text) < 2:
        return []
    digits = "".join(ch for ch in text if ch.isdigit())
    if digits.startswith("0"):
        digits = digits[1:]  # a national number: the E.164 form has the country code instead of the 0
    found = await queries.search(db, name=text, digits=digits if len(digits) >= 3 else "", limit=limit)
    return [Match(p.id, p.name, p.phone_e164) for p in found]


async def get(db: Db, patient_id: int, *, actor: Actor) -> Patient:
    _desk_only(actor)
    patient = await queries.get(db, patient_id)
    if patient is None or patient.merged_into_id is not None:
        raise NotFound("not_found", "There is no such patient.")
    return patient


async def register(db: Db, *, name: str, phone: str, actor: Actor) -> Registered:
    """The living patient with this phone, or a new one with this name and phone (audited).

    The phone is required (it is how the clinic reaches them and how chats find the same person) and must be a
    valid number; a known phone returns that patient unchanged.
    """
    _desk_only(actor)
    name = " ".join(name.split())
    if not 1 <= len(name) <= MAX_NAME:
        raise Invalid("invalid_name", f"Enter the patient's name (1 to {MAX_NAME} characters).")
    e164 = to_e164(phone)
    if e164 is None:
        raise Invalid("invalid_phone", "Enter a valid phone number, e.g. 0812-3456-7890 or +62 812 3456 7890.")
    known = await ingest_queries.living_patient_by_phone(db, e164)
    if known is not None:
        return Registered(known, created=False)
    patient = await ingest_queries.add_patient(db, name=name, phone=e164, language=None)
    audit.record(db, actor, "patient.created", "patient", patient.id, {"via": "front_desk"})
    return Registered(patient, created=True)
