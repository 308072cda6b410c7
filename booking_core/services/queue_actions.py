"""What the front desk, the doctors and the scanner do to the waiting room: check in with the day's token, move
an entry (manual order), "call next", and choose the order patients are called in.

Each change writes under the database's guards (see :mod:`booking_core.db.queries.queue`) and then announces new
first and second places (:func:`booking_core.services.queue_replies.queue_changed`) in the same transaction.

Lock order, kept by every function here so two of them never deadlock: doctor row, then the day's queue entries,
then a session row. Check-in only locks its own session and then the branch's counter row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from booking_core.db.engine import Db
from booking_core.db.queries import clinic as clinic_queries
from booking_core.db.queries import queue as queries
from booking_core.db.tables import Branch, Session
from booking_core.domain import queue as rules
from booking_core.domain.actors import Actor
from booking_core.domain.codes import BOOKING_CODE_LENGTH, normalize_code
from booking_core.domain.lifecycle import (
    NOT_ACCEPTED_MESSAGE,
    START_DAYS_SETTING,
    InvalidTransition,
    SessionStatus,
    VisitFacts,
    check_in_refusal,
    start_days_ahead,
    step_refusal,
    transition,
)
from booking_core.domain.queue import QueueError, SortMode
from booking_core.services import audit, queue_replies, settings
from booking_core.services.errors import Conflict, Forbidden, Invalid, NotFound
from booking_core.services.queue import (
    SORT_SETTING,
    Board,
    BoardLine,
    QueueTicket,
    aware,
    board_of,
    default_sort,
    load_branch,
    local_day,
    position_for_session,
    queue_entry,
    visible_branch,
)

__all__ = [
    "CALLING_ORDERS",
    "CheckInOutcome",
    "CheckInResult",
    "call_next",
    "check_in",
    "check_in_by_booking_code",
    "move",
    "set_order",
]

#: How far in the future a recorded arrival may lie (device clocks disagree a little).
ARRIVAL_SKEW = timedelta(minutes=5)
#: A manual rank for the first entry of a day, and the step each later check-in adds.
FIRST_RANK = rules.RANK_GAP
#: The orders patients can be called in ("newest first" is a way to look at the board, not to call people).
CALLING_ORDERS = (SortMode.ARRIVAL, SortMode.TIME, SortMode.MANUAL)


class CheckInOutcome(StrEnum):
    """What a check-in by booking code (the QR scanner) came to."""

    CHECKED_IN = "checked_in"
    ALREADY_CHECKED_IN = "already_checked_in"
    NOT_ACCEPTED = "not_accepted"  # the visit was never accepted/confirmed; staff may accept it on the spot
    OTHER_BRANCH = "other_branch"  # booked at another branch than the scanner's
    UNKNOWN = "unknown"  # no such booking code
    CANCELLED = "cancelled"
    NOT_WAITING = "not_waiting"  # already with the doctor, or finished, without a queue entry
    WRONG_DAY = "wrong_day"  # the visit is on another day


@dataclass(frozen=True)
class CheckInResult:
    outcome: CheckInOutcome
    session_id: int | None = None
    ticket: QueueTicket | None = None


_REFUSALS = {
    CheckInOutcome.NOT_ACCEPTED: NOT_ACCEPTED_MESSAGE,
    CheckInOutcome.CANCELLED: "This visit was cancelled.",
    CheckInOutcome.NOT_WAITING: "This visit is already with the doctor or finished.",
    CheckInOutcome.WRONG_DAY: "This visit is on another day; patients check in on the day of their visit.",
}


async def check_in(
    db: Db, session_id: int, *, actor: Actor, now: datetime | None = None, arrived_at: datetime | None = None
) -> QueueTicket:
    """Put a waiting session in its branch's queue for the day and give it the day's next token.

    ``arrived_at`` (default ``now``) is recorded as the arrival; it must be on the session's local day. Only an
    accepted visit checks in (the same rule as the scanner's): accept it first. Raises 404 for an unknown or unseen
    session, 409 ``already_checked_in`` (details carry the existing token), ``cancelled``, ``not_waiting``,
    ``wrong_day`` or ``not_accepted``.
    """
    now = aware(now, "now")
    arrived = _arrival(arrived_at, now)
    session = await queries.lock_session(db, session_id)
    if session is None or not actor.can_see_branch(session.branch_id):
        raise NotFound("not_found", f"There is no session {session_id}.")
    branch = await load_branch(db, session.branch_id)
    existing = await queries.entry_for_session(db, session.id)
    refusal = _refusal(session, branch, existing is not None, arrived)
    if refusal is CheckInOutcome.ALREADY_CHECKED_IN:
        assert existing is not None
        raise Conflict(
            "already_checked_in",
            f"This visit is already checked in as {existing.token}.",
            details={"token": existing.token, "entry_id": existing.id},
        )
    if refusal is not None:
        raise Conflict(refusal.value, _REFUSALS[refusal])
    return await _enqueue(db, session, branch, actor=actor, now=now, arrived_at=arrived)


def _not_accepted(session: Session, branch: Branch) -> bool:
    facts = VisitFacts(accepted=session.accepted, starts_at=session.starts_at, ends_at=session.ends_at, tz=branch.tz)
    return check_in_refusal(facts) is not None


async def check_in_by_booking_code(
    db: Db,
    booking_code: str,
    branch_id: int,
    *,
    actor: Actor,
    accept: bool = False,
    now: datetime | None = None,
) -> CheckInResult:
    """Check in the visit behind a scanned or typed booking code at the scanner's branch ``branch_id``.

    Never raises for the code itself: every case the scanner must show is an outcome. Only an accepted visit
    checks in, so an unaccepted one is ``not_accepted`` unless staff pass ``accept=True``: they accept it at the
    desk (audited ``session.accepted`` via ``check_in``) and check it in, one step.
    Raises 404 only when the caller may not see ``branch_id``.
    """
    now = aware(now, "now")
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", f"There is no branch {branch_id}.")
    code = normalize_code(booking_code, length=BOOKING_CODE_LENGTH)
    session_id = None if code is None else await queries.session_id_by_booking_code(db, code)
    if session_id is None:
        return CheckInResult(CheckInOutcome.UNKNOWN)
    session = await queries.lock_session(db, session_id)
    if session is None:
        return CheckInResult(CheckInOutcome.UNKNOWN)
    if session.branch_id != branch_id:
        return CheckInResult(CheckInOutcome.OTHER_BRANCH)
    branch = await load_branch(db, branch_id)
    existing = await queries.entry_for_session(db, session.id)
    refusal = _refusal(session, branch, existing is not None, now)
    if refusal is CheckInOutcome.ALREADY_CHECKED_IN:
        return CheckInResult(refusal, session.id, await position_for_session(db, session.id, now=now))
    if refusal is not None and refusal is not CheckInOutcome.NOT_ACCEPTED:
        return CheckInResult(refusal, session.id)
    if _not_accepted(session, branch):
        if not accept:
            return CheckInResult(CheckInOutcome.NOT_ACCEPTED, session.id)
        session.accepted = True
        audit.record(db, actor, "session.accepted", "session", session.id, {"via": "check_in"})
    ticket = await _enqueue(db, session, branch, actor=actor, now=now, arrived_at=now)
    return CheckInResult(CheckInOutcome.CHECKED_IN, session.id, ticket)


async def move(
    db: Db,
    entry_id: int,
    *,
    actor: Actor,
    before: int | None = None,
    after: int | None = None,
    now: datetime | None = None,
    within: SortMode | None = None,
) -> Board:
    """Move an entry directly before or after another one of the same day's queue (manual order).

    ``within`` is the order the person moving was looking at: when it is not the manual order, the manual order
    first becomes that one (so "move up" on a board sorted by arrival moves past the patient shown above).
    The day's entries are locked while the new ranks are written. Returns the board in manual order.
    Raises 404 for an unknown entry, 422 ``not_in_this_queue`` when the other entry is of another branch or
    day (or unknown), 422 with the domain's code for a malformed move or an entry that left the queue.
    """
    now = aware(now, "now")
    entry = await queries.load_entry(db, entry_id)
    if entry is None or not actor.can_see_branch(entry.branch_id):
        raise NotFound("not_found", f"There is no queue entry {entry_id}.")
    rows = await queries.day_rows(db, entry.branch_id, entry.day, lock=True)
    by_id = {row.entry.id: row for row in rows}
    target = before if before is not None else after
    if target is not None and target not in by_id:
        raise Invalid("not_in_this_queue", "Both entries must be in the same branch's queue on the same day.")
    entries = [queue_entry(row) for row in rows]
    adopted = rules.adopt(entries, SortMode(within)) if within and within is not SortMode.MANUAL else {}
    entries = [replace(e, rank=adopted[e.entry_id]) if e.entry_id in adopted else e for e in entries]
    try:
        changes = adopted | rules.move(entries, entry_id, before=before, after=after)
    except QueueError as exc:
        raise Invalid(exc.code, str(exc)) from None
    for changed_id, rank in changes.items():
        by_id[changed_id].entry.rank = rank
    await db.flush()
    audit.record(
        db,
        actor,
        "queue.moved",
        "queue_entry",
        entry_id,
        {"before": before, "after": after, "within": SortMode(within).value if within else None,
         "ranks": {str(k): v for k, v in changes.items()}},
    )  # fmt: skip
    await queue_replies.queue_changed(db, branch_id=entry.branch_id, day=entry.day, now=now)
    active = [row for row in rows if row.session.status in queries.ACTIVE]
    return board_of(entry.branch_id, entry.day, SortMode.MANUAL, now, active, actor)


async def call_next(
    db: Db,
    branch_id: int,
    doctor_id: int,
    *,
    actor: Actor,
    sort: SortMode | None = None,
    now: datetime | None = None,
) -> BoardLine:
    """Open the session of the doctor's next waiting patient in today's queue (``sort``: the clinic's default).

    Raises 404 for an unknown or unseen branch or doctor, 403 when a doctor calls for another doctor,
    409 ``doctor_busy`` while the doctor has an open session, 409 ``nobody_waiting`` when the queue is empty.
    """
    now = aware(now, "now")
    branch = await visible_branch(db, branch_id, actor)
    if actor.role == "doctor" and actor.doctor_id != doctor_id:
        raise Forbidden("not_your_queue", "A doctor can only call their own next patient.")
    doctor = await queries.lock_doctor(db, doctor_id)
    if doctor is None:
        raise NotFound("not_found", f"There is no doctor {doctor_id}.")
    busy = await queries.open_session_ids(db, doctor.id)
    if busy:
        raise Conflict(
            "doctor_busy",
            f"{doctor.name} is still with a patient; complete that visit first.",
            details={"session_ids": busy},
        )
    sort = SortMode(sort) if sort else await default_sort(db)
    day = local_day(now, branch)
    rows = await queries.day_rows(db, branch.id, day, lock=True)
    entries = [queue_entry(row) for row in rows]
    while True:
        candidate = rules.next_up(entries, sort).get(doctor.id)
        if candidate is None:
            raise Conflict("nobody_waiting", f"Nobody is waiting for {doctor.name}.")
        session = await queries.lock_session(db, candidate.session_id)
        assert session is not None  # queue entries cascade with their session
        if session.status == SessionStatus.WAITING:
            break
        # Cancelled (or opened) by someone else since the board was read: take the next one.
        entries = [replace(e, status=SessionStatus(session.status)) if e is candidate else e for e in entries]
    facts = VisitFacts(accepted=session.accepted, starts_at=session.starts_at, ends_at=session.ends_at, tz=branch.tz)
    days_ahead = start_days_ahead(await settings.get(db, START_DAYS_SETTING))
    if (refused := step_refusal(SessionStatus.OPEN, facts, now=now, days_ahead=days_ahead)) is not None:
        raise Conflict(refused.code, f"{candidate.token}: {refused}", details={"session_id": session.id})
    try:
        change = transition(SessionStatus(session.status), SessionStatus.OPEN, at=now)
    except InvalidTransition as exc:  # pragma: no cover - the loop only leaves with a waiting session
        raise Conflict(exc.code, str(exc)) from None
    session.status = change.status.value
    for name, value in change.timestamps().items():
        setattr(session, name, value)
    await db.flush()
    audit.record(
        db,
        actor,
        "session.opened",
        "session",
        session.id,
        {"from": change.previous.value, "to": change.status.value, "via": "call_next", "token": candidate.token},
    )
    await queue_replies.queue_changed(db, branch_id=branch.id, day=day, now=now)
    active = [row for row in rows if row.session.status in queries.ACTIVE]
    opened = board_of(branch.id, day, sort, now, active, actor=None)
    return next(line for line in opened.lines if line.ticket.entry_id == candidate.entry_id)


async def set_order(db: Db, sort: SortMode, *, actor: Actor, now: datetime | None = None) -> SortMode:
    """Choose the order patients are called in, clinic-wide (setting ``queue_sort``): arrival, time or manual.

    "Call next", patients' places (chat, tracker) and the "you are next" notices all follow it. The front desk
    chooses it (a doctor gets 403); "newest" is refused (422 ``invalid_order``): nobody is called newest first.
    Today's queues are re-announced under the new order.
    """
    now = aware(now, "now")
    if actor.kind == "staff" and actor.role == "doctor":
        raise Forbidden("forbidden", "The front desk chooses the queue order.")
    try:
        sort = SortMode(sort)
    except ValueError:
        raise Invalid("invalid_order", "Choose arrival, time or manual order.") from None
    if sort not in CALLING_ORDERS:
        raise Invalid("invalid_order", "Choose arrival, time or manual order.")
    previous = await default_sort(db)
    if previous is sort:
        return sort
    await clinic_queries.put_setting(db, SORT_SETTING, sort.value)
    audit.record(db, actor, "queue.order_changed", "clinic_setting", None, {"from": previous.value, "to": sort.value})
    for branch_id, day in await queries.active_queue_days(db, since=(now - timedelta(days=1)).date()):
        await queue_replies.queue_changed(db, branch_id=branch_id, day=day, now=now)  # only today's announce
    return sort


def _arrival(arrived_at: datetime | None, now: datetime) -> datetime:
    if arrived_at is None:
        return now
    arrived = aware(arrived_at, "arrived_at")
    if arrived > now + ARRIVAL_SKEW:
        raise Invalid("arrival_in_future", "The arrival time cannot be in the future.")
    return arrived


def _refusal(session: Session, branch: Branch, in_queue: bool, arrived: datetime) -> CheckInOutcome | None:
    """Why this session cannot check in now, or ``None`` when it can (acceptance last: the scanner may accept)."""
    status = SessionStatus(session.status)
    if status is SessionStatus.CANCELLED:
        return CheckInOutcome.CANCELLED
    if in_queue:
        return CheckInOutcome.ALREADY_CHECKED_IN
    if status is not SessionStatus.WAITING:
        return CheckInOutcome.NOT_WAITING
    if local_day(arrived, branch) != local_day(session.starts_at, branch):
        return CheckInOutcome.WRONG_DAY
    if _not_accepted(session, branch):
        return CheckInOutcome.NOT_ACCEPTED
    return None


async def _enqueue(
    db: Db, session: Session, branch: Branch, *, actor: Actor, now: datetime, arrived_at: datetime
) -> QueueTicket:
    """Write the entry: the token comes first because its upsert locks the counter row, which serialises the
    day's check-ins so the rank read next already sees every earlier entry."""
    day = local_day(session.starts_at, branch)
    number = await queries.next_number(db, branch.id, day)
    token = rules.format_token(branch.token_prefix, number)
    top = await queries.max_active_rank(db, branch.id, day)
    rank = FIRST_RANK if top is None else top + rules.RANK_GAP
    entry = await queries.add_entry(
        db, session=session, day=day, number=number, token=token, arrived_at=arrived_at, rank=rank
    )
    await db.flush()
    audit.record(
        db,
        actor,
        "queue.checked_in",
        "session",
        session.id,
        {"entry_id": entry.id, "token": token, "day": day.isoformat()},
    )
    await queue_replies.queue_changed(db, branch_id=branch.id, day=day, now=now)
    ticket = await position_for_session(db, session.id, now=now)
    assert ticket is not None  # just queued, and waiting
    return ticket
