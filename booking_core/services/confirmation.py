"""The patient's side of a booking: the visit's page behind its link, and the rating.

* The **link** (:mod:`booking_core.services.visit_link`) opens the visit's page; a link whose session is gone or
  carries another code opens nothing (:func:`open_link` → 404).
* On the page the patient **confirms** (``accepted``, ``confirmed_at``; the check-in QR follows), **cancels**
  with a reason (through :func:`booking_core.services.lifecycle.cancel`, so the time frees) or **reschedules**
  (the old visit cancelled and the new time booked in the caller's one transaction). Cancel and reschedule stop at
  the examination's cut-off before the visit (``too_late``, with the clinic's phone in the details).
* The messages around it (confirmation, check-in QR, thank-you) are :mod:`booking_core.services.visit_messages`.
* The chat answers the same way: :func:`confirm_visit` and :func:`rate` are what "1" / "2" and the buttons do.

Every change leaves an audit row with the patient as actor, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from booking_core.db.engine import Db
from booking_core.db.queries import confirmation as queries
from booking_core.db.tables import Session
from booking_core.domain.actors import Actor
from booking_core.domain.codes import mask_name
from booking_core.domain.followups import FollowUp
from booking_core.domain.lifecycle import MAX_NOTE_LENGTH, REASONS_REQUIRING_NOTE
from booking_core.domain.links import (
    PAGE_CANCEL_REASONS,
    RATINGS,
    Choices,
    change_deadline,
    page_choices,
)
from booking_core.services import audit, availability, booking, lifecycle, notify
from booking_core.services.errors import Conflict, Invalid, NotFound
from booking_core.services.visit_link import LinkClaim, token_for
from booking_core.services.visit_messages import send_checkin_qr

__all__ = [
    "FOLLOWUP_KINDS",
    "Confirmed",
    "Moved",
    "PageView",
    "SlotOption",
    "cancel_by_link",
    "confirm_by_link",
    "confirm_visit",
    "followup_options",
    "open_link",
    "page_view",
    "rate",
    "reschedule_by_link",
    "reschedule_options",
]

#: Outbox kinds whose buttons a bare "1".."n" in the chat answers while they are the latest thing we wrote.
FOLLOWUP_KINDS = ("confirmation", "thank_you", "reminder")
RESCHEDULE_DAYS = 14
MAX_OPTIONS = 200

# --- the page --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageView:
    """One visit as its page shows it, and what the patient may do now."""

    record: queries.VisitRecord
    choices: Choices
    cutoff_min: int
    deadline: datetime  # the last moment to cancel or reschedule
    masked_name: str


@dataclass(frozen=True)
class Confirmed:
    session_id: int
    booking_code: str
    starts_at: datetime
    already: bool  # confirmed before: nothing changed
    outbox_ids: list[int]


@dataclass(frozen=True)
class Moved:
    """A rescheduled visit: the new session and its own link token, and what cancelling the old one left to do
    (its time offered to the waitlist: the caller runs ``follow_ups`` in its transaction)."""

    session: Session
    token: str
    outbox_ids: list[int]
    follow_ups: tuple[FollowUp, ...] = ()


@dataclass(frozen=True)
class SlotOption:
    start: datetime
    doctor_id: int
    doctor_name: str


def _patient(record: queries.VisitRecord) -> Actor:
    return Actor(kind="patient", id=record.patient.id, name=record.patient.name)


def _cutoff(record: queries.VisitRecord) -> int:
    # Several examinations in one visit: the strictest cut-off applies to the whole visit.
    return max((e.cancel_cutoff_min for e in record.examinations), default=0)


def _choices(record: queries.VisitRecord, now: datetime) -> Choices:
    return page_choices(
        status=record.session.status,
        confirmed=record.session.confirmed_at is not None,
        starts_at=record.session.starts_at,
        cutoff_min=_cutoff(record),
        checked_in=record.checked_in,
        now=now,
    )


async def open_link(db: Db, claim: LinkClaim, *, lock: bool = False) -> queries.VisitRecord:
    """The visit a claim names; 404 ``link_invalid`` when it is gone or its booking code is not the claim's."""
    record = await queries.visit(db, claim.session_id, lock=lock)
    if record is None or record.session.booking_code != claim.booking_code:
        raise NotFound("link_invalid", "This link is not valid any more.")
    return record


async def page_view(db: Db, claim: LinkClaim, *, now: datetime | None = None) -> PageView:
    now = now or datetime.now(UTC)
    record = await open_link(db, claim)
    return PageView(
        record=record,
        choices=_choices(record, now),
        cutoff_min=_cutoff(record),
        deadline=change_deadline(record.session.starts_at, _cutoff(record)),
        masked_name=mask_name(record.patient.name) if record.patient.name else "",
    )


def _refuse_change(record: queries.VisitRecord, choices: Choices) -> None:
    if choices.can_change:
        return
    phone = record.branch.phone
    contact = f" Please call the clinic{' on ' + phone if phone else ''}."
    messages_by_reason = {
        "too_late": "It is too close to the visit to change it online.",
        "checked_in": "You are already checked in for this visit.",
        "cancelled": "This visit is cancelled.",
        "completed": "This visit has taken place.",
        "started": "This visit has started.",
    }
    why = choices.why_not or "started"
    raise Conflict(why, messages_by_reason[why] + contact, details={"phone": phone})


async def confirm_visit(
    db: Db, session_id: int, *, actor: Actor, now: datetime | None = None, via: str, default_language: str = "en"
) -> Confirmed:
    """Confirm a waiting visit (``accepted``, ``confirmed_at``, audit) and plan its check-in QR; once only.

    A second confirmation changes nothing (``already``); a visit that no longer waits is a 409 ``not_waiting``.
    The caller has checked that ``actor`` may (the link, or the patient's own chat).
    """
    now = now or datetime.now(UTC)
    if await queries.mark_confirmed(db, session_id, now=now):
        audit.record(db, actor, "session.confirmed", "session", session_id, {"via": via})
        ids = await send_checkin_qr(db, session_id, default_language=default_language)
        found = await queries.session(db, session_id)
        assert found is not None
        return Confirmed(found.id, found.booking_code, found.starts_at, already=False, outbox_ids=ids)
    found = await queries.session(db, session_id)
    if found is None:
        raise NotFound("not_found", f"There is no session {session_id}.")
    if found.status != "waiting":
        raise Conflict("not_waiting", f"Session {found.booking_code} is {found.status}; it cannot be confirmed.")
    return Confirmed(found.id, found.booking_code, found.starts_at, already=True, outbox_ids=[])


async def confirm_by_link(
    db: Db, claim: LinkClaim, *, now: datetime | None = None, default_language: str = "en"
) -> Confirmed:
    record = await open_link(db, claim, lock=True)
    return await confirm_visit(
        db, record.session.id, actor=_patient(record), now=now, via="link", default_language=default_language
    )


async def cancel_by_link(
    db: Db, claim: LinkClaim, *, reason: str, note: str | None, now: datetime | None = None
) -> lifecycle.SessionChange:
    """Cancel the visit with the patient's reason (``patient_request`` or ``other`` with a note); frees the time.
    The caller runs the change's follow-ups (the freed time offered to the waitlist)."""
    now = now or datetime.now(UTC)
    if reason not in PAGE_CANCEL_REASONS:
        raise Invalid(
            "invalid_reason", "Choose why you are cancelling.", details={"allowed": list(PAGE_CANCEL_REASONS)}
        )
    note = " ".join((note or "").split())[:MAX_NOTE_LENGTH] or None
    if reason in REASONS_REQUIRING_NOTE and note is None:
        raise Invalid("note_required", "Please tell us why you are cancelling.")
    record = await open_link(db, claim, lock=True)
    _refuse_change(record, _choices(record, now))
    return await lifecycle.cancel(db, record.session.id, actor=_patient(record), reason_code=reason, note=note, now=now)


async def reschedule_options(
    db: Db, claim: LinkClaim, *, now: datetime | None = None, days: int = RESCHEDULE_DAYS
) -> list[SlotOption]:
    """Free times for the same examination at the same branch over the next ``days`` days (any doctor)."""
    now = now or datetime.now(UTC)
    record = await open_link(db, claim)
    _refuse_change(record, _choices(record, now))
    if not record.examinations:
        return []
    ctx, slots = await availability.find_slots(
        db,
        branch_id=record.session.branch_id,
        examination_id=record.examinations[0].id,
        start=now,
        end=now + timedelta(days=days),
        now=now,
    )
    options = {
        (s.start, s.doctor_id): SlotOption(s.start, s.doctor_id, ctx.doctor_names.get(s.doctor_id, "")) for s in slots
    }
    return sorted(options.values(), key=lambda o: (o.start, o.doctor_name, o.doctor_id))[:MAX_OPTIONS]


async def reschedule_by_link(
    db: Db,
    claim: LinkClaim,
    *,
    start: datetime,
    doctor_id: int | None,
    secret: str,
    now: datetime | None = None,
    default_language: str = "en",
) -> Moved:
    """Move the visit to ``start``: cancel the old session and book the new one in the caller's transaction.

    The old session is cancelled first (its time freed), then the new time is booked with the same examinations
    through :func:`booking.book`, which the database refuses if the time went meanwhile (``slot_taken``): the
    caller's transaction then rolls back and the old visit stands. The new visit is confirmed (the patient chose
    it) and its check-in QR planned.
    """
    now = now or datetime.now(UTC)
    if start.tzinfo is None or start.utcoffset() is None:
        raise Invalid("naive_datetime", "The new time must include its time zone.")
    record = await open_link(db, claim, lock=True)
    _refuse_change(record, _choices(record, now))
    actor, old = _patient(record), record.session
    cancelled = await lifecycle.cancel(
        db, old.id, actor=actor, reason_code="patient_request",
        note="Rescheduled by the patient from the confirmation link.", now=now,
    )  # fmt: skip
    new = await booking.book(
        db,
        actor=actor,
        branch_id=old.branch_id,
        patient_id=old.patient_id,
        examination_ids=[e.id for e in record.examinations],
        start=start,
        doctor_id=doctor_id,
        now=now,
    )
    await queries.mark_confirmed(db, new.id, now=now)
    audit.record(
        db,
        actor,
        "session.rescheduled",
        "session",
        new.id,
        {"from_session": old.id, "from_code": old.booking_code, "starts_at": new.starts_at.isoformat(), "via": "link"},
    )
    ids = await send_checkin_qr(db, new.id, default_language=default_language)
    refreshed = await queries.session(db, new.id)
    assert refreshed is not None
    return Moved(refreshed, token_for(secret, refreshed), ids, cancelled.follow_ups)


# --- the rating ------------------------------------------------------------------------------------------


async def rate(
    db: Db, session_id: int, *, patient_id: int, rating: int, actor: Actor
) -> Literal["rated", "already_rated"]:
    """Store the patient's 1-5 rating of their completed visit (once: a second one is ``already_rated``)."""
    if rating not in RATINGS:
        raise Invalid("invalid_rating", "A rating is a whole number from 1 to 5.")
    if await queries.store_rating(db, session_id, patient_id=patient_id, rating=rating):
        audit.record(db, actor, "session.rated", "session", session_id, {"rating": rating})
        return "rated"
    found = await queries.session(db, session_id)
    if found is None or found.patient_id != patient_id:
        raise NotFound("not_found", f"There is no session {session_id}.")
    if found.rating is not None:
        return "already_rated"
    raise Conflict("not_completed", f"Session {found.booking_code} has not taken place yet.")


async def followup_options(db: Db, identity_id: int) -> tuple[str, ...]:
    """Button data of the last message we planned for this chat identity when it is a confirmation or thank-you
    (else empty): a bare "1".."n" typed now answers that message (WhatsApp shows buttons as numbered options).

    The outbox, not the conversation, is asked: a visit booked at the desk is confirmed on a channel the patient
    may never have written on, and their first reply opens the conversation."""
    return await notify.options_offered(db, identity_id, FOLLOWUP_KINDS)
