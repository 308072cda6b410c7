"""Queries behind the waitlist: entries, offers of freed slots, and the atomic "first to accept takes it"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import (
    Branch,
    ChannelIdentity,
    Doctor,
    Examination,
    ExaminationBranch,
    OutboxMessage,
    Patient,
    Session,
    SessionLine,
    WaitlistEntry,
    WaitlistOffer,
)

#: Entries that still want a slot (an entry that was offered one stays interested until it books).
INTERESTED = ("waiting", "offered")
#: Outbox dedupe keys of offers: the outbox is the record of who was offered what.
OFFER_KEY = "waitlist-offer:{offer_id}:{entry_id}"


@dataclass(frozen=True)
class FreedSlot:
    """A session whose time was just given back, with the examination and branch it was for."""

    session: Session
    examination_id: int
    tz: str


@dataclass(frozen=True)
class OfferFacts:
    """What an offer message says: the names behind the offer's ids."""

    branch_name: str
    tz: str
    doctor_name: str
    examination_name: str


async def lock_patient(db: AsyncSession, patient_id: int) -> Patient | None:
    """``FOR NO KEY UPDATE`` on the patient: one patient's joins run one after the other (no duplicate entries),
    while bookings that merely reference the patient are not held up."""
    result = await db.execute(select(Patient).where(Patient.id == patient_id).with_for_update(key_share=True))
    return result.scalar_one_or_none()


async def branch(db: AsyncSession, branch_id: int) -> Branch | None:
    return await db.get(Branch, branch_id)


async def offered_examination(db: AsyncSession, branch_id: int, examination_id: int) -> Examination | None:
    """The examination if it is active and offered at the branch."""
    result = await db.execute(
        select(Examination)
        .join(ExaminationBranch, ExaminationBranch.examination_id == Examination.id)
        .where(
            Examination.id == examination_id,
            Examination.active.is_(True),
            ExaminationBranch.branch_id == branch_id,
        )
    )
    return result.scalar_one_or_none()


async def identity(db: AsyncSession, identity_id: int | None) -> ChannelIdentity | None:
    return None if identity_id is None else await db.get(ChannelIdentity, identity_id)


async def find_entry(
    db: AsyncSession, *, patient_id: int, branch_id: int, examination_id: int, day: date
) -> WaitlistEntry | None:
    """The patient's entry that still wants this day and examination, if any (oldest first)."""
    result = await db.execute(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.patient_id == patient_id,
            WaitlistEntry.branch_id == branch_id,
            WaitlistEntry.examination_id == examination_id,
            WaitlistEntry.day == day,
            WaitlistEntry.status.in_(INTERESTED),
        )
        .order_by(WaitlistEntry.id)
        .limit(1)
    )
    return result.scalar_one_or_none()


async def add_entry(db: AsyncSession, values: dict[str, Any]) -> WaitlistEntry:
    entry = WaitlistEntry(**values)
    db.add(entry)
    await db.flush()
    return entry


async def entry(db: AsyncSession, entry_id: int, *, lock: bool = False) -> WaitlistEntry | None:
    stmt = select(WaitlistEntry).where(WaitlistEntry.id == entry_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return (await db.execute(stmt)).scalar_one_or_none()


async def entries(
    db: AsyncSession, *, branch_id: int, day: date | None = None, status: str | None = None, limit: int = 500
) -> list[WaitlistEntry]:
    stmt = select(WaitlistEntry).where(WaitlistEntry.branch_id == branch_id)
    if day is not None:
        stmt = stmt.where(WaitlistEntry.day == day)
    if status is not None:
        stmt = stmt.where(WaitlistEntry.status == status)
    result = await db.execute(stmt.order_by(WaitlistEntry.day, WaitlistEntry.id).limit(limit))
    return list(result.scalars())


async def interested(
    db: AsyncSession, *, branch_id: int, examination_id: int, day: date, except_patient: int
) -> list[WaitlistEntry]:
    """Entries that want this branch, examination and day, first come first."""
    result = await db.execute(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.branch_id == branch_id,
            WaitlistEntry.examination_id == examination_id,
            WaitlistEntry.day == day,
            WaitlistEntry.status.in_(INTERESTED),
            WaitlistEntry.patient_id != except_patient,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    )
    return list(result.scalars())


async def set_entry_status(
    db: AsyncSession, entry_ids: Sequence[int], status: str, *, only_from: Sequence[str]
) -> None:
    if entry_ids:
        await db.execute(
            update(WaitlistEntry)
            .where(WaitlistEntry.id.in_(list(entry_ids)), WaitlistEntry.status.in_(list(only_from)))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )


async def freed_slot(db: AsyncSession, session_id: int) -> FreedSlot | None:
    """The session with its first examination and its branch's time zone (None without an examination line)."""
    result = await db.execute(
        select(Session, SessionLine.examination_id, Branch.tz)
        .join(SessionLine, SessionLine.session_id == Session.id)
        .join(Branch, Branch.id == Session.branch_id)
        .where(Session.id == session_id, SessionLine.kind == "examination")
        .order_by(SessionLine.position, SessionLine.id)
        .limit(1)
    )
    row = result.first()
    if row is None or row[1] is None:
        return None
    return FreedSlot(row[0], int(row[1]), row[2])


async def open_offer_at(db: AsyncSession, *, doctor_id: int, starts_at: datetime) -> WaitlistOffer | None:
    result = await db.execute(
        select(WaitlistOffer)
        .where(
            WaitlistOffer.doctor_id == doctor_id,
            WaitlistOffer.starts_at == starts_at,
            WaitlistOffer.status == "open",
        )
        .limit(1)
    )
    return result.scalar_one_or_none()


async def add_offer(db: AsyncSession, values: dict[str, Any]) -> WaitlistOffer:
    offer = WaitlistOffer(**values)
    db.add(offer)
    await db.flush()
    return offer


async def offer(db: AsyncSession, offer_id: int) -> WaitlistOffer | None:
    result = await db.execute(
        select(WaitlistOffer).where(WaitlistOffer.id == offer_id).execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def offer_facts(db: AsyncSession, offer: WaitlistOffer) -> OfferFacts:
    result = await db.execute(
        select(Branch.name, Branch.tz, Doctor.name, Examination.name)
        .select_from(Branch)
        .join(Doctor, Doctor.id == offer.doctor_id)
        .join(Examination, Examination.id == offer.examination_id)
        .where(Branch.id == offer.branch_id)
    )
    branch_name, tz, doctor_name, exam_name = result.one()
    return OfferFacts(branch_name, tz, doctor_name, exam_name)


async def take_offer(db: AsyncSession, offer_id: int, entry_id: int) -> WaitlistOffer | None:
    """The first to accept takes the offer: one ``UPDATE ... WHERE status = 'open' RETURNING``. A concurrent
    second accept waits for the first to commit, then finds the offer no longer open (None)."""
    result = await db.execute(
        update(WaitlistOffer)
        .where(WaitlistOffer.id == offer_id, WaitlistOffer.status == "open")
        .values(status="taken", taken_by=entry_id)
        .returning(WaitlistOffer)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def update_offer(db: AsyncSession, offer_id: int, values: dict[str, Any]) -> None:
    await db.execute(
        update(WaitlistOffer)
        .where(WaitlistOffer.id == offer_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def expire_offer(db: AsyncSession, offer_id: int, note: str) -> None:
    await db.execute(
        update(WaitlistOffer)
        .where(WaitlistOffer.id == offer_id, WaitlistOffer.status == "open")
        .values(status="expired", note=note)
        .execution_options(synchronize_session=False)
    )


async def offered_entry_ids(db: AsyncSession, offer_id: int) -> list[int]:
    """The entries an offer was sent to, read from the outbox rows that carried it."""
    prefix = OFFER_KEY.format(offer_id=offer_id, entry_id="")
    result = await db.execute(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.startswith(prefix)))
    found = []
    for key in result.scalars():
        tail = (key or "")[len(prefix) :]
        if tail.isdigit():
            found.append(int(tail))
    return sorted(found)


async def session(db: AsyncSession, session_id: int | None) -> Session | None:
    return None if session_id is None else await db.get(Session, session_id)
