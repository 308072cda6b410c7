"""Appointments patients booked (chat, web, form) that the front desk has not accepted yet: list, accept, reject.

Accepting marks the visit ``accepted`` (what a patient's own confirmation also does) and sends the patient their
check-in QR; rejecting is cancelling with one of the clinic's reasons, which frees the time. A visit staff book
(desk, lead conversion, calendar) is accepted by booking it, so it is never listed here. Check-in, start and
complete need an accepted visit (:mod:`booking_core.domain.lifecycle`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from booking_core.db.engine import Db
from booking_core.db.queries import appointments as queries
from booking_core.db.queries import sessions as session_queries
from booking_core.db.tables import Session
from booking_core.domain.actors import Actor
from booking_core.services import audit, invoicing, lifecycle, visit_messages
from booking_core.services.errors import Conflict, Forbidden, NotFound

__all__ = ["Accepted", "Appointment", "accept", "new_appointments", "reject"]

DESK = ("owner", "admin", "staff")


@dataclass(frozen=True)
class Appointment:
    id: int
    booking_code: str
    branch_id: int
    branch_name: str
    branch_tz: str
    patient_name: str
    patient_phone: str | None
    doctor_name: str
    room_name: str
    examinations: list[str]
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    from_lead: bool


@dataclass(frozen=True)
class Accepted:
    session: Session
    changed: bool
    outbox_ids: list[int]


def _desk_only(actor: Actor, what: str) -> None:
    if actor.kind == "staff" and actor.role not in DESK:
        raise Forbidden("forbidden", f"The front desk {what} appointments; ask them.")


async def new_appointments(
    db: Db, *, actor: Actor, branch_id: int | None = None, now: datetime | None = None, limit: int = 100
) -> list[Appointment]:
    """Upcoming visits not accepted yet, newest booking first; a doctor sees their own, branch staff their branch."""
    now = now or datetime.now(UTC)
    if branch_id is not None and not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")
    if branch_id is None and actor.kind == "staff":
        branch_id = actor.branch_id
    doctor_id = None
    if actor.kind == "staff" and actor.role == "doctor":
        if actor.doctor_id is None:
            return []
        doctor_id = actor.doctor_id
    rows = await queries.not_accepted(db, branch_id=branch_id, doctor_id=doctor_id, after=now, limit=limit)
    return [
        Appointment(
            id=r.session.id,
            booking_code=r.session.booking_code,
            branch_id=r.session.branch_id,
            branch_name=r.branch_name,
            branch_tz=r.branch_tz,
            patient_name=r.patient_name,
            patient_phone=r.patient_phone,
            doctor_name=r.doctor_name,
            room_name=r.room_name,
            examinations=r.examinations,
            starts_at=r.session.starts_at,
            ends_at=r.session.ends_at,
            created_at=r.session.created_at,
            from_lead=r.session.lead_id is not None,
        )
        for r in rows
    ]


async def accept(
    db: Db,
    session_id: int,
    *,
    actor: Actor,
    default_language: str = "en",
    via: str = "front_desk",
    send_qr: bool = True,
) -> Accepted:
    """Accept a waiting visit and send the patient's check-in QR; accepting it again changes nothing.

    The one accept there is: the appointments list, the visit's page and the scanner's "accept and check in" (which
    passes ``send_qr=False``: the patient is at the desk) all come here. Visits staff book are accepted by booking
    them and never need it. Another branch's visit is 404; a doctor's sign-in is 403; a visit no longer waiting is
    409 ``not_waiting``.
    """
    _desk_only(actor, "accepts")
    session = await session_queries.lock_session(db, session_id)
    if session is None:
        raise NotFound("not_found", f"There is no session {session_id}.")
    invoicing.check_session_access(actor, session)
    if session.status != "waiting":
        raise Conflict("not_waiting", f"Session {session.booking_code} is {session.status}; it cannot be accepted.")
    if not await queries.mark_accepted(db, session_id):
        return Accepted(session, changed=False, outbox_ids=[])
    await db.refresh(session)
    audit.record(db, actor, "session.accepted", "session", session_id, {"via": via})
    if not send_qr:
        return Accepted(session, changed=True, outbox_ids=[])
    ids = await visit_messages.send_checkin_qr(db, session_id, default_language=default_language)
    return Accepted(session, changed=True, outbox_ids=ids)


async def reject(
    db: Db,
    session_id: int,
    *,
    actor: Actor,
    reason_code: str | None,
    note: str | None = None,
    booking_link: str | None = None,
    default_language: str = "en",
) -> lifecycle.SessionChange:
    """Turn an appointment down: cancel it with one of the clinic's reasons (frees the time, voids the draft
    invoice, audited by the lifecycle); the caller runs its follow-ups."""
    _desk_only(actor, "rejects")
    return await lifecycle.cancel(
        db, session_id, actor=actor, reason_code=reason_code, note=note,
        booking_link=booking_link, default_language=default_language,
    )  # fmt: skip
