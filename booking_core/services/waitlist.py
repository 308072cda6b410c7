"""The waitlist: patients who want a day and examination that is full get offered a slot when one frees.

Joining (:func:`join`) writes one entry per patient, branch, examination and day. When a waiting visit is
cancelled (by the patient, by staff, as a no-show, or because it was rescheduled) the lifecycle service calls
:func:`slot_freed` in the same transaction: if the freed time is still bookable and someone waits for that day
and examination, one ``waitlist_offers`` row is written and every one of them gets a chat message with an
"Accept" button (data ``wl:<offer_id>``). The first to accept (:func:`accept`) takes the offer with one atomic
``UPDATE ... WHERE status = 'open'``; the slot is then held and booked for them through the booking service
(which the database still refuses if anyone booked that time meanwhile), and everyone else who was offered it is
told it has gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import waitlist as queries
from booking_core.db.tables import ChannelIdentity, Conversation, Message, Patient, Session, WaitlistEntry
from booking_core.db.tables import WaitlistOffer as Offer
from booking_core.domain.actors import SYSTEM, Actor
from booking_core.domain.messages import Button
from booking_core.services import audit, availability, booking, messages, notify
from booking_core.services.errors import Invalid, NotFound, ServiceError

__all__ = [
    "BUTTON_PREFIX",
    "Acceptance",
    "accept",
    "answer_in_chat",
    "entries",
    "join",
    "leave",
    "slot_freed",
]

#: Button data of an offer's "Accept": ``wl:<offer_id>``.
BUTTON_PREFIX = "wl:"


@dataclass(frozen=True)
class Acceptance:
    """What accepting an offer came to: ``booked`` (``session``), ``gone`` (someone was first, or the time
    cannot be booked any more) or ``not_waitlisted`` (the patient is not on the list for it)."""

    outcome: Literal["booked", "gone", "not_waitlisted"]
    offer: Offer | None = None
    session: Session | None = None
    notified: list[int] = field(default_factory=list)  # outbox ids of "it has gone" notices to the others


# --- the list ---------------------------------------------------------------------------------------------


async def join(
    db: Db,
    *,
    actor: Actor,
    patient_id: int,
    branch_id: int,
    examination_id: int,
    day: date,
    identity_id: int | None = None,
    now: datetime | None = None,
) -> WaitlistEntry:
    """Put the patient on the waitlist for ``day`` (the branch's local day) and examination.

    Joining again for the same day and examination returns the existing entry. ``identity_id`` names the chat to
    send offers to (default: the patient's most recently used channel). 404 for an unknown or unseen branch,
    patient or examination; 422 ``in_the_past`` for a day that is over.
    """
    now = now or datetime.now(UTC)
    where = await queries.branch(db, branch_id)
    if where is None or not where.active or not actor.can_see_branch(branch_id):
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    if await queries.offered_examination(db, branch_id, examination_id) is None:
        raise NotFound("not_found", f"There is no examination {examination_id} at this branch.")
    if day < now.astimezone(ZoneInfo(where.tz)).date():
        raise Invalid("in_the_past", "That day is over; choose today or a later day.")
    patient = await queries.lock_patient(db, patient_id)  # serialises this patient's joins: no duplicates
    if patient is None:
        raise NotFound("not_found", f"There is no patient {patient_id}.")
    if identity_id is not None:
        chat = await queries.identity(db, identity_id)
        if chat is None or chat.patient_id != patient_id:
            raise NotFound("not_found", f"The patient has no chat {identity_id}.")
    existing = await queries.find_entry(
        db, patient_id=patient_id, branch_id=branch_id, examination_id=examination_id, day=day
    )
    if existing is not None:
        return existing
    entry = await queries.add_entry(
        db,
        {
            "patient_id": patient_id,
            "identity_id": identity_id,
            "branch_id": branch_id,
            "examination_id": examination_id,
            "day": day,
            "status": "waiting",
        },
    )
    data = {"patient_id": patient_id, "examination_id": examination_id, "day": day.isoformat()}
    audit.record(db, actor, "waitlist.joined", "waitlist_entry", entry.id, data)
    return entry


async def entries(
    db: Db, *, actor: Actor, branch_id: int, day: date | None = None, status: str | None = None
) -> list[WaitlistEntry]:
    """A branch's waitlist (optionally one day, one status), by day then first come."""
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    return await queries.entries(db, branch_id=branch_id, day=day, status=status)


async def leave(db: Db, entry_id: int, *, actor: Actor) -> WaitlistEntry:
    """Take an entry off the list (status ``cancelled``); leaving twice is a no-op. 404 for another branch's."""
    entry = await queries.entry(db, entry_id, lock=True)
    if entry is None or not actor.can_see_branch(entry.branch_id):
        raise NotFound("not_found", f"There is no waitlist entry {entry_id}.")
    if entry.status in queries.INTERESTED:
        entry.status = "cancelled"
        await db.flush()
        audit.record(db, actor, "waitlist.left", "waitlist_entry", entry.id, {"patient_id": entry.patient_id})
    return entry


# --- a slot frees -----------------------------------------------------------------------------------------


async def slot_freed(
    db: Db, session_id: int, *, now: datetime | None = None, default_language: str = "en"
) -> list[int]:
    """Offer a just-cancelled session's time to the patients waiting for that day and examination.

    Runs in the transaction that cancelled it. Nothing happens unless the session is cancelled, starts in the
    future, the time is still bookable, somebody else is waiting and no open offer for it exists. Returns the
    outbox ids of the offers (the caller, or the sweep, enqueues their delivery after commit).
    """
    now = now or datetime.now(UTC)
    freed = await queries.freed_slot(db, session_id)
    if freed is None or freed.session.status != "cancelled" or freed.session.starts_at <= now:
        return []
    slot = freed.session
    day = slot.starts_at.astimezone(ZoneInfo(freed.tz)).date()
    waiting = await queries.interested(
        db, branch_id=slot.branch_id, examination_id=freed.examination_id, day=day, except_patient=slot.patient_id
    )
    if not waiting or await queries.open_offer_at(db, doctor_id=slot.doctor_id, starts_at=slot.starts_at):
        return []
    if not await _bookable(db, slot, freed.examination_id, now):
        return []
    offer = await queries.add_offer(
        db,
        {
            "branch_id": slot.branch_id,
            "doctor_id": slot.doctor_id,
            "room_id": slot.room_id,
            "examination_id": freed.examination_id,
            "starts_at": slot.starts_at,
            "ends_at": slot.ends_at,
            "status": "open",
            "note": f"freed by session {slot.id}",
        },
    )
    facts = await queries.offer_facts(db, offer)
    written: list[int] = []
    offered: list[int] = []
    for entry in waiting:
        outbox_id = await _send_offer(db, offer, facts, entry, default_language=default_language)
        if outbox_id is not None:
            written.append(outbox_id)
            offered.append(entry.id)
    await queries.set_entry_status(db, offered, "offered", only_from=("waiting",))
    data = {"session_id": slot.id, "starts_at": slot.starts_at.isoformat(), "entries": offered}
    audit.record(db, SYSTEM, "waitlist.offered", "waitlist_offer", offer.id, data)
    return written


async def _bookable(db: Db, slot: Session, examination_id: int, now: datetime) -> bool:
    try:
        _, reasons = await availability.explain_time(
            db, branch_id=slot.branch_id, examination_id=examination_id, at=slot.starts_at,
            doctor_id=slot.doctor_id, now=now,
        )  # fmt: skip
    except ServiceError:
        return False
    return any(reason.code == "available" for reason in reasons)


async def _tell(
    db: Db,
    entry: WaitlistEntry,
    kind: str,
    notice: Callable[[str], notify.Notice],
    *,
    dedupe_key: str,
    default_language: str,
) -> int | None:
    """Plan ``notice`` for the patient of ``entry`` on the chat they joined the list from; None: nobody to tell."""
    chat = await queries.identity(db, entry.identity_id)
    told = await notify.tell(
        db, entry.patient_id, kind, notice, dedupe_key=dedupe_key, prefer_channel=chat.channel if chat else None,
        default_language=default_language,
    )  # fmt: skip
    return told.outbox_id if told is not None else None


def _vars(offer: Offer, facts: queries.OfferFacts) -> dict[str, object]:
    return {
        "examination": facts.examination_name,
        "doctor": facts.doctor_name,
        "branch": facts.branch_name,
        "start": offer.starts_at.astimezone(ZoneInfo(facts.tz)).isoformat(timespec="minutes"),
    }


async def _send_offer(
    db: Db, offer: Offer, facts: queries.OfferFacts, entry: WaitlistEntry, *, default_language: str
) -> int | None:
    values = _vars(offer, facts)

    def notice(lang: str) -> notify.Notice:
        when = messages.render(lang, "reminder_time", start=values["start"])
        return notify.Notice(
            messages.render(lang, "waitlist_offer", **values),
            buttons=(Button(messages.render(lang, "waitlist_accept_label"), f"{BUTTON_PREFIX}{offer.id}"),),
            template_values={
                "examination": facts.examination_name,
                "when": when,
                "doctor": facts.doctor_name,
                "branch": facts.branch_name,
            },
        )

    # Nobody to tell (None): this patient simply is not offered the slot.
    return await _tell(
        db, entry, "waitlist_offer", notice, dedupe_key=queries.OFFER_KEY.format(offer_id=offer.id, entry_id=entry.id),
        default_language=default_language,
    )  # fmt: skip


# --- accepting --------------------------------------------------------------------------------------------


async def accept(
    db: Db,
    offer_id: int,
    *,
    patient_id: int,
    actor: Actor,
    conversation_id: int | None = None,
    now: datetime | None = None,
    default_language: str = "en",
) -> Acceptance:
    """The patient accepts an offer, in the caller's transaction: the first one books it, later ones hear it
    has gone. Accepting an offer one already took again answers ``booked`` with the same session."""
    now = now or datetime.now(UTC)
    found = await queries.offer(db, offer_id)
    if found is None:
        return Acceptance("gone")
    facts = await queries.offer_facts(db, found)
    day = found.starts_at.astimezone(ZoneInfo(facts.tz)).date()
    entry = await queries.find_entry(
        db, patient_id=patient_id, branch_id=found.branch_id, examination_id=found.examination_id, day=day
    )
    if entry is None:
        taker = await queries.entry(db, found.taken_by) if found.taken_by is not None else None
        if taker is not None and taker.patient_id == patient_id and found.session_id is not None:
            return Acceptance("booked", found, await queries.session(db, found.session_id))  # a second tap
        return Acceptance("not_waitlisted", found)
    if found.starts_at <= now:
        await queries.expire_offer(db, found.id, "the time had passed when it was accepted")
        return Acceptance("gone", found)
    taken = await queries.take_offer(db, found.id, entry.id)
    if taken is None:
        return Acceptance("gone", found)
    try:
        async with db.begin_nested():
            held = await booking.hold(
                db, actor=actor, branch_id=taken.branch_id, examination_id=taken.examination_id,
                start=taken.starts_at, doctor_id=taken.doctor_id, patient_id=patient_id,
                conversation_id=conversation_id, now=now,
            )  # fmt: skip
            session = await booking.convert_hold(db, held.id, actor=actor, patient_id=patient_id, now=now)
    except ServiceError as exc:
        # Somebody booked the time another way meanwhile (or the clinic's rules changed): nobody gets it.
        await queries.update_offer(db, taken.id, {"status": "expired", "note": f"could not be booked: {exc.code}"})
        audit.record(db, actor, "waitlist.offer_failed", "waitlist_offer", taken.id, {"code": exc.code})
        notified = await _tell_gone(db, taken, facts, except_entry=None, default_language=default_language)
        return Acceptance("gone", taken, notified=notified)
    await queries.update_offer(db, taken.id, {"session_id": session.id})
    await queries.set_entry_status(db, [entry.id], "booked", only_from=queries.INTERESTED)
    data = {"entry_id": entry.id, "session_id": session.id, "patient_id": patient_id}
    audit.record(db, actor, "waitlist.offer_taken", "waitlist_offer", taken.id, data)
    notified = await _tell_gone(db, taken, facts, except_entry=entry.id, default_language=default_language)
    return Acceptance("booked", taken, session, notified)


async def _tell_gone(
    db: Db, offer: Offer, facts: queries.OfferFacts, *, except_entry: int | None, default_language: str
) -> list[int]:
    """Tell everyone else who was offered the slot that it has gone; they stay on the list for the next one."""
    others = [i for i in await queries.offered_entry_ids(db, offer.id) if i != except_entry]
    await queries.set_entry_status(db, others, "waiting", only_from=("offered",))
    values = _vars(offer, facts)
    written: list[int] = []
    for entry_id in others:
        entry = await queries.entry(db, entry_id)
        if entry is None:
            continue
        outbox_id = await _tell(
            db, entry, "waitlist_gone", lambda lang: notify.Notice(messages.render(lang, "waitlist_gone", **values)),
            dedupe_key=f"waitlist-gone:{offer.id}:{entry_id}", default_language=default_language,
        )  # fmt: skip
        if outbox_id is not None:
            written.append(outbox_id)
    return written


# --- the "Accept" button in chat --------------------------------------------------------------------------


async def answer_in_chat(
    db: Db,
    conversation: Conversation,
    identity: ChannelIdentity,
    patient: Patient | None,
    message: Message,
    *,
    now: datetime,
    default_language: str = "en",
    on_booked: Callable[[int], Awaitable[list[int]]] | None = None,
) -> list[int] | None:
    """Answer a pressed "Accept" (``wl:<offer_id>``, or a bare "1" right after an offer on WhatsApp); None when
    the message is not about an offer, so the dialog answers it. Returns the new outbox ids.

    ``on_booked(session_id)`` plans what follows a booking (the confirmation link) after the "booked" reply."""
    data = await _offer_choice(db, identity.id, message)
    if data is None:
        return None
    # A chat that never talked to the bot has no language of its own yet: the patient's, as the offer used.
    known = patient.language if patient is not None and patient.language else None
    lang = (conversation.language if conversation.dialog_state else known or conversation.language) or default_language
    raw = data.removeprefix(BUTTON_PREFIX)
    result = Acceptance("gone")
    if raw.isdigit() and len(raw) <= 12 and patient is not None:
        actor = Actor(kind="patient", id=patient.id, name=patient.name)
        result = await accept(
            db, int(raw), patient_id=patient.id, actor=actor, conversation_id=conversation.id, now=now,
            default_language=default_language,
        )  # fmt: skip
    await messages.refresh_overrides(db)
    if result.outcome == "booked" and result.offer is not None and result.session is not None:
        facts = await queries.offer_facts(db, result.offer)
        text = messages.render(lang, "waitlist_booked", code=result.session.booking_code, **_vars(result.offer, facts))
    else:
        text = messages.render(lang, "waitlist_gone" if result.outcome == "gone" else "waitlist_not_yours")
    chat = notify.Chat.of(identity, conversation.id)
    outbox_id = await notify.write(db, chat, "reply", notify.Notice(text), dedupe_key=f"dialog:{message.id}:0")
    followups = []
    if on_booked is not None and result.outcome == "booked" and result.session is not None:
        followups = await on_booked(result.session.id)
    return [*([outbox_id] if outbox_id is not None else []), *result.notified, *followups]


async def _offer_choice(db: Db, identity_id: int, message: Message) -> str | None:
    payload = message.payload or {}
    data = payload.get("button_data")
    if isinstance(data, str):
        return data.strip() if data.strip().startswith(BUTTON_PREFIX) else None
    text = (message.text or "").strip()
    if not text.isdigit() or len(text) > 2:
        return None
    # A number answers the last thing we sent, if that was an offer.
    options = await notify.options_offered(db, identity_id, ("waitlist_offer",))
    number = int(text)
    if not 1 <= number <= len(options):
        return None
    chosen = options[number - 1]
    return chosen if chosen.startswith(BUTTON_PREFIX) else None
