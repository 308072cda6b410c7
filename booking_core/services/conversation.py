"""One chatbot step for a persisted inbound message: load, decide, perform, save, write the replies to the outbox.

The decisions are :mod:`booking_core.domain.dialog`'s; this module only fetches what it needs to know and does what
it asks (look up free days and times, hold a slot, put it on the lead or book it, cancel, reschedule, look up the
queue, hand over to staff), feeding each result back into the dialog.

Order and exactly-once: the conversation row is locked first (``FOR UPDATE``), then its unanswered messages up to
this one are answered oldest first. A message already answered is skipped, so a second ``handle`` of the same
message (a retry, the sweep) writes nothing; the outbox rows also carry a dedupe key per message and reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast, get_args
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import conversation as queries
from booking_core.db.tables import ChannelIdentity, Conversation, Lead, Message, Patient
from booking_core.domain import dialog
from booking_core.domain.actors import Actor
from booking_core.domain.dialog import (
    AlreadyRated,
    Booked,
    BookingReceived,
    BranchInfo,
    CancelVisit,
    ConfirmBooking,
    ConfirmVisit,
    Context,
    DaysFound,
    DoctorInfo,
    Event,
    ExaminationInfo,
    FindDays,
    FindSlots,
    Handoff,
    Held,
    HoldSlot,
    NotChanged,
    NotInQueue,
    OpeningHours,
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
    Visit,
    VisitCancelled,
    VisitConfirmed,
)
from booking_core.domain.messages import Button, Channel, InboundKind
from booking_core.services import (
    audit,
    availability,
    booking,
    confirmation,
    lifecycle,
    messages,
    notify,
    queue,
    queue_replies,
    settings,
    waitlist,
)
from booking_core.services.errors import Conflict, Invalid, NotFound, ServiceError

__all__ = ["ReplyTarget", "StaffReply", "handle", "reply_target", "set_bot_paused", "staff_reply"]

#: Effects performed per message at most (each outcome may ask for one more step); a guard, not a limit in practice.
MAX_ROUNDS = 6
RESCHEDULE_REASON = "patient_request"


async def handle(
    db: Db,
    message_id: int,
    *,
    now: datetime | None = None,
    default_language: str = "en",
    secret: str | None = None,
    base_url: str | None = None,
) -> list[int]:
    """Answer inbound message ``message_id`` (and any earlier unanswered one of its chat) in the caller's transaction.

    Returns the new outbox ids; the caller enqueues their delivery after commit. While staff have taken over
    (``bot_paused``) the message is marked processed and nothing is sent. A visit the chat books directly gets the
    same follow-ups as a lead staff convert: its reminders (with the booking) and, after the reply, the
    confirmation link, signed with ``secret`` under ``base_url`` (SECRET_KEY, PUBLIC_BASE_URL; without them, as in
    tests of the dialog alone, no link is written).
    """
    now = now or datetime.now(UTC)
    found = await queries.message(db, message_id)
    if found is None or found.direction != "in" or found.conversation_id is None or found.processed_at is not None:
        return []
    conversation = await queries.lock_conversation(db, found.conversation_id)
    if conversation is None:
        return []
    outbox_ids: list[int] = []
    for message in await queries.lock_unprocessed(db, conversation.id, up_to=message_id):
        if not conversation.bot_paused:
            outbox_ids += await _answer(
                db, conversation, message, now=now, default_language=default_language, links=(secret, base_url)
            )
        await queries.mark_processed(db, message.id, now=now)
    return outbox_ids


@dataclass
class _Step:
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


async def _answer(
    db: Db,
    conversation: Conversation,
    message: Message,
    *,
    now: datetime,
    default_language: str,
    links: tuple[str | None, str | None] = (None, None),
) -> list[int]:
    identity = await queries.identity(db, conversation.identity_id)
    if identity is None:
        return []
    patient = await queries.patient(db, conversation.patient_id or identity.patient_id)
    step = _Step(db, conversation, identity, patient, now, default_language)
    secret, base_url = links

    async def confirm(session_id: int) -> list[int]:
        if secret is None or base_url is None:
            return []
        return await confirmation.send_confirmation(
            db, session_id, secret=secret, base_url=base_url, default_language=default_language
        )

    accepted = await waitlist.answer_in_chat(
        db, conversation, identity, patient, message, now=now, default_language=default_language, on_booked=confirm
    )
    if accepted is not None:
        return accepted  # an "Accept" on a waitlist offer: answered outside the dialog, its state untouched
    ctx = await _context(db, patient, now)
    ctx = replace(ctx, followup=await confirmation.followup_options(db, identity.id))
    state = dialog.first_state(
        conversation.dialog_state,
        identity.language_code,  # the phone's language first, then what we know of the patient
        patient.language if patient else None,
        default_language=conversation.language or default_language,
    )
    decision = dialog.decide(state, _event(message), ctx)
    replies = list(decision.replies)
    for _ in range(MAX_ROUNDS):
        outcome: Outcome | None = None
        for effect in decision.effects:
            outcome = await _PERFORM[type(effect)](step, effect)
        if outcome is None:
            break
        decision = dialog.resume(decision.state, outcome, ctx)
        replies += decision.replies
    state = decision.state
    conversation.dialog_state = state.to_json()
    conversation.language = state.lang
    ids = []
    await messages.refresh_overrides(db)
    chat = notify.Chat.of(identity, conversation.id)
    for index, (text, buttons) in enumerate(_coalesced([messages.render_reply(state.lang, r) for r in replies])):
        notice = notify.Notice(text, buttons=buttons)
        outbox_id = await notify.write(db, chat, "reply", notice, dedupe_key=f"dialog:{message.id}:{index}")
        if outbox_id is not None:
            ids.append(outbox_id)
    for session_id in step.booked:  # after the "booked" reply, as for a lead staff converted
        ids += await confirm(session_id)
    return ids + step.planned


#: Texts joined into one message stay well under Telegram's 4,096 characters.
JOIN_LIMIT = 3000


def _coalesced(rendered: list[tuple[str, tuple[Button, ...]]]) -> list[tuple[str, tuple[Button, ...]]]:
    """One chat message where the dialog said several things in a row: a text without buttons is joined to the
    next reply. Fewer messages read better and keep a chat inside its provider's per-chat rate limit."""
    joined: list[tuple[str, tuple[Button, ...]]] = []
    for text, buttons in rendered:
        if joined and not joined[-1][1] and len(joined[-1][0]) + len(text) < JOIN_LIMIT:
            joined[-1] = (f"{joined[-1][0]}\n\n{text}", buttons)
        else:
            joined.append((text, buttons))
    return joined


def _event(message: Message) -> Event:
    payload = message.payload or {}
    stored = payload.get("kind")
    kind = cast(InboundKind, stored) if stored in get_args(InboundKind) else "text"
    return Event(
        kind=kind,
        text=message.text or "",
        button_data=payload.get("button_data"),
        contact_phone=payload.get("phone") if kind == "contact" else None,
        media_count=int(payload.get("media_count") or 0),
    )


async def _context(db: Db, patient: Patient | None, now: datetime) -> Context:
    catalogue = await queries.catalogue(db, today=(now - timedelta(days=1)).date())
    branches = tuple(
        BranchInfo(
            id=b.id,
            name=b.name,
            tz=b.tz,
            hours=tuple(OpeningHours(*h) for h in catalogue.hours.get(b.id, [])),
            doctor_ids=tuple(sorted(catalogue.branch_doctors.get(b.id, set()))),
        )
        for b in catalogue.branches
    )
    examinations = tuple(
        ExaminationInfo(
            id=e.id,
            name=e.name,
            keywords=tuple(str(k) for k in (e.keywords or []) if isinstance(k, str)),
            branch_ids=tuple(catalogue.offered_at.get(e.id, [])),
            doctor_ids=tuple(catalogue.performed_by.get(e.id, [])),
        )
        for e in catalogue.examinations
        if catalogue.offered_at.get(e.id)
    )
    visits: tuple[Visit, ...] = ()
    if patient is not None:
        # Today's visits stay listed after their time (the queue runs late); later ones from now on.
        rows = await queries.visits(db, patient.id, since=now - timedelta(hours=12))
        zones = {b.id: ZoneInfo(b.tz) for b in catalogue.branches}
        visits = tuple(
            Visit(
                id=row.session.id,
                booking_code=row.session.booking_code,
                branch_id=row.session.branch_id,
                examination_id=row.examination_id,
                examination_name=row.examination_name,
                doctor_id=row.session.doctor_id,
                doctor_name=row.doctor_name,
                starts_at=row.session.starts_at,
                status=row.session.status,
                cancel_cutoff_min=row.cancel_cutoff_min,
                in_queue=row.in_queue,
            )
            for row in rows
            if row.session.ends_at > now or _same_day(row.session.starts_at, now, zones.get(row.session.branch_id))
        )
    reasons = await lifecycle.cancel_reasons(db)
    return Context(
        now=now,
        examinations=examinations,
        branches=branches,
        doctors=tuple(DoctorInfo(d.id, d.name) for d in catalogue.doctors),
        visits=visits,
        patient_name=(patient.name or None) if patient else None,
        patient_phone=patient.phone_e164 if patient else None,
        cancel_reasons=tuple(reasons.reasons),
        hold_minutes=int(await settings.get(db, "hold_minutes")),
    )


def _same_day(start: datetime, now: datetime, zone: ZoneInfo | None) -> bool:
    zone = zone or ZoneInfo("UTC")
    return start.astimezone(zone).date() == now.astimezone(zone).date()


# --- effects ----------------------------------------------------------------------------------------------


async def _find_days(step: _Step, effect: FindDays) -> Outcome:
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


async def _find_slots(step: _Step, effect: FindSlots) -> Outcome:
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


async def _hold(step: _Step, effect: HoldSlot) -> Outcome:
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


async def _release(step: _Step, effect: ReleaseHold) -> None:
    row = await queries.hold(step.db, effect.hold_id)
    if row is None or row.conversation_id != step.conversation.id or row.status != "active":
        return None
    try:
        async with step.db.begin_nested():
            await booking.release_hold(step.db, effect.hold_id, actor=step.actor)
    except ServiceError:
        pass  # expired or converted meanwhile: nothing to give back
    return None


async def _live_hold(step: _Step, hold_id: int) -> int:
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


async def _confirm(step: _Step, effect: ConfirmBooking) -> Outcome:
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


async def _own_visit(step: _Step, visit_id: int) -> Any:
    found = await queries.session(step.db, visit_id)
    if found is None or step.patient is None or found.patient_id != step.patient.id:
        return None
    return found


async def _cancel(step: _Step, effect: CancelVisit) -> Outcome:
    visit = await _own_visit(step, effect.visit_id)
    if visit is None:
        return NotChanged("not_found")
    try:
        async with step.db.begin_nested():
            cancelled = await lifecycle.cancel(
                step.db, visit.id, actor=step.actor, reason_code=effect.reason_code, note=effect.note, now=step.now
            )
    except ServiceError as exc:
        return NotChanged(exc.code)
    return VisitCancelled(cancelled.booking_code)


async def _reschedule(step: _Step, effect: Reschedule) -> Outcome:
    visit = await _own_visit(step, effect.visit_id)
    if visit is None or step.patient is None:
        return NotChanged("not_found")
    try:
        # One transaction (a savepoint of the caller's): the old visit is only cancelled if the new one is booked.
        async with step.db.begin_nested():
            hold_id = await _live_hold(step, effect.hold_id)
            await lifecycle.cancel(
                step.db, visit.id, actor=step.actor, reason_code=RESCHEDULE_REASON, note="Rescheduled in chat.",
                now=step.now,
            )  # fmt: skip
            session = await booking.convert_hold(
                step.db, hold_id, actor=step.actor, patient_id=step.patient.id, now=step.now
            )
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


async def _queue_position(step: _Step, effect: QueuePosition) -> Outcome:
    visit = await _own_visit(step, effect.visit_id)
    if visit is None:
        return NotInQueue()
    ticket = await queue.position_for_session(step.db, visit.id, now=step.now)
    if ticket is None:
        return NotInQueue()
    await queue_replies.told(step.db, ticket)  # told here: the proactive "you are next" does not repeat it
    return QueuePlace(ticket.token, ticket.position, ticket.ahead, ticket.eta, ticket.doctor_name)


async def _confirm_visit(step: _Step, effect: ConfirmVisit) -> Outcome:
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


async def _rate_visit(step: _Step, effect: RateVisit) -> Outcome:
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


async def _handoff(step: _Step, effect: Handoff) -> None:
    step.conversation.bot_paused = True
    audit.record(step.db, step.actor, "conversation.handoff", "conversation", step.conversation.id, {"via": "dialog"})
    return None


_PERFORM: dict[type, Callable[[_Step, Any], Awaitable[Outcome | None]]] = {
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


# --- staff take over a chat: reply on the patient's channel, pause the bot, hand back to it -------------------

#: Channels a staff reply can go out on (a booking-form request has no chat of its own).
REPLY_CHANNELS = ("telegram", "whatsapp", "webchat")
MAX_REPLY = 4000  # under Telegram's 4,096 characters per message
_REPLY_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(frozen=True)
class ReplyTarget:
    """Where staff replies to a lead go: the lead's own chat, else the patient's most recent chat elsewhere."""

    channel: Channel
    recipient: str
    identity_id: int
    conversation_id: int | None  # None: the identity has no open conversation (one is opened by the reply)
    display_name: str
    bot_paused: bool


@dataclass(frozen=True)
class StaffReply:
    """A reply staff wrote. ``outbox_id`` is None for a repeat of the same form (same key): nothing new is sent."""

    lead_id: int
    outbox_id: int | None
    conversation_id: int
    channel: str
    paused_now: bool  # the bot was answering this chat and is paused by this reply


async def _staff_lead(db: Db, lead_id: int, actor: Actor) -> Lead:
    lead = await queries.lead(db, lead_id)
    if lead is None or (lead.branch_id is not None and not actor.can_see_branch(lead.branch_id)):
        raise NotFound("not_found", f"There is no lead {lead_id}.")
    return lead


async def reply_target(db: Db, lead: Lead) -> ReplyTarget | None:
    """The chat a reply to ``lead`` goes to, or None when the patient has no chat we can write to."""
    own = await queries.conversation(db, lead.conversation_id)
    if own is not None:
        identity = await queries.identity(db, own.identity_id)
        if identity is not None and identity.channel in REPLY_CHANNELS:
            chat = notify.Chat.of(identity, own.id)
            return ReplyTarget(
                chat.channel, chat.recipient, chat.identity_id, chat.conversation_id, identity.display_name,
                own.bot_paused,
            )  # fmt: skip
    patient = await queries.patient(db, lead.patient_id)
    if patient is None:
        return None
    found = await notify.patient_reach(db, patient.id, prefer_channel=lead.channel)
    if found is None:
        return None
    open_chat = await queries.conversation(db, found.conversation_id)
    identity = await queries.identity(db, found.identity_id)
    return ReplyTarget(
        found.channel,
        found.recipient,
        found.identity_id,
        found.conversation_id,
        identity.display_name if identity else "",
        bool(open_chat and open_chat.bot_paused),
    )


def _no_chat(lead: Lead) -> Conflict:
    phone = f" Call them at {lead.contact_phone}." if lead.contact_phone else ""
    return Conflict("no_chat", f"This patient has no chat to reply to (the request came from the booking form).{phone}")


async def _target_chat(db: Db, lead: Lead, target: ReplyTarget, now: datetime) -> Conversation:
    """The target's conversation, locked (the dialog answering a message holds the same lock): opened if needed."""
    conversation_id = target.conversation_id
    if conversation_id is None:
        identity = await queries.identity(db, target.identity_id)
        assert identity is not None
        opened = await queries.open_conversation_for(db, identity, now=now)
        conversation_id = opened.id
    conversation = await queries.lock_conversation(db, conversation_id)
    if conversation is None:  # pragma: no cover - deleted between two statements of this transaction
        raise _no_chat(lead)
    return conversation


async def staff_reply(
    db: Db, lead_id: int, *, actor: Actor, text: str, key: str | None = None, now: datetime | None = None
) -> StaffReply:
    """Write staff's ``text`` to the patient on their channel (an outbox row, delivered after commit) and pause
    the bot on that chat, so it does not talk over staff. ``key`` (one per reply form) makes a double submit one
    message. Refusals: ``reply_empty``, ``reply_too_long``, ``no_chat`` (nobody to write to)."""
    now = now or datetime.now(UTC)
    text = text.replace("\x00", "").replace("\r\n", "\n").strip()
    if not text:
        raise Invalid("reply_empty", "Write a reply first.")
    if len(text) > MAX_REPLY:
        raise Invalid("reply_too_long", f"A reply can be at most {MAX_REPLY} characters; this one is {len(text)}.")
    lead = await _staff_lead(db, lead_id, actor)
    target = await reply_target(db, lead)
    if target is None:
        raise _no_chat(lead)
    conversation = await _target_chat(db, lead, target, now)
    chat = notify.Chat(target.channel, target.recipient, target.identity_id, conversation.id)
    usable_key = key if key and len(key) <= 64 and set(key) <= _REPLY_KEY_CHARS else None
    outbox_id = await notify.write(
        db, chat, "staff_reply", notify.Notice(text, template_fields=(("text", text),)),
        dedupe_key=f"staff-reply-{lead.id}-{usable_key}" if usable_key else None, author="staff",
    )  # fmt: skip
    if outbox_id is None:  # the same form posted twice
        return StaffReply(lead.id, None, conversation.id, target.channel, paused_now=False)
    paused_now = not conversation.bot_paused
    if paused_now:
        conversation.bot_paused = True
        audit.record(
            db,
            actor,
            "conversation.paused",
            "conversation",
            conversation.id,
            {"via": "staff_reply", "lead_id": lead.id},
        )
    audit.record(
        db,
        actor,
        "lead.replied",
        "lead",
        lead.id,
        {"outbox_id": outbox_id, "channel": target.channel, "conversation_id": conversation.id},
    )
    return StaffReply(lead.id, outbox_id, conversation.id, target.channel, paused_now)


async def set_bot_paused(db: Db, lead_id: int, *, actor: Actor, paused: bool) -> bool:
    """Take the lead's chat over from the bot (``paused=True``) or hand it back; False when it already was so.

    Messages that arrived while the bot was paused stay with staff: the bot answers from the next one on."""
    lead = await _staff_lead(db, lead_id, actor)
    target = await reply_target(db, lead)
    if target is None or target.conversation_id is None:
        raise _no_chat(lead)
    conversation = await queries.lock_conversation(db, target.conversation_id)
    if conversation is None or conversation.bot_paused == paused:
        return False
    conversation.bot_paused = paused
    action = "conversation.paused" if paused else "conversation.resumed"
    audit.record(db, actor, action, "conversation", conversation.id, {"via": "staff", "lead_id": lead.id})
    return True
