"""Staff decisions on a lead: accept, reject (the patient is told on their own channel) and convert in one click.

Status changes are single ``UPDATE ... WHERE status IN (...) RETURNING`` statements, so two staff clicking at once
cannot both move a lead. Converting locks the lead row first: concurrent conversions of one lead queue up behind
the first, then find its session (``sessions.lead_id`` is unique) and return it. Everything a conversion writes
(patient match or merge, session, invoice, lead status, audit rows) is in the caller's one transaction, so a
``slot_taken`` refusal leaves nothing behind. Messages and follow-up jobs are enqueued by the caller after commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import ingest as ingest_queries
from booking_core.db.queries import lead_actions as queries
from booking_core.db.tables import Lead, Patient, Session, SlotHold
from booking_core.domain.actors import Actor
from booking_core.domain.phones import to_e164
from booking_core.services import audit, booking, ingest, messages, notify
from booking_core.services.errors import Conflict, Invalid, NotFound

OPEN = ("new", "accepted")  # a lead staff may still decide on
MAX_REASON = 500


@dataclass(frozen=True)
class Decision:
    """What accepting or rejecting did. ``changed`` is False for a repeat click (nothing written, nobody told)."""

    lead_id: int
    status: str
    changed: bool
    reject_reason: str | None = None
    outbox_id: int | None = None  # the patient's message: deliver after commit
    notified: bool = False  # False: no reachable channel (recorded in the audit row), or a repeat
    hold_released: bool = False


@dataclass(frozen=True)
class ConvertedSession:
    id: int
    booking_code: str
    branch_id: int
    patient_id: int
    doctor_id: int
    doctor_name: str
    room_id: int
    room_name: str
    starts_at: datetime
    ends_at: datetime
    status: str


@dataclass(frozen=True)
class Conversion:
    """The lead's session; ``created`` is False when the lead had been converted already (same session)."""

    lead_id: int
    patient_id: int
    session: ConvertedSession
    created: bool
    merged_patient_id: int | None = None  # the record folded into ``patient_id`` by this conversion


async def _visible(db: Db, lead_id: int, actor: Actor, *, lock: bool = False) -> Lead:
    lead = await (queries.lock_lead(db, lead_id) if lock else queries.lead(db, lead_id))
    # Branch staff see their branch's leads and those not tied to a branch yet (as in the inbox).
    if lead is None or (lead.branch_id is not None and not actor.can_see_branch(lead.branch_id)):
        raise NotFound("not_found", f"There is no lead {lead_id}.")
    return lead


def _refuse(lead_id: int, status: str) -> Conflict:
    if status == "rejected":
        return Conflict("lead_rejected", f"Lead {lead_id} was rejected; it cannot be accepted or converted.")
    if status == "converted":
        return Conflict("already_converted", f"Lead {lead_id} is already a booked visit.")
    return Conflict("lead_not_open", f"Lead {lead_id} is {status}.")  # pragma: no cover - every status is above


async def accept(
    db: Db, lead_id: int, *, actor: Actor, now: datetime | None = None, default_language: str = "en"
) -> Decision:
    """Accept a new lead and tell the patient; accepting it again changes nothing."""
    now = now or datetime.now(UTC)
    await _visible(db, lead_id, actor)
    moved = await queries.move_status(db, lead_id, to="accepted", allowed_from=("new",), now=now)
    if moved is None:
        current = await _visible(db, lead_id, actor)
        if current.status == "accepted":
            return Decision(lead_id, current.status, changed=False)
        raise _refuse(lead_id, current.status)
    outbox_id = await _tell_patient(db, moved, "lead_accepted", default_language=default_language)
    audit.record(db, actor, "lead.accepted", "lead", lead_id, {"notified": outbox_id is not None})
    return Decision(lead_id, moved.status, changed=True, outbox_id=outbox_id, notified=outbox_id is not None)


async def reject(
    db: Db,
    lead_id: int,
    *,
    actor: Actor,
    reason: str,
    now: datetime | None = None,
    default_language: str = "en",
) -> Decision:
    """Reject a new or accepted lead with a reason, give its held slot back and tell the patient why.

    Rejecting it again changes nothing; a converted lead is refused (``already_converted``): cancel its visit instead.
    """
    now = now or datetime.now(UTC)
    reason = " ".join(reason.split())[:MAX_REASON]
    if not reason:
        raise Invalid("reason_required", "Say why the request is rejected; the patient is told.")
    await _visible(db, lead_id, actor)
    moved = await queries.move_status(
        db, lead_id, to="rejected", allowed_from=OPEN, now=now, values={"reject_reason": reason}
    )
    if moved is None:
        current = await _visible(db, lead_id, actor)
        if current.status == "rejected":
            return Decision(lead_id, current.status, changed=False, reject_reason=current.reject_reason)
        raise _refuse(lead_id, current.status)
    released = False
    if moved.hold_id is not None:
        held = await queries.hold(db, moved.hold_id)
        if held is not None and held.status == "active":
            await booking.release_hold(db, held.id, actor=actor)
            released = True
    outbox_id = await _tell_patient(db, moved, "lead_rejected", reason=reason, default_language=default_language)
    audit.record(
        db,
        actor,
        "lead.rejected",
        "lead",
        lead_id,
        {"reason": reason, "notified": outbox_id is not None, "hold_released": released},
    )
    return Decision(
        lead_id,
        moved.status,
        changed=True,
        reject_reason=reason,
        outbox_id=outbox_id,
        notified=outbox_id is not None,
        hold_released=released,
    )


async def _tell_patient(
    db: Db, lead: Lead, kind: str, *, reason: str | None = None, default_language: str
) -> int | None:
    """The outbox row telling the patient about ``lead`` on its channel (once: a dedupe key); None if unreachable."""
    patient = await queries.living_patient(db, lead.patient_id)
    if patient is None:
        return None
    branch, examination, doctor = await queries.names(
        db, branch_id=lead.branch_id, examination_id=lead.examination_id, doctor_id=lead.doctor_id
    )
    start = None
    if lead.requested_start is not None and branch is not None:
        start = lead.requested_start.astimezone(ZoneInfo(branch.tz)).isoformat(timespec="minutes")

    def notice(lang: str) -> notify.Notice:
        text = messages.render(
            lang,
            kind,
            name=(patient.name or lead.contact_name).strip(),
            examination=examination,
            doctor=doctor,
            branch=branch.name if branch else None,
            start=start,
            reason=reason,
        )
        return notify.Notice(text, template_values={"text": text})

    told = await notify.tell(
        db, patient.id, kind, notice, dedupe_key=f"lead-{lead.id}-{kind}", prefer_channel=lead.channel,
        author="staff", default_language=default_language,
    )  # fmt: skip
    return told.outbox_id if told is not None else None


async def convert(
    db: Db,
    lead_id: int,
    *,
    actor: Actor,
    start: datetime | None = None,
    doctor_id: int | None = None,
    room_id: int | None = None,
    examination_ids: Sequence[int] | None = None,
    branch_id: int | None = None,
    now: datetime | None = None,
) -> Conversion:
    """Turn a lead into a session in the caller's transaction: match (or create, or merge) the patient, then
    convert the lead's hold, or book the slot staff picked; the invoice comes with the booking.

    Without a pick, the lead's hold is converted (a lapsed hold is booked afresh at its time if still free), else
    the lead's requested time is booked. A repeat returns the existing session with ``created=False``. Refusals:
    ``lead_rejected``, ``slot_taken`` (with alternatives; the caller rolls back), ``start_required``, ...
    """
    now = now or datetime.now(UTC)
    if start is not None and (start.tzinfo is None or start.utcoffset() is None):
        raise Invalid("naive_datetime", "start must include a time zone offset, e.g. 2026-12-01T09:00:00+07:00.")
    lead = await _visible(db, lead_id, actor, lock=True)
    if lead.status == "rejected":
        raise _refuse(lead_id, lead.status)
    existing = await queries.session_of_lead(db, lead.id)
    if existing is not None:
        return Conversion(lead.id, existing.patient_id, await converted_session(db, existing), created=False)
    if lead.status == "converted":  # converted once, but its visit is gone (deleted): a new one needs a new lead
        raise _refuse(lead_id, lead.status)
    patient, merged = await _match_patient(db, lead, actor=actor)
    held = await queries.hold(db, lead.hold_id) if lead.hold_id is not None else None
    picked = _picked_another_slot(held, start, doctor_id, room_id, examination_ids, branch_id)
    if held is not None and not picked:
        session = await booking.convert_hold(db, held.id, actor=actor, patient_id=patient.id, lead_id=lead.id, now=now)
    else:
        if held is not None and held.status == "active":
            # Give the held time back first: staff may pick a slot that overlaps it (another doctor, a longer visit).
            await booking.release_hold(db, held.id, actor=actor)
        session = await _book_picked(
            db,
            lead,
            held,
            actor=actor,
            patient_id=patient.id,
            start=start,
            doctor_id=doctor_id,
            room_id=room_id,
            examination_ids=examination_ids,
            branch_id=branch_id,
            now=now,
        )
    moved = await queries.move_status(
        db,
        lead.id,
        to="converted",
        allowed_from=OPEN,
        now=now,
        values={"patient_id": patient.id, "branch_id": lead.branch_id or session.branch_id},
    )
    assert moved is not None  # the lead is locked and was open
    audit.record(
        db,
        actor,
        "lead.converted",
        "lead",
        lead.id,
        {"session_id": session.id, "patient_id": patient.id, "from_hold": held is not None and not picked},
    )
    return Conversion(lead.id, patient.id, await converted_session(db, session), created=True, merged_patient_id=merged)


def _picked_another_slot(
    held: SlotHold | None,
    start: datetime | None,
    doctor_id: int | None,
    room_id: int | None,
    examination_ids: Sequence[int] | None,
    branch_id: int | None,
) -> bool:
    """Did staff choose something other than what the lead's hold keeps? (Repeating the hold's own values is not.)"""
    if held is None:
        return any(v is not None for v in (start, doctor_id, room_id, examination_ids, branch_id))
    return (
        (start is not None and start != held.starts_at)
        or (doctor_id is not None and doctor_id != held.doctor_id)
        or (room_id is not None and room_id != held.room_id)
        or (examination_ids is not None and list(examination_ids) != [held.examination_id])
        or (branch_id is not None and branch_id != held.branch_id)
    )


async def _book_picked(
    db: Db,
    lead: Lead,
    held: SlotHold | None,
    *,
    actor: Actor,
    patient_id: int,
    start: datetime | None,
    doctor_id: int | None,
    room_id: int | None,
    examination_ids: Sequence[int] | None,
    branch_id: int | None,
    now: datetime,
) -> Session:
    """Book what staff picked, filling the gaps from the lead's hold and request."""
    branch = branch_id or (held.branch_id if held else None) or lead.branch_id
    if branch is None:
        raise Invalid("branch_required", "Choose the branch for this visit.")
    exams: list[int] = list(examination_ids or [])
    if not exams:
        exam = held.examination_id if held else lead.examination_id
        if exam is None:
            raise Invalid("examination_required", "Choose the examination for this visit.")
        exams = [exam]
    when = start or (held.starts_at if held else None) or lead.requested_start
    if when is None:
        raise Invalid("start_required", "Choose a time for this visit; the request names none.")
    # The doctor the patient asked for still applies to the same examination, not to one staff changed.
    doctor = doctor_id if doctor_id is not None else (lead.doctor_id if examination_ids is None else None)
    return await booking.book(
        db,
        actor=actor,
        branch_id=branch,
        patient_id=patient_id,
        examination_ids=exams,
        start=when,
        doctor_id=doctor,
        room_id=room_id,
        lead_id=lead.id,
        now=now,
    )


async def _match_patient(db: Db, lead: Lead, *, actor: Actor) -> tuple[Patient, int | None]:
    """The lead's patient: by the lead, its channel identity, or its E.164 phone; created when none is known.

    When the lead's patient and the phone's patient are two records, they are merged (the older one is kept).
    Returns the patient and the id of the record folded into it, if any.
    """
    current = await queries.living_patient(db, lead.patient_id)
    identity = await queries.identity(db, lead.identity_id)
    if current is None and identity is not None:
        current = await queries.living_patient(db, identity.patient_id)
    phone = to_e164(lead.contact_phone)
    known = await ingest_queries.living_patient_by_phone(db, phone) if phone is not None else None
    merged: int | None = None
    if current is None and known is None:
        patient = await ingest_queries.add_patient(db, name=lead.contact_name, phone=phone, language=None)
        audit.record(db, actor, "patient.created", "patient", patient.id, {"lead_id": lead.id})
    elif current is None:
        assert known is not None
        patient = known
    elif known is None or known.id == current.id:
        patient = current
        if phone is not None and current.phone_e164 is None:
            current.phone_e164 = phone
    else:
        patient = await ingest.merge_same_person(db, current, known, phone=phone, actor=actor, via="lead")
        merged = known.id if patient.id == current.id else current.id
    if identity is not None and identity.patient_id is None:
        await ingest_queries.link_identity(db, identity.id, patient.id)
    await db.flush()
    return patient, merged


async def converted_session(db: Db, session: Session) -> ConvertedSession:
    """The session a lead became, with its doctor's and room's names."""
    doctor, room = await queries.doctor_and_room_names(db, doctor_id=session.doctor_id, room_id=session.room_id)
    return ConvertedSession(
        id=session.id,
        booking_code=session.booking_code,
        branch_id=session.branch_id,
        patient_id=session.patient_id,
        doctor_id=session.doctor_id,
        doctor_name=doctor,
        room_id=session.room_id,
        room_name=room,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        status=session.status,
    )
