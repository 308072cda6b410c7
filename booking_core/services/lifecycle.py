"""Session lifecycle: start, complete, cancel, and auto-complete past visits (deleting one for good is
:mod:`booking_core.services.session_deletion`).

Every change locks the session row first (``SELECT ... FOR UPDATE``), so of two concurrent changes the second
sees the first one's result and is refused by :func:`booking_core.domain.lifecycle.transition`. Leaving the active
statuses frees the session's time claim (``occupancies.active = false``) in the same transaction.

When staff cancel a visit, the patient is told on their own channel (:data:`NOTICE`, once per visit); a patient
who cancels themselves (chat, confirmation link) is answered there and gets nothing more from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import billing as billing_queries
from booking_core.db.queries import confirmation as visit_queries
from booking_core.db.queries import sessions as queries
from booking_core.db.tables import Branch, Doctor, Patient, Room, SessionLine
from booking_core.db.tables import Invoice as InvoiceRecord
from booking_core.db.tables import Session as SessionRecord
from booking_core.domain.actors import SYSTEM, Actor
from booking_core.domain.commission import CommissionKind, CommissionRule, session_commissions
from booking_core.domain.followups import FollowUp, OfferFreedTime, ThankYou
from booking_core.domain.invoice import ExaminationLine
from booking_core.domain.lifecycle import (
    ACTIVE_STATUSES,
    REASONS_REQUIRING_NOTE,
    START_DAYS_SETTING,
    InvalidCancelReason,
    InvalidTransition,
    SessionStatus,
    StepRefused,
    VisitFacts,
    step_refusal,
    transition,
)
from booking_core.domain.lifecycle import auto_complete_past as lies_in_the_past
from booking_core.domain.lifecycle import start_days_ahead as read_start_days
from booking_core.domain.messages import Button
from booking_core.services import (
    audit,
    invoicing,
    messages,
    notify,
    queue_replies,
    reminders,
    settings,
)
from booking_core.services.errors import Conflict, Forbidden, Invalid, NotFound

__all__ = [
    "NOTICE",
    "SILENT_CANCEL_REASONS",
    "START_DAYS_SETTING",
    "CancelReasons",
    "SessionChange",
    "SessionDetail",
    "auto_complete_past",
    "cancel",
    "cancel_reasons",
    "complete",
    "detail",
    "locked",
    "start",
    "start_days_ahead",
    "step_error",
    "step_refusal_for",
    "visit_facts",
]


#: The message (template and outbox kind) telling a patient that the clinic cancelled their visit.
NOTICE = "cancelled_by_clinic"
#: Reasons after which the patient is not told: a no-show is recorded once they stayed away, and "we had to cancel
#: your visit" would be wrong.
SILENT_CANCEL_REASONS: frozenset[str] = frozenset({"no_show"})


@dataclass(frozen=True)
class SessionDetail:
    """A session with everything a staff screen shows next to it."""

    session: SessionRecord
    branch: Branch
    patient: Patient
    doctor: Doctor
    room: Room
    lines: list[SessionLine]
    invoice: InvoiceRecord | None


@dataclass(frozen=True)
class SessionChange:
    """A session after a status change, and what the change leaves for others to do (a thank-you, a waitlist offer):
    the caller runs ``follow_ups`` in its transaction (:func:`booking_core.services.followups.run`)."""

    session: SessionRecord
    follow_ups: tuple[FollowUp, ...] = ()


@dataclass(frozen=True)
class CancelReasons:
    """The clinic's cancel reasons, and which of them need a note."""

    reasons: list[str]
    requires_note: list[str]


async def cancel_reasons(db: Db) -> CancelReasons:
    """The configured list (``settings["cancel_reasons"]``: codes, or objects with a ``code``)."""
    configured = await settings.get(db, "cancel_reasons")
    reasons: list[str] = []
    for item in configured if isinstance(configured, list) else []:
        code = item.get("code") if isinstance(item, dict) else item
        if isinstance(code, str) and code and code not in reasons:
            reasons.append(code)
    return CancelReasons(reasons=reasons, requires_note=[r for r in reasons if r in REASONS_REQUIRING_NOTE])


async def locked(db: Db, session_id: int, actor: Actor) -> SessionRecord:
    """The session, locked for a change (404 unknown, 403 for a doctor's colleague's session)."""
    session = await queries.lock_session(db, session_id)
    if session is None:
        raise NotFound("not_found", f"There is no session {session_id}.")
    invoicing.check_session_access(actor, session)
    return session


async def _commissions(db: Db, session: SessionRecord, currency: str) -> tuple[Decimal, Decimal]:
    """Doctor and manager commission on the session's examinations, by each examination's rules."""
    lines = [(line, line.examination_id) for line in await queries.lines(db, session.id) if line.examination_id]
    exams = await queries.examinations(db, [exam_id for _, exam_id in lines])
    try:
        entries = [
            (
                ExaminationLine(exam_id, line.name, line.unit_price, line.quantity, line.taxable),
                CommissionRule(cast(CommissionKind, exams[exam_id].doctor_commission_kind),
                               exams[exam_id].doctor_commission_value),
                CommissionRule(cast(CommissionKind, exams[exam_id].manager_commission_kind),
                               exams[exam_id].manager_commission_value),
            )
            for line, exam_id in lines
        ]  # fmt: skip
        return session_commissions(entries, currency)
    except (TypeError, ValueError) as exc:
        raise Invalid("invalid_amount", f"The commission cannot be computed: {exc}") from None


async def _close(
    db: Db,
    session: SessionRecord,
    values: dict[str, Any],
    *,
    actor: Actor,
    now: datetime,
    action: str,
    data: dict[str, Any],
) -> SessionChange:
    """Write a status change; leaving the active statuses frees the time, completing settles the money. A cancelled
    visit's time is left to be offered to the waitlist (a follow-up)."""
    target = SessionStatus(values["status"])
    if target is SessionStatus.COMPLETED:
        branch = await queries.get_branch(db, session.branch_id)
        assert branch is not None
        doctor_cut, manager_cut = await _commissions(db, session, branch.currency)
        values = {**values, "doctor_commission": doctor_cut, "manager_commission": manager_cut}
    if target not in ACTIVE_STATUSES:
        await queries.release_occupancy(db, session.occupancy_id)
    await queries.update_session(db, session.id, values)
    await db.refresh(session)
    if target is SessionStatus.COMPLETED:
        invoice = await invoicing.finalise(db, session.id, actor=actor, now=now)
        data = {**data, "invoice_id": invoice.id}
    elif target is SessionStatus.CANCELLED:
        voided = await invoicing.void_draft(db, session.id, actor=actor)
        data = {**data, "invoice_id": voided.id if voided else None}
    audit.record(db, actor, action, "session", session.id, data)
    await reminders.sync_session(db, session.id, now=now)  # a visit that stopped waiting needs no reminder
    await queue_replies.after_session_change(db, session.id, now=now)  # who is next or second now
    if target is SessionStatus.CANCELLED:
        return SessionChange(session, (OfferFreedTime(session.id),))
    return SessionChange(session)


async def start_days_ahead(db: Db) -> int:
    """The clinic's :data:`START_DAYS_SETTING` (days before its own day a visit may be started), 0 by default."""
    return read_start_days(await settings.get(db, START_DAYS_SETTING))


async def visit_facts(db: Db, session: SessionRecord) -> VisitFacts:
    """What :func:`booking_core.domain.lifecycle.step_refusal` needs about ``session``."""
    branch = await queries.get_branch(db, session.branch_id)
    assert branch is not None  # sessions reference their branch
    return VisitFacts(accepted=session.accepted, starts_at=session.starts_at, ends_at=session.ends_at, tz=branch.tz)


def step_error(exc: StepRefused) -> Conflict | Invalid:
    """The service error for a refused step: a missing or long reason is the form's fault (422), the rest 409."""
    if exc.code.startswith("reason_"):
        return Invalid(exc.code, str(exc))
    return Conflict(exc.code, str(exc))


async def step_refusal_for(
    db: Db, session: SessionRecord, target: SessionStatus, *, now: datetime
) -> StepRefused | None:
    """Why ``session`` cannot take ``target`` now without back-dating (pages use it to offer only what works)."""
    return step_refusal(target, await visit_facts(db, session), now=now, days_ahead=await start_days_ahead(db))


async def _change(
    db: Db,
    session_id: int,
    target: SessionStatus,
    *,
    actor: Actor,
    now: datetime | None,
    reason_code: str | None = None,
    note: str | None = None,
    booking_link: str | None = None,
    default_language: str = "en",
    backdated: bool = False,
    backdated_reason: str | None = None,
) -> SessionChange:
    now = now or datetime.now(UTC)
    session = await locked(db, session_id, actor)
    allowed: Sequence[str] = ()
    if target is SessionStatus.CANCELLED:
        if actor.kind == "staff" and actor.role == "doctor":
            raise Forbidden("forbidden", "The front desk cancels sessions; ask them.")
        allowed = (await cancel_reasons(db)).reasons
    if backdated and actor.kind != "staff":
        raise Forbidden("forbidden", "Only staff enter visits back-dated.")
    at = now
    try:
        transition(SessionStatus(session.status), target, at=now, reason_code=reason_code, note=note,
                   allowed_reasons=allowed)  # fmt: skip
        refusal = step_refusal(
            target,
            await visit_facts(db, session),
            now=now,
            days_ahead=await start_days_ahead(db),
            backdated=backdated,
            backdated_reason=backdated_reason,
        )
        if refusal is not None:
            raise step_error(refusal)
        if backdated:
            at = _backdated_time(session, target, now)
        result = transition(
            SessionStatus(session.status), target, at=at, reason_code=reason_code, note=note, allowed_reasons=allowed
        )
    except InvalidTransition as exc:
        raise Conflict(exc.code, f"Session {session.booking_code}: {exc}.") from None
    except InvalidCancelReason as exc:
        raise Invalid(exc.code, f"{str(exc).capitalize()}.", details={"allowed": list(allowed)}) from None
    values: dict[str, Any] = {"status": result.status.value, **result.timestamps()}
    data: dict[str, Any] = {"from": result.previous.value, "to": result.status.value}
    if backdated:
        data |= {"backdated": True, "reason": " ".join((backdated_reason or "").split()), "at": at.isoformat()}
        if not session.accepted:  # entering it vouches for it: completing it later needs no second back-dating
            values["accepted"] = True
            data["accepted"] = True
    if result.status is SessionStatus.CANCELLED:
        values |= {"cancel_reason": result.reason_code, "cancel_note": result.note}
        data |= {"reason": result.reason_code, "note": result.note}
        if actor.kind == "staff":  # a patient who cancels is answered where they did it
            data |= await _tell_patient_cancelled(
                db,
                session,
                reason_code=result.reason_code,
                booking_link=booking_link,
                default_language=default_language,
            )
    action = {
        SessionStatus.OPEN: "session.started",
        SessionStatus.COMPLETED: "session.completed",
        SessionStatus.CANCELLED: "session.cancelled",
    }[result.status]
    return await _close(db, session, values, actor=actor, now=now, action=action, data=data)


def _backdated_time(session: SessionRecord, target: SessionStatus, now: datetime) -> datetime:
    """A back-dated step records the booked time (its start, or its end once passed), never before the start."""
    if target is SessionStatus.OPEN:
        return session.starts_at
    ended = session.ends_at if session.ends_at <= now else now
    return max(ended, session.started_at or ended)


async def start(
    db: Db,
    session_id: int,
    *,
    actor: Actor,
    now: datetime | None = None,
    backdated: bool = False,
    reason: str | None = None,
) -> SessionChange:
    """Waiting → open: the doctor calls the patient in (a doctor only on their own sessions).

    Only an accepted visit, from its own day (409 ``not_accepted``, ``not_its_day``). ``backdated`` (staff, with a
    ``reason``) records a past visit after the fact, at its booked start, accepted or not; audited as such.
    """
    return await _change(
        db, session_id, SessionStatus.OPEN, actor=actor, now=now, backdated=backdated, backdated_reason=reason
    )


async def complete(
    db: Db,
    session_id: int,
    *,
    actor: Actor,
    now: datetime | None = None,
    backdated: bool = False,
    reason: str | None = None,
) -> SessionChange:
    """Open → completed: frees the time, records commissions and finalises the invoice.

    The same rules as :func:`start` (accepted, its day; or ``backdated`` with a ``reason``, ending at the booked
    end). The patient's thank-you (with a 1-5 rating) is a follow-up, for the caller to plan in the same
    transaction (once per session).
    """
    change = await _change(
        db, session_id, SessionStatus.COMPLETED, actor=actor, now=now, backdated=backdated, backdated_reason=reason
    )
    return SessionChange(change.session, (*change.follow_ups, ThankYou(change.session.id)))


async def cancel(
    db: Db,
    session_id: int,
    *,
    actor: Actor,
    reason_code: str | None,
    note: str | None = None,
    now: datetime | None = None,
    booking_link: str | None = None,
    default_language: str = "en",
) -> SessionChange:
    """Waiting/open → cancelled with a reason from the clinic's list (and a note where it needs one).

    Frees the time at once and voids the draft invoice. When staff cancel, the patient is told on their own channel
    (:data:`NOTICE`: the visit, the reason in the patient's words where it is one for them, never the note, and how
    to book again: "book" in the chat, or ``booking_link``, the public booking form, when given); the audit row
    records whether they could be (``notified``). The offer of the freed time to the waitlist is a follow-up, for the
    caller to run in the same transaction; it enqueues delivery after commit.
    """
    return await _change(
        db,
        session_id,
        SessionStatus.CANCELLED,
        actor=actor,
        now=now,
        reason_code=reason_code,
        note=note,
        booking_link=booking_link,
        default_language=default_language,
    )


async def _tell_patient_cancelled(
    db: Db, session: SessionRecord, *, reason_code: str | None, booking_link: str | None, default_language: str
) -> dict[str, Any]:
    """Plan the patient's notice that the clinic cancelled ``session`` (once per visit: a dedupe key) on the channel
    confirmations use; return what the audit row records about it."""
    if reason_code in SILENT_CANCEL_REASONS:
        return {"notified": False, "not_notified": f"not sent after a {reason_code} cancellation"}
    record = await visit_queries.visit(db, session.id)
    assert record is not None  # the caller holds the row locked
    names = record.patient.name.split()

    def notice(lang: str) -> notify.Notice:
        text = messages.render(
            lang,
            NOTICE,
            name=names[0] if names else None,
            code=session.booking_code,
            examination=", ".join(e.name for e in record.examinations) or None,
            doctor=record.doctor.name,
            branch=record.branch.name,
            start=session.starts_at.astimezone(ZoneInfo(record.branch.tz)).isoformat(timespec="minutes"),
            reason=reason_code,  # a code: the template words the patient-facing ones and leaves the rest out
            link=booking_link,
        )
        # The template's one value is the whole text, without line breaks (WhatsApp refuses them in values).
        buttons = (Button(messages.label(lang, "book"), "menu:book"),)
        return notify.Notice(text, buttons=buttons, template_values={"text": " ".join(text.split())})

    told = await notify.tell(
        db, session.patient_id, NOTICE, notice, dedupe_key=f"{NOTICE}:{session.id}",
        prefer_channel=await visit_queries.lead_channel(db, session.lead_id), author="staff",
        default_language=default_language,
    )  # fmt: skip
    if told is None:
        return {"notified": False, "not_notified": "no channel to reach the patient"}
    return {"notified": True, "channel": told.where.channel, "outbox_id": told.outbox_id}


async def auto_complete_past(db: Db, *, now: datetime, actor: Actor = SYSTEM, branch_id: int | None = None) -> int:
    """Complete accepted waiting sessions that already ended by ``now`` (visits entered after the fact); how many.

    Staff entering a past visit book it (accepted by booking it); a patient's own booking that nobody accepted is
    left alone (staff cancel it, e.g. as a no-show).

    The one way around the transition table (waiting → completed): such a visit never waited in the queue. The
    booked times are recorded as when it started and ended. Sessions another transaction holds are skipped, so
    concurrent sweeps never complete one twice.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    done = 0
    for session in await queries.lock_waiting_sessions_ended_by(db, now, branch_id=branch_id):
        if not lies_in_the_past(session.starts_at, session.ends_at, now):
            continue
        if not session.accepted:
            continue  # a patient's booking nobody accepted did not happen because time passed
        values = {"status": SessionStatus.COMPLETED.value, "started_at": session.starts_at, "ended_at": session.ends_at}
        data = {"from": SessionStatus.WAITING.value, "to": SessionStatus.COMPLETED.value, "auto": True}
        await _close(db, session, values, actor=actor, now=now, action="session.auto_completed", data=data)
        done += 1
    return done


async def detail(db: Db, session_id: int, *, actor: Actor) -> SessionDetail:
    session = await queries.get_session(db, session_id)
    if session is None:
        raise NotFound("not_found", f"There is no session {session_id}.")
    invoicing.check_session_access(actor, session)
    branch, patient, doctor, room = await queries.participants(db, session)
    return SessionDetail(
        session=session,
        branch=branch,
        patient=patient,
        doctor=doctor,
        room=room,
        lines=await queries.lines(db, session.id),
        invoice=await billing_queries.invoice_for_session(db, session.id),
    )
