"""Queries behind one chatbot step: the locked message and conversation, the catalogue, the patient's visits."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.queries import ingest as ingest_queries
from booking_core.db.tables import (
    AttendanceOverride,
    Branch,
    BranchHours,
    ChannelIdentity,
    Conversation,
    Doctor,
    DoctorAttendance,
    Examination,
    ExaminationBranch,
    ExaminationDoctor,
    Lead,
    Message,
    Patient,
    QueueEntry,
    ScheduleApplication,
    Session,
    SessionLine,
    SlotHold,
)


async def message(db: AsyncSession, message_id: int) -> Message | None:
    return await db.get(Message, message_id)


async def lock_conversation(db: AsyncSession, conversation_id: int) -> Conversation | None:
    """``FOR UPDATE``: two messages of one chat are answered one after the other, each seeing the last one's state."""
    result = await db.execute(
        select(Conversation)
        .where(Conversation.id == conversation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def lock_unprocessed(db: AsyncSession, conversation_id: int, *, up_to: int) -> list[Message]:
    """The conversation's unanswered inbound messages up to ``up_to``, oldest first, locked.

    Called with the conversation row locked, so no other dialog step holds these rows: they are answered in order
    even when their own background steps run late.
    """
    result = await db.execute(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == "in",
            Message.processed_at.is_(None),
            Message.id <= up_to,
        )
        .order_by(Message.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def mark_processed(db: AsyncSession, message_id: int, *, now: datetime) -> None:
    await db.execute(update(Message).where(Message.id == message_id).values(processed_at=now))


async def identity(db: AsyncSession, identity_id: int) -> ChannelIdentity | None:
    return await db.get(ChannelIdentity, identity_id)


async def patient(db: AsyncSession, patient_id: int | None) -> Patient | None:
    """The living patient record (a merged one leads to the record it was folded into)."""
    found = await db.get(Patient, patient_id) if patient_id is not None else None
    if found is not None and found.merged_into_id is not None:
        found = await db.get(Patient, found.merged_into_id)
    return found


@dataclass(frozen=True)
class Catalogue:
    """What a patient can book: active branches with hours and attending doctors, examinations, doctors."""

    branches: list[Branch]
    hours: dict[int, list[tuple[int, time, time]]]
    branch_doctors: dict[int, set[int]]
    examinations: list[Examination]
    offered_at: dict[int, list[int]]
    performed_by: dict[int, list[int]]
    doctors: list[Doctor]


async def catalogue(db: AsyncSession, *, today: date) -> Catalogue:
    branches = list((await db.execute(select(Branch).where(Branch.active.is_(True)).order_by(Branch.id))).scalars())
    branch_ids = [b.id for b in branches]
    hours: dict[int, list[tuple[int, time, time]]] = defaultdict(list)
    for row in await db.execute(
        select(BranchHours.branch_id, BranchHours.weekday, BranchHours.opens, BranchHours.closes)
        .where(BranchHours.branch_id.in_(branch_ids))
        .order_by(BranchHours.branch_id, BranchHours.weekday, BranchHours.opens)
    ):
        hours[row.branch_id].append((row.weekday, row.opens, row.closes))
    attending: dict[int, set[int]] = defaultdict(set)
    for table, condition in (
        (DoctorAttendance, DoctorAttendance.branch_id.in_(branch_ids)),
        (AttendanceOverride, AttendanceOverride.starts.is_not(None) & (AttendanceOverride.day >= today)),
        (ScheduleApplication, (ScheduleApplication.status == "accepted") & (ScheduleApplication.day >= today)),
    ):
        for branch_id, doctor_id in await db.execute(select(table.branch_id, table.doctor_id).where(condition)):
            attending[branch_id].add(doctor_id)
    doctors = list((await db.execute(select(Doctor).where(Doctor.active.is_(True)).order_by(Doctor.id))).scalars())
    exams = list(
        (await db.execute(select(Examination).where(Examination.active.is_(True)).order_by(Examination.id))).scalars()
    )
    offered_at: dict[int, list[int]] = defaultdict(list)
    for exam_id, branch_id in await db.execute(
        select(ExaminationBranch.examination_id, ExaminationBranch.branch_id)
        .where(ExaminationBranch.branch_id.in_(branch_ids))
        .order_by(ExaminationBranch.branch_id)
    ):
        offered_at[exam_id].append(branch_id)
    active_doctors = {d.id for d in doctors}
    performed_by: dict[int, list[int]] = defaultdict(list)
    for exam_id, doctor_id in await db.execute(
        select(ExaminationDoctor.examination_id, ExaminationDoctor.doctor_id).order_by(ExaminationDoctor.doctor_id)
    ):
        if doctor_id in active_doctors:
            performed_by[exam_id].append(doctor_id)
    return Catalogue(branches, hours, attending, exams, offered_at, performed_by, doctors)


@dataclass(frozen=True)
class VisitRow:
    session: Session
    doctor_name: str
    examination_id: int | None
    examination_name: str
    cancel_cutoff_min: int
    in_queue: bool


async def visits(db: AsyncSession, patient_id: int, *, since: datetime) -> list[VisitRow]:
    """The patient's waiting or open sessions ending after ``since``, soonest first, with their first examination."""
    first_line = (
        select(SessionLine.examination_id)
        .where(SessionLine.session_id == Session.id, SessionLine.kind == "examination")
        .order_by(SessionLine.position, SessionLine.id)
        .limit(1)
        .scalar_subquery()
    )
    queued = exists().where(QueueEntry.session_id == Session.id)
    stmt = (
        select(Session, Doctor.name, first_line.label("examination_id"), queued.label("in_queue"))
        .join(Doctor, Doctor.id == Session.doctor_id)
        .where(Session.patient_id == patient_id, Session.status.in_(("waiting", "open")), Session.ends_at > since)
        .order_by(Session.starts_at, Session.id)
        .limit(20)
    )
    rows = (await db.execute(stmt)).all()
    exam_ids = {row.examination_id for row in rows if row.examination_id is not None}
    exams: dict[int, Examination] = {}
    if exam_ids:
        exams = {e.id: e for e in (await db.execute(select(Examination).where(Examination.id.in_(exam_ids)))).scalars()}
    result = []
    for session, doctor_name, exam_id, in_queue in rows:
        exam = exams.get(exam_id) if exam_id is not None else None
        result.append(
            VisitRow(
                session=session,
                doctor_name=doctor_name,
                examination_id=exam_id,
                examination_name=exam.name if exam else "",
                cancel_cutoff_min=exam.cancel_cutoff_min if exam else 0,
                in_queue=bool(in_queue),
            )
        )
    return result


async def session(db: AsyncSession, session_id: int) -> Session | None:
    return await db.get(Session, session_id)


async def hold(db: AsyncSession, hold_id: int) -> SlotHold | None:
    result = await db.execute(select(SlotHold).where(SlotHold.id == hold_id).execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def open_lead(db: AsyncSession, conversation_id: int) -> Lead | None:
    """The conversation's newest lead still waiting for staff, locked."""
    result = await db.execute(
        select(Lead)
        .where(Lead.conversation_id == conversation_id, Lead.status.in_(("new", "accepted")))
        .order_by(Lead.id.desc())
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def add_lead(db: AsyncSession, values: dict[str, Any]) -> Lead:
    lead = Lead(**values)
    db.add(lead)
    await db.flush()
    return lead


async def lead(db: AsyncSession, lead_id: int) -> Lead | None:
    result = await db.execute(select(Lead).where(Lead.id == lead_id).execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def conversation(db: AsyncSession, conversation_id: int | None) -> Conversation | None:
    if conversation_id is None:
        return None
    result = await db.execute(
        select(Conversation).where(Conversation.id == conversation_id).execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def open_conversation_for(db: AsyncSession, identity: ChannelIdentity, *, now: datetime) -> Conversation:
    """The identity's open conversation, opened now if it has none (staff write first, e.g. after a closed one)."""
    language = (identity.language_code or "en").split("-")[0].lower()
    language = language if language in ("en", "id") else "en"
    return await ingest_queries.open_conversation(db, identity=identity, language=language, now=now)
