"""Booking that cannot double-book: sessions and holds claim time that the database refuses to give twice.

The availability engine decides whether a time fits the clinic's rules (hours, attendance, windows, notice,
blackouts). The decision about *overlap* is left to PostgreSQL: the claim is inserted and the exclusion constraint
refuses it if anything active overlaps for the same doctor or room, however many requests race. A refusal becomes
a ``slot_taken`` conflict carrying the next free alternatives.

Under contention: a claim waits for an uncommitted overlapping claim to finish instead of deadlocking with it (see
``queries.claim``), and every entry point that books or holds runs its transaction through :func:`retrying`, which
runs it again after a deadlock or serialization failure and answers ``try_again`` (409) if that keeps happening.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from booking_core.db.engine import Db
from booking_core.db.queries import booking as queries
from booking_core.db.tables import Session, SessionLine, SlotHold
from booking_core.domain.actors import Actor
from booking_core.domain.codes import new_booking_code
from booking_core.services import audit, availability, contention, invoicing, lifecycle, reminders
from booking_core.services import settings as clinic_settings
from booking_core.services.errors import Conflict, Invalid, NotFound, ServiceError
from booking_core.services.placement import (
    ExaminationLike,
    Placement,
    place,
    slot_taken,
    taken,
    visit_alternatives,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_EXAMINATIONS = 10
#: How many times one booking transaction runs when PostgreSQL aborts it for a deadlock or serialization failure.
ATTEMPTS = 4
#: How many times a booking reads availability while others in this process claim overlapping time, before claiming.
READS = 3


@dataclass
class ContentionCounts:
    """Transactions run again after a deadlock or serialization failure, and those that still failed (metrics)."""

    retried: int = 0
    gave_up: int = 0


CONTENTION = ContentionCounts()


async def retrying(transaction: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """Run ``transaction`` - a callable that opens, does and commits one whole transaction - until it goes through.

    Claims queue behind each other instead of deadlocking (see ``queries.claim``); this is the backstop for what still
    can go wrong under contention (a deadlock through some other pair of locks, a serialization failure): PostgreSQL
    rolled the whole transaction back, so it is run again from the start, a few times, with a little jitter. If it
    still fails the caller gets ``409 try_again``, never a 500.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await transaction()
        except Exception as exc:
            state = queries.retryable_sqlstate(exc)
            if state is None:
                raise
            if attempt == attempts:
                CONTENTION.gave_up += 1
                log.warning("booking transaction aborted %d times (SQLSTATE %s); answering try_again", attempts, state)
                raise Conflict("try_again", "The calendar is busy at this moment; please try again.") from exc
            CONTENTION.retried += 1
            log.info("booking transaction aborted (SQLSTATE %s); running it again (attempt %d)", state, attempt + 1)
            await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # jitter, not a secret
    raise AssertionError("unreachable")  # pragma: no cover


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("naive_datetime", f"{what} must include a time zone offset, e.g. 2026-12-01T09:00:00+07:00.")
    return value.astimezone(UTC)


def _check_count(ids: Sequence[int]) -> None:
    if not ids:
        raise Invalid("no_examinations", "Choose at least one examination.")
    if len(ids) > MAX_EXAMINATIONS:
        raise Invalid("too_many_examinations", f"At most {MAX_EXAMINATIONS} examinations per visit.")


async def _examinations(
    db: Db, ids: Sequence[int], currency: str, loaded: Sequence[ExaminationLike] | None = None
) -> Sequence[ExaminationLike]:
    _check_count(ids)
    exams = loaded if loaded is not None else await queries.examinations(db, ids)
    found = {e.id for e in exams if e.active}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound("not_found", f"There is no examination {missing[0]}.")
    if any(e.currency != currency for e in exams):
        raise Invalid("currency_mismatch", f"Every examination must be priced in the branch currency {currency}.")
    return exams


async def _claim_or_conflict(
    db: Db,
    placement: Placement,
    *,
    branch_id: int,
    examination_ids: Sequence[int],
    kind: str,
    now: datetime,
    expires_at: datetime | None = None,
    doctor_requested: int | None = None,
) -> int:
    occupancy_id = await queries.claim(
        db,
        branch_id=branch_id,
        doctor_id=placement.doctor_id,
        room_id=placement.room_id,
        start=placement.claim_start,
        end=placement.claim_end,
        kind=kind,
        now=now,
        expires_at=expires_at,
    )
    if occupancy_id is None:
        raise await slot_taken(
            db,
            branch_id=branch_id,
            examination_ids=examination_ids,
            start=placement.start,
            doctor_id=doctor_requested,
            now=now,
        )
    return occupancy_id


async def _refresh_invoice(db: Db, session_id: int, *, actor: Actor) -> None:
    await invoicing.refresh_session_invoice(db, session_id, actor=actor)


async def _open_session(
    db: Db,
    *,
    actor: Actor,
    occupancy_id: int,
    branch_id: int,
    patient_id: int,
    doctor_id: int,
    room_id: int,
    lead_id: int | None,
    starts_at: datetime,
    ends_at: datetime,
    exams: Sequence[ExaminationLike],
    note: dict[str, object],
) -> Session:
    """The session row on an already claimed time, its examination lines, the audit row and the draft invoice."""
    session = await _new_session(
        db,
        occupancy_id=occupancy_id,
        branch_id=branch_id,
        patient_id=patient_id,
        doctor_id=doctor_id,
        room_id=room_id,
        lead_id=lead_id,
        starts_at=starts_at,
        ends_at=ends_at,
        status="waiting",
        created_by=actor.id if actor.kind == "staff" else None,
        # Staff booking a visit accept it by booking it (desk, lead conversion, calendar); a patient's own booking
        # waits for the front desk (Appointments) or the patient's confirmation.
        accepted=actor.kind == "staff",
    )
    db.add_all(_lines(session.id, exams))
    await db.flush()
    data = {"starts_at": starts_at.isoformat(), "examinations": [e.id for e in exams], "lead_id": lead_id,
            "accepted": session.accepted, **note}  # fmt: skip
    audit.record(db, actor, "session.booked", "session", session.id, data)
    await _refresh_invoice(db, session.id, actor=actor)
    await reminders.sync_session(db, session.id)
    return session


async def _new_session(db: Db, **values: object) -> Session:
    for _ in range(5):
        session = await queries.add_session(db, {"booking_code": new_booking_code(), **values})
        if session is not None:
            return session
    raise Conflict("try_again", "Could not allocate a booking code; please try again.")  # pragma: no cover


def _lines(session_id: int, exams: Sequence[ExaminationLike]) -> list[SessionLine]:
    return [
        SessionLine(
            session_id=session_id,
            kind="examination",
            examination_id=e.id,
            name=e.name,
            unit_price=e.price,
            quantity=1,
            taxable=e.taxable,
            position=i,
        )
        for i, e in enumerate(exams)
    ]


async def book(
    db: Db,
    *,
    actor: Actor,
    branch_id: int,
    patient_id: int,
    examination_ids: Sequence[int],
    start: datetime,
    doctor_id: int | None = None,
    room_id: int | None = None,
    lead_id: int | None = None,
    now: datetime | None = None,
) -> Session:
    """Book a visit in one transaction: the claim, the session, its lines and its draft invoice.

    A visit that ended before ``now`` is a record of the past (staff only): it is written completed, without
    availability checks but still refused by the database if it overlaps an active session.

    Under contention in one process (see :mod:`contention`): a request identical to one in flight waits for that one
    and shares its answer, and a booking whose time overlaps a claim in flight waits for it before reading
    availability.
    """
    now = now or datetime.now(UTC)
    start = _utc(start, "start")
    request = {
        "actor": actor,
        "branch_id": branch_id,
        "patient_id": patient_id,
        "examination_ids": examination_ids,
        "start": start,
        "doctor_id": doctor_id,
        "room_id": room_id,
        "lead_id": lead_id,
    }
    if start <= now:  # a record of the past (or a refusal): nothing to share or to queue for
        return await _book(db, **request, now=now, contended=False)  # type: ignore[arg-type]
    key = (actor, branch_id, patient_id, tuple(examination_ids), start, doctor_id, room_id, lead_id)
    while (followed := await contention.follow(db, key)) is not None:
        if followed.refusal is not None:
            raise followed.refusal
        if followed.booked is None:
            break  # the leader failed or took too long: book on our own
        flight = followed.booked

        async def compute() -> object:
            return await visit_alternatives(
                db, branch_id=branch_id, examination_ids=examination_ids, after=start, doctor_id=doctor_id, now=now
            )

        options: list[dict[str, object]] = await contention.shared(flight, "alternatives", compute)  # type: ignore[assignment]
        if not any(datetime.fromisoformat(str(o["start"])) == start for o in options):
            raise taken(options)
        # The time is still free (another doctor or room): try it ourselves, behind whoever goes first.
    flight = contention.lead(db, key)
    try:
        session = await _book(db, **request, now=now, contended=True)  # type: ignore[arg-type]
    except ServiceError as refused:
        contention.crash(key, flight, refused)
        raise
    except BaseException:
        contention.crash(key, flight, None)
        raise
    contention.land(db, key, flight)
    return session


async def _visit_examinations(
    db: Db, *, actor: Actor, branch_id: int, patient_id: int, examination_ids: Sequence[int], contended: bool
) -> Sequence[ExaminationLike]:
    """The examinations of the visit to book, priced in the branch's currency; NotFound names what is missing (the
    branch, out of the actor's reach too, or the patient)."""

    async def read_inputs() -> queries.BookingInputs | None:
        return await queries.booking_inputs(
            db, branch_id=branch_id, patient_id=patient_id, examination_ids=examination_ids
        )

    if contended:  # racing requests for the same patient and examinations read these rows once between them
        inputs = await contention.read_once(("inputs", branch_id, patient_id, tuple(examination_ids)), 0, read_inputs)
    else:
        inputs = await read_inputs()
    if inputs is None:  # something is missing: look each up to say which
        branch = await availability.queries.load_branch(db, branch_id)
        if branch is None or not branch.active:
            raise NotFound("not_found", f"There is no branch {branch_id}.")
        if not actor.can_see_branch(branch_id):
            raise NotFound("not_found", f"There is no branch {branch_id}.")
        if await queries.patient(db, patient_id) is None:
            raise NotFound("not_found", f"There is no patient {patient_id}.")
        currency, loaded = branch.currency, None
    else:
        if not inputs.branch_active or not actor.can_see_branch(branch_id):
            raise NotFound("not_found", f"There is no branch {branch_id}.")
        currency, loaded = inputs.currency, inputs.examinations
    return await _examinations(db, examination_ids, currency, loaded)


async def _book(
    db: Db,
    *,
    actor: Actor,
    branch_id: int,
    patient_id: int,
    examination_ids: Sequence[int],
    start: datetime,
    doctor_id: int | None,
    room_id: int | None,
    lead_id: int | None,
    now: datetime,
    contended: bool,
) -> Session:
    _check_count(examination_ids)
    exams = await _visit_examinations(
        db, actor=actor, branch_id=branch_id, patient_id=patient_id, examination_ids=examination_ids,
        contended=contended,
    )  # fmt: skip
    primary = exams[0]
    duration = sum(e.duration_min for e in exams)
    end = start + timedelta(minutes=duration)
    past = end <= now
    turn, since = None, None
    if contended and not past:
        turn, since = await _queue_for_turn(
            db, exams, branch_id=branch_id, doctor_id=doctor_id, room_id=room_id, start=start, end=end
        )
    try:
        if past:
            placement = await _place_past(
                db,
                branch_id=branch_id,
                examination=primary,
                start=start,
                end=end,
                doctor_id=doctor_id,
                room_id=room_id,
                actor=actor,
            )
        else:
            placement = await _place_in_turn(
                db, turn, since, branch_id=branch_id, examinations=exams, start=start, doctor_id=doctor_id,
                room_id=room_id, now=now,
            )  # fmt: skip
        occupancy_id = await _claim_or_conflict(
            db,
            placement,
            branch_id=branch_id,
            examination_ids=examination_ids,
            kind="session",
            now=now,
            doctor_requested=doctor_id,
        )
    except BaseException:
        if turn is not None and turn.registered:
            contention.give_back(turn)
        raise
    if turn is not None:
        contention.hold_until_transaction_end(db, turn)  # others overlapping it read availability after our commit
    session = await _open_session(
        db,
        actor=actor,
        occupancy_id=occupancy_id,
        branch_id=branch_id,
        patient_id=patient_id,
        doctor_id=placement.doctor_id,
        room_id=placement.room_id,
        lead_id=lead_id,
        starts_at=placement.start,
        ends_at=placement.end,
        exams=exams,
        note={"branch_id": branch_id, "doctor_id": placement.doctor_id, "room_id": placement.room_id},
    )
    if past:
        # A visit booked entirely in the past is completed at once (commissions, invoice, its time freed).
        await lifecycle.auto_complete_past(db, now=now, actor=actor, branch_id=branch_id)
    return session


async def _queue_for_turn(
    db: Db,
    exams: Sequence[ExaminationLike],
    *,
    branch_id: int,
    doctor_id: int | None,
    room_id: int | None,
    start: datetime,
    end: datetime,
) -> tuple[contention.Turn, int | None]:
    """Line up with racers in this process for overlapping time (buffers included): wait for one already claiming
    it (then ``since`` marks when we read), or take the turn at once when nobody is in the way."""
    turn = contention.turn(
        db,
        branch_id=branch_id,
        doctor_id=doctor_id,
        room_id=room_id,
        start=start - timedelta(minutes=max(e.buffer_before_min for e in exams)),
        end=end + timedelta(minutes=max(e.buffer_after_min for e in exams)),
    )
    if await contention.wait(turn):
        return turn, contention.mark()
    contention.take(turn)  # nobody in the way: claim straight after our check
    return turn, None


async def _place_in_turn(
    db: Db,
    turn: contention.Turn | None,
    since: int | None,
    *,
    branch_id: int,
    examinations: Sequence[ExaminationLike],
    start: datetime,
    doctor_id: int | None,
    room_id: int | None,
    now: datetime,
) -> Placement:
    """Where the visit goes, read while taking turns with overlapping racers: after waiting for an overlapping claim,
    read and check with the others who waited (most of them learn here that the time has gone), and take a turn only
    to claim; if someone began claiming overlapping time while we read, read again after them (at most READS)."""
    for reads in range(1, READS + 1):
        placement = await place(
            db,
            branch_id=branch_id,
            examinations=examinations,
            start=start,
            doctor_id=doctor_id,
            room_id=room_id,
            now=now,
            since=since,
        )
        if turn is None or turn.registered:
            return placement
        if reads == READS or not contention.blocked(turn):
            contention.take(turn)
            return placement
        await contention.wait(turn)
        since = contention.mark()
    raise AssertionError("unreachable: the last read returns")


async def _place_past(
    db: Db,
    *,
    branch_id: int,
    examination: ExaminationLike,
    start: datetime,
    end: datetime,
    doctor_id: int | None,
    room_id: int | None,
    actor: Actor,
) -> Placement:
    if actor.kind != "staff":
        raise Invalid("in_the_past", "That time has passed; choose a time from now on.")
    if doctor_id is None or room_id is None:
        raise Invalid("doctor_and_room_required", "To record a past visit, name its doctor and room.")
    room = await queries.room(db, room_id)
    if room is None or room.branch_id != branch_id:
        raise NotFound("not_found", f"There is no room {room_id} at this branch.")
    return Placement(doctor_id, room_id, start, end, start, end)


async def hold(
    db: Db,
    *,
    actor: Actor,
    branch_id: int,
    examination_id: int,
    start: datetime,
    doctor_id: int | None = None,
    patient_id: int | None = None,
    conversation_id: int | None = None,
    minutes: int | None = None,
    now: datetime | None = None,
) -> SlotHold:
    """Keep a slot for a few minutes while a patient confirms; the database treats it like a booking until then."""
    now = now or datetime.now(UTC)
    start = _utc(start, "start")
    minutes = minutes or int(await clinic_settings.get(db, "hold_minutes"))
    if not 1 <= minutes <= 60:
        raise Invalid("invalid_hold", "A hold lasts between 1 and 60 minutes.")
    branch = await availability.queries.load_branch(db, branch_id)
    if branch is None or not actor.can_see_branch(branch_id):
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    (exam,) = await _examinations(db, [examination_id], branch.currency)
    placement = await place(
        db, branch_id=branch_id, examinations=[exam], start=start, doctor_id=doctor_id, room_id=None, now=now
    )
    expires_at = now + timedelta(minutes=minutes)
    occupancy_id = await _claim_or_conflict(
        db,
        placement,
        branch_id=branch_id,
        examination_ids=[exam.id],
        kind="hold",
        now=now,
        expires_at=expires_at,
        doctor_requested=doctor_id,
    )
    row = SlotHold(
        occupancy_id=occupancy_id,
        branch_id=branch_id,
        doctor_id=placement.doctor_id,
        room_id=placement.room_id,
        examination_id=exam.id,
        patient_id=patient_id,
        conversation_id=conversation_id,
        starts_at=placement.start,
        ends_at=placement.end,
        expires_at=expires_at,
        status="active",
    )
    db.add(row)
    await db.flush()
    audit.record(
        db,
        actor,
        "hold.created",
        "slot_hold",
        row.id,
        {"starts_at": placement.start.isoformat(), "doctor_id": placement.doctor_id, "minutes": minutes},
    )
    return row


async def release_hold(db: Db, hold_id: int, *, actor: Actor) -> SlotHold:
    """Give a held slot back (the patient said no, or changed their mind)."""
    row = await queries.lock_hold(db, hold_id)
    if row is None or not actor.can_see_branch(row.branch_id):
        raise NotFound("not_found", f"There is no hold {hold_id}.")
    if row.status != "active":
        raise Conflict("hold_not_active", f"That hold is already {row.status}.")
    row.status = "released"
    if row.occupancy_id is not None:
        claim = await queries.occupancy(db, row.occupancy_id)
        if claim is not None:
            claim.active = False
    await db.flush()
    audit.record(db, actor, "hold.released", "slot_hold", row.id)
    return row


async def convert_hold(
    db: Db,
    hold_id: int,
    *,
    actor: Actor,
    patient_id: int,
    lead_id: int | None = None,
    now: datetime | None = None,
) -> Session:
    """Turn a hold into a session. The claim row moves over, so the slot is never free in between.

    An expired (or released) hold is booked afresh if its time is still free, else ``slot_taken``.
    """
    now = now or datetime.now(UTC)
    row = await queries.lock_hold(db, hold_id)
    if row is None or not actor.can_see_branch(row.branch_id):
        raise NotFound("not_found", f"There is no hold {hold_id}.")
    if row.status == "converted":
        raise Conflict("hold_converted", "That hold has already become a session.")
    if await queries.patient(db, patient_id) is None:
        raise NotFound("not_found", f"There is no patient {patient_id}.")
    live = row.status == "active" and row.expires_at > now and row.occupancy_id is not None
    if not live:
        if row.status == "active":
            row.status = "expired"
            if row.occupancy_id is not None and (claim := await queries.occupancy(db, row.occupancy_id)):
                claim.active = False
            await db.flush()
        return await book(
            db,
            actor=actor,
            branch_id=row.branch_id,
            patient_id=patient_id,
            examination_ids=[row.examination_id],
            start=row.starts_at,
            doctor_id=row.doctor_id,
            lead_id=lead_id,
            now=now,
        )
    occupancy_id = row.occupancy_id
    assert occupancy_id is not None  # live holds own their claim
    claim = await queries.occupancy(db, occupancy_id)
    assert claim is not None
    claim.kind, claim.expires_at = "session", None
    row.occupancy_id, row.status = None, "converted"
    await db.flush()
    session = await _open_session(
        db,
        actor=actor,
        occupancy_id=occupancy_id,
        branch_id=row.branch_id,
        patient_id=patient_id,
        doctor_id=row.doctor_id,
        room_id=row.room_id,
        lead_id=lead_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        exams=await queries.examinations(db, [row.examination_id]),
        note={"from_hold": row.id},
    )
    return session


async def expire_holds(db: Db, *, now: datetime | None = None) -> int:
    """Sweep: holds past their time are marked expired and their claims freed (availability ignores them already)."""
    return await queries.expire_holds(db, now=now or datetime.now(UTC))
