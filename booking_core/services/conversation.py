"""One chatbot step for a persisted inbound message: load, decide, perform, save, write the replies to the outbox.

The decisions are :mod:`booking_core.domain.dialog`'s. This module fetches what the dialog needs to know (the
clinic's catalogue, the patient's visits), has :mod:`booking_core.services.dialog_effects` do what it asks and
feeds each result back, then writes the replies through :mod:`booking_core.services.notify`. Staff replies in a
chat are :mod:`booking_core.services.staff_replies`.

Order and exactly-once: the conversation row is locked first (``FOR UPDATE``), then its unanswered messages up to
this one are answered oldest first. A message already answered is skipped, so a second ``handle`` of the same
message (a retry, the sweep) writes nothing; the outbox rows also carry a dedupe key per message and reply.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast, get_args
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import conversation as queries
from booking_core.db.tables import Conversation, Message, Patient
from booking_core.domain import dialog
from booking_core.domain.dialog import (
    BranchInfo,
    Context,
    DoctorInfo,
    Event,
    ExaminationInfo,
    OpeningHours,
    Outcome,
    VisitInfo,
)
from booking_core.domain.messages import Button, InboundKind
from booking_core.services import (
    confirmation,
    dialog_effects,
    lifecycle,
    messages,
    notify,
    settings,
    visit_messages,
    waitlist,
)

__all__ = ["MAX_ROUNDS", "handle"]

#: Effects performed per message at most (each outcome may ask for one more step); a guard, not a limit in practice.
MAX_ROUNDS = 6


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
    step = dialog_effects.Step(db, conversation, identity, patient, now, default_language)
    secret, base_url = links

    async def confirm(session_id: int) -> list[int]:
        if secret is None or base_url is None:
            return []
        return await visit_messages.send_confirmation(
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
            outcome = await dialog_effects.PERFORM[type(effect)](step, effect)
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


#: Texts joined into one message stay well under :data:`~booking_core.domain.messages.MAX_OUTBOUND_TEXT`.
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
    # An examination is offered only where one of its doctors works: elsewhere the patient would find no time.
    staffed = {
        e.id: tuple(
            b for b in catalogue.offered_at.get(e.id, [])
            if catalogue.branch_doctors.get(b, set()) & set(catalogue.performed_by.get(e.id, []))
        )
        for e in catalogue.examinations
    }  # fmt: skip
    examinations = tuple(
        ExaminationInfo(
            id=e.id,
            name=e.name,
            keywords=tuple(str(k) for k in (e.keywords or []) if isinstance(k, str)),
            branch_ids=staffed[e.id],
            doctor_ids=tuple(catalogue.performed_by.get(e.id, [])),
        )
        for e in catalogue.examinations
        if staffed[e.id]
    )
    visits: tuple[VisitInfo, ...] = ()
    if patient is not None:
        # Today's visits stay listed after their time (the queue runs late); later ones from now on.
        rows = await queries.visits(db, patient.id, since=now - timedelta(hours=12))
        zones = {b.id: ZoneInfo(b.tz) for b in catalogue.branches}
        visits = tuple(
            VisitInfo(
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
