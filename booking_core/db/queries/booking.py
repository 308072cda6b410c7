"""Writes that claim time: occupancies (refused by the exclusion constraints), holds and sessions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import ColumnElement, event, exists, or_, select, update
from sqlalchemy.dialects.postgresql import Range, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction

from booking_core.db.tables import Branch, Examination, Occupancy, Patient, Room, Session, SlotHold

log = logging.getLogger(__name__)

#: SQLSTATEs after which the whole transaction may simply run again: deadlock detected, serialization failure.
RETRYABLE = frozenset({"40P01", "40001"})


def retryable_sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE if ``exc`` (or what it wraps) is a deadlock or serialization failure, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str) and state in RETRYABLE:
            return state
        current = getattr(current, "orig", None) or current.__cause__
    return None


_ON_END = "frontdesk.on_transaction_end"
_COMMITTED = "frontdesk.committed"


def on_transaction_end(db: AsyncSession, callback: Callable[[bool], None]) -> None:
    """Call ``callback(committed)`` once, when the session's current (outermost) transaction ends.

    ``committed`` is True after a commit, False after a rollback or a close without commit. The callback runs inside
    SQLAlchemy's event hook: it must be quick and must not raise (it only wakes waiters).
    """
    db.sync_session.info.setdefault(_ON_END, []).append(callback)


def same_transaction_owner(db: AsyncSession) -> object:
    """What identifies ``db``'s transactions in process-local bookkeeping (the underlying ORM session)."""
    return db.sync_session


@event.listens_for(OrmSession, "after_commit")
def _after_commit(session: OrmSession) -> None:
    if _ON_END in session.info and session.get_nested_transaction() is None:  # the outermost one, not a savepoint
        session.info[_COMMITTED] = True


@event.listens_for(OrmSession, "after_transaction_end")
def _after_transaction_end(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or transaction.nested or _ON_END not in session.info:
        return
    callbacks: list[Callable[[bool], None]] = session.info.pop(_ON_END)
    committed = bool(session.info.pop(_COMMITTED, False))
    for callback in callbacks:
        try:
            callback(committed)
        except Exception:  # only waiters are woken here: never let that break a commit or a rollback
            log.exception("transaction-end callback failed")


@dataclass(frozen=True)
class ExaminationFacts:
    """What a booking reads of an examination, as plain values: concurrent bookings may share one read of it."""

    id: int
    name: str
    price: Decimal
    currency: str
    duration_min: int
    taxable: bool
    room_kind: str | None
    buffer_before_min: int
    buffer_after_min: int
    active: bool


@dataclass(frozen=True)
class BookingInputs:
    """A booking's branch (whether it is open, its currency) and examinations (those that exist, in the order asked)."""

    branch_active: bool
    currency: str
    examinations: tuple[ExaminationFacts, ...]


def _facts(e: Examination) -> ExaminationFacts:
    return ExaminationFacts(
        id=e.id,
        name=e.name,
        price=e.price,
        currency=e.currency,
        duration_min=e.duration_min,
        taxable=e.taxable,
        room_kind=e.room_kind,
        buffer_before_min=e.buffer_before_min,
        buffer_after_min=e.buffer_after_min,
        active=e.active,
    )


async def booking_inputs(
    db: AsyncSession, *, branch_id: int, patient_id: int, examination_ids: Sequence[int]
) -> BookingInputs | None:
    """Branch, patient and examinations of a booking in one round trip (they land in the session's identity map).

    None unless the branch, the patient and at least one examination exist; the caller then looks them up one by one
    to say which is missing.
    """
    rows = (
        await db.execute(
            select(Branch, Patient.id, Examination)
            .select_from(Branch)
            .join(Patient, Patient.id == patient_id)
            .join(Examination, Examination.id.in_(list(examination_ids)))
            .where(Branch.id == branch_id)
        )
    ).all()
    if not rows:
        return None
    branch: Branch = rows[0][0]
    by_id: dict[int, Examination] = {row[2].id: row[2] for row in rows}
    exams = tuple(_facts(by_id[i]) for i in examination_ids if i in by_id)
    return BookingInputs(branch_active=branch.active, currency=branch.currency, examinations=exams)


def _expired_holds_in_the_way(
    *, doctor_id: int, room_id: int, period: Range[datetime], now: datetime
) -> tuple[ColumnElement[bool], ...]:
    return (
        Occupancy.kind == "hold",
        Occupancy.active.is_(True),
        Occupancy.expires_at <= now,
        Occupancy.during.op("&&")(period),
        or_(Occupancy.doctor_id == doctor_id, Occupancy.room_id == room_id),
    )


async def release_expired_holds(
    db: AsyncSession, *, doctor_id: int, room_id: int, start: datetime, end: datetime, now: datetime
) -> int:
    """Free expired holds that stand in the way of a claim (the constraint cannot look at the clock); how many.

    Hold first, then its claim: the same order as :func:`expire_holds` and ``release_hold``, so a sweep and a claim
    never wait for each other's rows the other way round."""
    period = Range(start, end, bounds="[)")
    in_the_way = select(Occupancy.id).where(
        *_expired_holds_in_the_way(doctor_id=doctor_id, room_id=room_id, period=period, now=now)
    )
    await db.execute(
        update(SlotHold)
        .where(SlotHold.occupancy_id.in_(in_the_way), SlotHold.status == "active")
        .values(status="expired")
        .execution_options(synchronize_session=False)
    )
    freed = await db.execute(
        update(Occupancy)
        .where(Occupancy.id.in_(in_the_way))
        .values(active=False)
        .returning(Occupancy.id)
        .execution_options(synchronize_session=False)
    )
    return len(freed.all())


async def claim(
    db: AsyncSession,
    *,
    branch_id: int,
    doctor_id: int,
    room_id: int,
    start: datetime,
    end: datetime,
    kind: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> int | None:
    """Claim the doctor's and room's time; the new occupancy's id, or None when something active overlaps it.

    ``INSERT ... ON CONFLICT DO NOTHING`` with both exclusion constraints as arbiters. Unlike a plain insert (which
    writes its row into both constraints' indexes and then looks for overlaps, so two claims racing for one doctor or
    room can each find the other's uncommitted row and wait for it: a deadlock, found after ``deadlock_timeout``),
    PostgreSQL's speculative insertion first waits for any uncommitted overlapping claim to finish, holding nothing,
    then inserts; a race it loses at the last moment takes its row back and waits again. So claims queue behind the
    one in progress and never deadlock each other (400 racing claims over 3 doctors and 3 rooms: 92 deadlocks with
    a plain insert, none this way), and a refusal is an empty result, not an error in a savepoint. If expired holds
    are in the way, they are freed and the insert tried once more.
    """
    period = Range(start, end, bounds="[)")
    inserted = (
        insert(Occupancy)
        .values(
            branch_id=branch_id,
            doctor_id=doctor_id,
            room_id=room_id,
            during=period,
            kind=kind,
            active=True,
            expires_at=expires_at,
        )
        .on_conflict_do_nothing()
        .returning(Occupancy.id)
        .cte("claimed")
    )
    # In the same round trip: whether an expired hold (still active: the sweep has not reached it) is in the way.
    statement = select(
        select(inserted.c.id).scalar_subquery(),
        exists().where(*_expired_holds_in_the_way(doctor_id=doctor_id, room_id=room_id, period=period, now=now)),
    )
    occupancy_id, expired_in_the_way = (await db.execute(statement)).one()
    if occupancy_id is None and expired_in_the_way:
        await release_expired_holds(db, doctor_id=doctor_id, room_id=room_id, start=start, end=end, now=now)
        occupancy_id = (await db.execute(statement)).one()[0]
    return cast("int | None", occupancy_id)


async def add_session(db: AsyncSession, values: dict[str, object]) -> Session | None:
    """Insert a session (one round trip, no savepoint); None when its booking code is taken (draw a new one)."""
    inserted = (
        insert(Session)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Session.booking_code])
        .returning(Session)
    )
    return (await db.scalars(inserted)).one_or_none()


async def examinations(db: AsyncSession, ids: Sequence[int]) -> list[Examination]:
    rows = (await db.execute(select(Examination).where(Examination.id.in_(ids)))).scalars().all()
    by_id = {row.id: row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


async def patient(db: AsyncSession, patient_id: int) -> Patient | None:
    return await db.get(Patient, patient_id)


async def room(db: AsyncSession, room_id: int) -> Room | None:
    return await db.get(Room, room_id)


async def lock_hold(db: AsyncSession, hold_id: int) -> SlotHold | None:
    return (await db.execute(select(SlotHold).where(SlotHold.id == hold_id).with_for_update())).scalar_one_or_none()


async def occupancy(db: AsyncSession, occupancy_id: int) -> Occupancy | None:
    return await db.get(Occupancy, occupancy_id)


async def session_by_lead(db: AsyncSession, lead_id: int) -> Session | None:
    return (await db.execute(select(Session).where(Session.lead_id == lead_id))).scalar_one_or_none()


async def expire_holds(db: AsyncSession, *, now: datetime) -> int:
    """Mark every hold past its expiry as expired and free its time."""
    expired = await db.execute(
        update(SlotHold)
        .where(SlotHold.status == "active", SlotHold.expires_at <= now)
        .values(status="expired")
        .returning(SlotHold.occupancy_id)
    )
    ids = [i for i in expired.scalars() if i is not None]
    if ids:
        await db.execute(update(Occupancy).where(Occupancy.id.in_(ids)).values(active=False))
    return len(ids)
