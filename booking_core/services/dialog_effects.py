"""What the chatbot asks for, done: each effect of :mod:`booking_core.domain.dialog` performed against the clinic.

Look up free days and times, hold a slot, put it on the lead or book it, cancel, reschedule, confirm or rate a
visit, look up the queue, hand over to staff. Each returns the outcome the dialog continues from (or None), and
works inside the caller's transaction; a change that may be refused runs in a savepoint, so a refusal is an
outcome, not a failed step. :data:`PERFORM` maps each effect's type to the function that performs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import conversation as queries
from booking_core.db.tables import ChannelIdentity, Conversation, Patient
from booking_core.domain.actors import Actor
from booking_core.domain.dialog import (
    AlreadyRated,
    Booked,
    BookingReceived,
    CancelVisit,
    ConfirmBooking,
    ConfirmVisit,
    DaysFound,
    FindDays,
    FindSlots,
    Handoff,
    Held,
    HoldSlot,
    NotChanged,
    NotInQueue,
    Outcome,
    QueuePlace,
    QueuePosition,
    Rated,
    RateVisit,
    ReleaseHold,
    Reschedule,
    Rescheduled,
    SlotsFound,
    SlotTaken,
    SlotUnavailable,
    VisitCancelled,
    VisitConfirmed,
)
from booking_core.services import (
    audit,
    availability,
    booking,
    confirmation,
    followups,
    lifecycle,
    queue,
    queue_replies,
    settings,
)
from booking_core.services.errors import Conflict, ServiceError

__all__ = ["PERFORM", "RESCHEDULE_REASON", "Step"]

RESCHEDULE_REASON = "patient_request"


@dataclass
class Step:
    """One message being answered: who it is from and the rows the effects work on."""

    db: Db
    conversation: Conversation
    identity: ChannelIdentity
    patient: Patient | None
    now: datetime
    default_language: str = "en"
    planned: list[int] = field(default_factory=list)  # outbox rows an effect wrote (the check-in QR)
    booked: list[int] = field(default_factory=list)  # sessions booked by this message: their confirmation follows

    @property
    def actor(self) -> Actor:
        name = self.patient.name if self.patient else self.identity.display_name
        return Actor(kind="patient", id=self.patient.id if self.patient else None, name=name)


async def _find_days(step: Step, effect: FindDays) -> Outcome:
    branch = await availability.queries.load_branch(step.db, effect.branch_id)
    if branch is None:
        return DaysFound(())
    zone = ZoneInfo(branch.tz)
    start = datetime.combine(effect.start, datetime.min.time(), zone)
    try:
        _, slots = await availability.find_slots(
            step.db,
            branch_id=effect.branch_id,
            examination_id=effect.examination_id,
            start=max(start, step.now),
            end=start + timedelta(days=effect.within_days),
            doctor_id=effect.doctor_id,
            now=step.now,
        )
    except ServiceError:
        return DaysFound(())
    days = list(dict.fromkeys(slot.start.astimezone(zone).date() for slot in slots))
    return DaysFound(tuple(days[: effect.limit]))


async def _find_slots(step: Step, effect: FindSlots) -> Outcome:
    branch = await availability.queries.load_branch(step.db, effect.branch_id)
    if branch is None:
        return SlotsFound(effect.day, ())
    zone = ZoneInfo(branch.tz)
    start = datetime.combine(effect.day, datetime.min.time(), zone)
    end = datetime.combine(effect.day + timedelta(days=1), datetime.min.time(), zone)
    if end <= step.now:
        return SlotsFound(effect.day, ())
    try:
        _, slots = await availability.find_slots(
            step.db,
            branch_id=effect.branch_id,
            examination_id=effect.examination_id,
            start=max(start, step.now),
            end=end,
            doctor_id=effect.doctor_id,
            now=step.now,
        )
    except ServiceError:
        return SlotsFound(effect.day, ())
    return SlotsFound(effect.day, tuple(dict.fromkeys(slot.start for slot in slots)))


def _alternatives(exc: ServiceError) -> tuple[datetime, ...]:
    details = exc.details if isinstance(exc.details, dict) else {}
    starts = []
    for item in details.get("alternatives") or []:
        try:
            starts.append(datetime.fromisoformat(str(item["start"])))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(starts)


def _refusal(exc: ServiceError) -> Outcome:
    return SlotTaken(_alternatives(exc)) if exc.code == "slot_taken" else SlotUnavailable()


async def _hold(step: Step, effect: HoldSlot) -> Outcome:
    try:
        async with step.db.begin_nested():
            row = await booking.hold(
                step.db,
                actor=step.actor,
                branch_id=effect.branch_id,
                examination_id=effect.examination_id,
                start=effect.start,
                doctor_id=effect.doctor_id,
                patient_id=step.patient.id if step.patient else None,
                conversation_id=step.conversation.id,
                now=step.now,
            )
    except ServiceError as exc:
        return _refusal(exc)
    return Held(row.id, row.starts_at, row.doctor_id)


async def _release(step: Step, effect: ReleaseHold) -> None:
    row = await queries.hold(step.db, effect.hold_id)
    if row is None or row.conversation_id != step.conversation.id or row.status != "active":
        return None
    try:
        async with step.db.begin_nested():
            await booking.release_hold(step.db, effect.hold_id, actor=step.actor)
    except ServiceError:
        pass  # expired or converted meanwhile: nothing to give back
    return None


async def _live_hold(step: Step, hold_id: int) -> int:
    """The hold, renewed if it lapsed while the patient read the summary; raises ``slot_taken`` if the time went."""
    row = await queries.hold(step.db, hold_id)
    if row is None or row.conversation_id != step.conversation.id:
        raise Conflict("hold_gone", "That held time is not yours.")
    if row.status == "active" and row.expires_at > step.now:
        return row.id
    renewed = await booking.hold(
        step.db,
        actor=step.actor,
        branch_id=row.branch_id,
        examination_id=row.examination_id,
        start=row.starts_at,
        doctor_id=row.doctor_id,
        patient_id=row.patient_id,
        conversation_id=step.conversation.id,
        now=step.now,
    )
    return renewed.id


async def _confirm(step: Step, effect: ConfirmBooking) -> Outcome:
    db, patient = step.db, step.patient
    try:
        async with db.begin_nested():
            hold_id = await _live_hold(step, effect.hold_id)
            held = await queries.hold(db, hold_id)
            assert held is not None
            lead = await queries.open_lead(db, step.conversation.id)
            if lead is None or lead.hold_id is not None or lead.requested_start is not None:
                # The open lead already carries an earlier request: this booking is a request of its own.
                lead = await queries.add_lead(
                    db,
                    {
                        "channel": step.conversation.channel,
                        "status": "new",
                        "conversation_id": step.conversation.id,
                        "patient_id": patient.id if patient else None,
                        "identity_id": step.identity.id,
                        "requested_text": "",
                        "created_at": step.now,
                        "updated_at": step.now,
                    },
                )
                created = {"channel": lead.channel, "via": "dialog"}
                audit.record(db, step.actor, "lead.created", "lead", lead.id, created)
            lead.branch_id, lead.examination_id, lead.doctor_id = held.branch_id, held.examination_id, held.doctor_id
            lead.requested_start, lead.hold_id, lead.updated_at = held.starts_at, held.id, step.now
            lead.contact_name = effect.name[:120] or lead.contact_name
            lead.contact_phone = effect.phone or lead.contact_phone
            if patient is not None and lead.patient_id is None:
                lead.patient_id = patient.id
            await db.flush()
            audit.record(
                db,
                step.actor,
                "lead.requested",
                "lead",
                lead.id,
                {"hold_id": held.id, "starts_at": held.starts_at.isoformat(), "examination_id": held.examination_id},
            )
            if patient is None or not await settings.get(db, "dialog_books_directly"):
                return BookingReceived(lead.id)
            session = await booking.convert_hold(
                db, held.id, actor=step.actor, patient_id=patient.id, lead_id=lead.id, now=step.now
            )
            lead.status, lead.updated_at = "converted", step.now
            audit.record(db, step.actor, "lead.converted", "lead", lead.id, {"session_id": session.id, "via": "dialog"})
            step.booked.append(session.id)
            return Booked(session.booking_code, session.starts_at)
    except ServiceError as exc:
        return _refusal(exc)


async def _own_visit(step: Step, visit_id: int) -> Any:
    found = await queries.session(step.db, visit_id)
    if found is None or step.patient is None or found.patient_id != step.patient.id:
        return None
    return found


async def _cancel(step: Step, effect: CancelVisit) -> Outcome:
    visit = await _own_visit(step, effect.visit_id)
    if visit is None:
        return NotChanged("not_found")
    try:
        async with step.db.begin_nested():
            cancelled = await lifecycle.cancel(
                step.db, visit.id, actor=step.actor, reason_code=effect.reason_code, note=effect.note, now=step.now
            )
            await followups.run(step.db, cancelled.follow_ups, now=step.now, default_language=step.default_language)
    except ServiceError as exc:
        return NotChanged(exc.code)
    return VisitCancelled(cancelled.session.booking_code)


async def _reschedule(step: Step, effect: Reschedule) -> Outcome:
    visit = await _own_visit(step, effect.visit_id)
    if visit is None or step.patient is None:
        return NotChanged("not_found")
    try:
        # One transaction (a savepoint of the caller's): the old visit is only cancelled if the new one is booked.
        async with step.db.begin_nested():
            hold_id = await _live_hold(step, effect.hold_id)
            cancelled = await lifecycle.cancel(
                step.db, visit.id, actor=step.actor, reason_code=RESCHEDULE_REASON, note="Rescheduled in chat.",
                now=step.now,
            )  # fmt: skip
            session = await booking.convert_hold(
                step.db, hold_id, actor=step.actor, patient_id=step.patient.id, now=step.now
            )
            await followups.run(step.db, cancelled.follow_ups, now=step.now, default_language=step.default_language)
            audit.record(
                step.db,
                step.actor,
                "session.rescheduled",
                "session",
                session.id,
                {"from_session": visit.id, "from_code": visit.booking_code, "starts_at": session.starts_at.isoformat()},
            )
    except ServiceError as exc:
        return _refusal(exc) if exc.code == "slot_taken" else NotChanged(exc.code)
    return Rescheduled(session.booking_code, session.starts_at)


async def _queue_position(step: Step, effect: QueuePosition) -> Outcome:
    visit = await _own_visit(step, effect.visit_id)
    if visit is None:
        return NotInQueue()
    ticket = await queue.position_for_session(step.db, visit.id, now=step.now)
    if ticket is None:
        return NotInQueue()
    await queue_replies.told(step.db, ticket)  # told here: the proactive "you are next" does not repeat it
    return QueuePlace(ticket.token, ticket.position, ticket.ahead, ticket.eta, ticket.doctor_name)


async def _confirm_visit(step: Step, effect: ConfirmVisit) -> Outcome:
    visit = await _own_visit(step, effect.visit_id)
    if visit is None:
        return NotChanged("not_found")
    try:
        async with step.db.begin_nested():
            done = await confirmation.confirm_visit(
                step.db, visit.id, actor=step.actor, now=step.now, via="chat", default_language=step.default_language
            )
    except ServiceError as exc:
        return NotChanged(exc.code)
    step.planned += done.outbox_ids
    return VisitConfirmed(done.booking_code, done.starts_at, already=done.already)


async def _rate_visit(step: Step, effect: RateVisit) -> Outcome:
    if step.patient is None:
        return NotChanged("not_found")
    try:
        async with step.db.begin_nested():
            result = await confirmation.rate(
                step.db, effect.visit_id, patient_id=step.patient.id, rating=effect.rating, actor=step.actor
            )
    except ServiceError as exc:
        return NotChanged(exc.code)
    return Rated(effect.rating) if result == "rated" else AlreadyRated()


async def _handoff(step: Step, effect: Handoff) -> None:
    step.conversation.bot_paused = True
    audit.record(step.db, step.actor, "conversation.handoff", "conversation", step.conversation.id, {"via": "dialog"})
    return None


PERFORM: dict[type, Callable[[Step, Any], Awaitable[Outcome | None]]] = {
    FindDays: _find_days,
    FindSlots: _find_slots,
    HoldSlot: _hold,
    ReleaseHold: _release,
    ConfirmBooking: _confirm,
    CancelVisit: _cancel,
    Reschedule: _reschedule,
    QueuePosition: _queue_position,
    Handoff: _handoff,
    ConfirmVisit: _confirm_visit,
    RateVisit: _rate_visit,
}
