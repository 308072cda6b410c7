"""What follows a booking on the patient's side: the confirmation link and its page, the check-in QR, the rating.

* The **link** ``PUBLIC_BASE_URL/c/<token>`` carries a token signed with ``SECRET_KEY`` (itsdangerous, its own
  salt) naming the session *and* its booking code, valid until a day after the visit ends. A tampered, expired or
  foreign token, or one whose session is gone or carries another code, opens nothing (:func:`open_link` → 404).
* On the page the patient **confirms** (``accepted``, ``confirmed_at``; the check-in QR follows), **cancels**
  with a reason (through :func:`booking_core.services.lifecycle.cancel`, so the time frees) or **reschedules**
  (the old visit cancelled and the new time booked in the caller's one transaction). Cancel and reschedule stop at
  the examination's cut-off before the visit (``too_late``, with the clinic's phone in the details).
* Messages (confirmation, check-in QR, thank-you) are outbox rows with a dedupe key, so a job run twice writes
  one row; a patient with no reachable channel is recorded (audit) and skipped.
* The chat answers the same way: :func:`confirm_visit` and :func:`rate` are what "1" / "2" and the buttons do.

Every change leaves an audit row with the patient as actor, in the same transaction.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import segno
from itsdangerous import BadSignature, URLSafeTimedSerializer

from booking_core.db.engine import Db
from booking_core.db.queries import confirmation as queries
from booking_core.db.tables import Session
from booking_core.domain.actors import SYSTEM, Actor
from booking_core.domain.codes import mask_name
from booking_core.domain.dialog import LANGUAGES
from booking_core.domain.followups import FollowUp
from booking_core.domain.lifecycle import MAX_NOTE_LENGTH, REASONS_REQUIRING_NOTE
from booking_core.domain.links import (
    PAGE_CANCEL_REASONS,
    RATINGS,
    Choices,
    change_deadline,
    checkin_content,
    confirm_buttons,
    link_expires_at,
    page_choices,
    rating_buttons,
)
from booking_core.domain.messages import Button, Image
from booking_core.services import audit, availability, booking, lifecycle, messages, notify
from booking_core.services.errors import Conflict, Invalid, NotFound

__all__ = [
    "FOLLOWUP_KINDS",
    "LINK_SALT",
    "Confirmed",
    "LinkClaim",
    "Moved",
    "PageView",
    "SlotOption",
    "cancel_by_link",
    "checkin_qr_png",
    "checkin_qr_svg",
    "confirm_by_link",
    "confirm_visit",
    "followup_options",
    "link_token",
    "link_url",
    "open_link",
    "page_view",
    "rate",
    "read_link",
    "reschedule_by_link",
    "reschedule_options",
    "send_checkin_qr",
    "send_confirmation",
    "send_thank_you",
]

LINK_SALT = "frontdesk.confirmation-link"
#: However far ahead a visit is booked, no link is honoured longer than this after it was made.
MAX_LINK_AGE = timedelta(days=400)
#: Outbox kinds whose buttons a bare "1".."n" in the chat answers while they are the latest thing we wrote.
FOLLOWUP_KINDS = ("confirmation", "thank_you", "reminder")
RESCHEDULE_DAYS = 14
MAX_OPTIONS = 200

Kind = Literal["confirmation", "checkin_qr", "thank_you"]


# --- the link --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkClaim:
    """What a valid token says: which session (by id and booking code), until when."""

    session_id: int
    booking_code: str
    expires_at: datetime


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=LINK_SALT)


def link_token(secret: str, session_id: int, booking_code: str, *, expires_at: datetime) -> str:
    """A signed token for the session's page, good until ``expires_at`` (normally the visit's end + 1 day)."""
    return str(_serializer(secret).dumps({"s": session_id, "c": booking_code, "x": int(expires_at.timestamp())}))


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/c/{token}"


def read_link(secret: str, token: object, *, now: datetime | None = None) -> LinkClaim | None:
    """The claim of a genuine, unexpired token; None for anything else (never an error)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 400:
        return None
    try:
        data = _serializer(secret).loads(token, max_age=int(MAX_LINK_AGE.total_seconds()))
    except BadSignature:  # also SignatureExpired and BadPayload
        return None
    if not isinstance(data, dict):
        return None
    session_id, code, expires = data.get("s"), data.get("c"), data.get("x")
    if not (isinstance(session_id, int) and session_id > 0 and isinstance(code, str) and isinstance(expires, int)):
        return None
    expires_at = datetime.fromtimestamp(expires, UTC)
    if (now or datetime.now(UTC)) >= expires_at:
        return None
    return LinkClaim(session_id, code, expires_at)


def _token_for(secret: str, session: Session) -> str:
    return link_token(secret, session.id, session.booking_code, expires_at=link_expires_at(session.ends_at))


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
    return Moved(refreshed, _token_for(secret, refreshed), ids, cancelled.follow_ups)


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


# --- messages --------------------------------------------------------------------------------------------


def checkin_qr_png(booking_code: str) -> bytes:
    """The check-in QR (a full QR code, never a Micro QR that desk scanners may not read) as a PNG."""
    out = io.BytesIO()
    segno.make_qr(checkin_content(booking_code), error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()


def checkin_qr_svg(booking_code: str) -> str:
    """The same QR as an SVG data URI, for the confirmation page."""
    return str(segno.make_qr(checkin_content(booking_code), error="m").svg_data_uri(scale=6, border=4))


def _lang(lang: str) -> str:
    return lang if lang in LANGUAGES else "en"


def _label(lang: str, sheet: str, key: str, **values: Any) -> str:
    """A button label: macro ``key`` of ``templates/messages/<lang>/<sheet>.txt``."""
    lang = _lang(lang)
    module = messages.environment().get_template(f"{lang}/{sheet}.txt").make_module({"lang": lang})
    return str(getattr(module, key)(**values)).strip()


def _visit_values(record: queries.VisitRecord) -> dict[str, Any]:
    zone = ZoneInfo(record.branch.tz)
    first = record.patient.name.split()[0] if record.patient.name.split() else ""
    return {
        "name": first,
        "code": record.session.booking_code,
        "start": record.session.starts_at.astimezone(zone).isoformat(timespec="minutes"),
        "examination": ", ".join(e.name for e in record.examinations),
        "doctor": record.doctor.name,
        "branch": record.branch.name,
        "address": record.branch.address or "",
        "phone": record.branch.phone or "",
        "hint": None,
    }


async def _plan(
    db: Db,
    record: queries.VisitRecord,
    kind: Kind,
    *,
    template: str,
    values: dict[str, Any],
    buttons: list[tuple[str, str, str, dict[str, Any]]],
    image: Image | None = None,
    dedupe_key: str,
    default_language: str,
) -> list[int]:
    """Write one message of ``kind`` to the patient's channel; [] when nobody can be reached (recorded)."""

    def notice(lang: str) -> notify.Notice:
        lang = _lang(lang)
        return notify.Notice(
            messages.render(lang, template, **values),
            buttons=tuple(Button(_label(lang, sheet, key, **kw), data) for sheet, key, data, kw in buttons),
            image=image,
            template_values={"name": values["name"], "code": values["code"], "link": values.get("link", "")},
        )

    told = await notify.tell(
        db, record.patient.id, kind, notice, dedupe_key=dedupe_key,
        prefer_channel=await queries.lead_channel(db, record.session.lead_id), default_language=default_language,
    )  # fmt: skip
    if told is None:
        audit.record(
            db, SYSTEM, f"{kind}.unreachable", "session", record.session.id,
            {"patient_id": record.patient.id, "reason": "no channel to reach the patient"},
        )  # fmt: skip
        return []
    return [told.outbox_id] if told.outbox_id is not None else []


async def send_confirmation(
    db: Db, session_id: int, *, secret: str, base_url: str, default_language: str = "en"
) -> list[int]:
    """Plan the confirmation message (link, Confirm / Cancel buttons) for a waiting visit; once per session."""
    record = await queries.visit(db, session_id)
    if record is None or record.session.status != "waiting":
        return []
    yes, no = confirm_buttons(session_id)
    values = {**_visit_values(record), "link": link_url(base_url, _token_for(secret, record.session))}
    return await _plan(
        db, record, "confirmation", template="confirmation", values=values,
        buttons=[("confirmation_buttons", "confirm", yes, {}), ("confirmation_buttons", "cancel", no, {})],
        dedupe_key=f"confirm:{session_id}", default_language=default_language,
    )  # fmt: skip


async def send_checkin_qr(db: Db, session_id: int, *, default_language: str = "en") -> list[int]:
    """Plan the check-in QR (PNG of "FD:<booking code>") for an accepted, waiting visit; once per session."""
    record = await queries.visit(db, session_id)
    if record is None or record.session.status != "waiting" or not record.session.accepted:
        return []
    code = record.session.booking_code
    image = Image(checkin_qr_png(code), filename=f"check-in-{code}.png")
    return await _plan(
        db, record, "checkin_qr", template="checkin_qr", values=_visit_values(record), buttons=[], image=image,
        dedupe_key=f"checkin-qr:{session_id}", default_language=default_language,
    )  # fmt: skip


async def send_thank_you(db: Db, session_id: int, *, default_language: str = "en") -> list[int]:
    """Plan the thank-you with 1-5 rating buttons for a completed, unrated visit; once per session."""
    record = await queries.visit(db, session_id)
    if record is None or record.session.status != "completed" or record.session.rating is not None:
        return []
    buttons = [
        ("rating_buttons", "stars", data, {"n": n}) for n, data in zip(RATINGS, rating_buttons(session_id), strict=True)
    ]
    return await _plan(
        db, record, "thank_you", template="thank_you", values=_visit_values(record), buttons=buttons,
        dedupe_key=f"thanks:{session_id}", default_language=default_language,
    )  # fmt: skip
