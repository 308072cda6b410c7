"""Build a small, realistic clinic in the test database (each call makes its own branch, so tests never collide).

    clinic = await build_clinic(db)
    clinic.branch, clinic.rooms["dental"], clinic.doctors["andi"], clinic.examinations["GP"], clinic.patients["siti"]

Defaults (Asia/Jakarta, IDR, tax 11 %): branch open Mon-Sat 08:00-20:00; dr. Andi (GP) attends Mon-Fri 09:00-17:00;
drg. Sari (dentist) Mon-Sat 10:00-18:00; rooms "consult-1", "consult-2" (consultation) and "dental"; examinations
GP (30 min, 150,000), DENTAL (30 min, 250,000, dental room, 5 min buffer after) and FACIAL (60 min, 350,000, taxable,
by Andi); no minimum notice; 60-day horizon; patient Siti (+6281234567890) with a WhatsApp identity.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import (
    Branch,
    BranchHours,
    ChannelIdentity,
    Doctor,
    DoctorAttendance,
    Examination,
    ExaminationBranch,
    ExaminationDoctor,
    Occupancy,
    Patient,
    Room,
    Session,
    SessionLine,
    Staff,
)
from booking_core.domain.codes import new_booking_code


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3).upper()}"


@dataclass
class Clinic:
    branch: Branch
    rooms: dict[str, Room] = field(default_factory=dict)
    doctors: dict[str, Doctor] = field(default_factory=dict)
    examinations: dict[str, Examination] = field(default_factory=dict)
    patients: dict[str, Patient] = field(default_factory=dict)


async def build_clinic(
    db: AsyncSession,
    *,
    tz: str = "Asia/Jakarta",
    currency: str = "IDR",
    tax_rate: Decimal = Decimal("0.11"),
    token_prefix: str = "A",
    commit: bool = True,
) -> Clinic:
    branch = Branch(
        code=unique("BR"),
        name="Klinik Sehat Test",
        tz=tz,
        currency=currency,
        tax_rate=tax_rate,
        token_prefix=token_prefix,
        slot_step_min=15,
    )
    db.add(branch)
    await db.flush()
    clinic = Clinic(branch=branch)
    db.add_all(BranchHours(branch_id=branch.id, weekday=d, opens=time(8), closes=time(20)) for d in range(6))
    clinic.rooms = {
        "consult-1": Room(branch_id=branch.id, name="Consultation 1", kind="consultation"),
        "consult-2": Room(branch_id=branch.id, name="Consultation 2", kind="consultation"),
        "dental": Room(branch_id=branch.id, name="Dental suite", kind="dental"),
    }
    clinic.doctors = {"andi": Doctor(name="dr. Andi Wijaya"), "sari": Doctor(name="drg. Sari Lestari")}
    db.add_all([*clinic.rooms.values(), *clinic.doctors.values()])
    await db.flush()
    andi, sari = clinic.doctors["andi"], clinic.doctors["sari"]
    db.add_all(
        DoctorAttendance(doctor_id=andi.id, branch_id=branch.id, weekday=d, starts=time(9), ends=time(17))
        for d in range(5)
    )
    db.add_all(
        DoctorAttendance(doctor_id=sari.id, branch_id=branch.id, weekday=d, starts=time(10), ends=time(18))
        for d in range(6)
    )
    specs = [
        ("GP", "General consultation", "150000", 30, False, "consultation", 0, andi),
        ("DENTAL", "Dental check-up", "250000", 30, False, "dental", 5, sari),
        ("FACIAL", "Acne facial treatment", "350000", 60, True, "consultation", 0, andi),
    ]
    for code, name, price, minutes, taxable, room_kind, buffer_after, doctor in specs:
        exam = Examination(
            code=unique(code),
            name=name,
            price=Decimal(price),
            currency=currency,
            duration_min=minutes,
            taxable=taxable,
            room_kind=room_kind,
            min_notice_min=0,
            horizon_days=60,
            buffer_after_min=buffer_after,
            cancel_cutoff_min=120,
            keywords=[],
        )
        db.add(exam)
        await db.flush()
        db.add(ExaminationBranch(examination_id=exam.id, branch_id=branch.id))
        db.add(ExaminationDoctor(examination_id=exam.id, doctor_id=doctor.id))
        clinic.examinations[code] = exam
    siti = Patient(name="Siti Rahmawati", phone_e164=f"+62812{secrets.randbelow(10**8):08d}", language="id")
    db.add(siti)
    await db.flush()
    db.add(ChannelIdentity(patient_id=siti.id, channel="whatsapp", external_id=siti.phone_e164, display_name="Siti"))
    clinic.patients["siti"] = siti
    await db.flush()
    if commit:
        await db.commit()
    return clinic


async def add_patient(db: AsyncSession, name: str = "Budi Hartono", *, commit: bool = True) -> Patient:
    patient = Patient(name=name, phone_e164=f"+62813{secrets.randbelow(10**8):08d}", language="id")
    db.add(patient)
    await db.flush()
    if commit:
        await db.commit()
    return patient


async def add_staff(
    db: AsyncSession, role: str = "staff", *, branch_id: int | None = None, commit: bool = True
) -> Staff:
    staff = Staff(name=unique(role.capitalize()), role=role, branch_id=branch_id)
    db.add(staff)
    await db.flush()
    if commit:
        await db.commit()
    return staff


async def insert_session(
    db: AsyncSession,
    clinic: Clinic,
    *,
    starts_at: datetime,
    examination: str = "GP",
    doctor: str = "andi",
    room: str = "consult-1",
    patient: str = "siti",
    status: str = "waiting",
    commit: bool = True,
    accepted: bool | None = None,
) -> Session:
    """A session written straight into the tables (occupancy + session + line), for tests of what comes after.

    ``accepted`` defaults to what the status implies: a waiting visit a patient booked is not accepted yet, a visit
    that was started (open, completed) was.
    """
    exam = clinic.examinations[examination]
    ends_at = starts_at + timedelta(minutes=exam.duration_min)
    occupancy = Occupancy(
        branch_id=clinic.branch.id,
        doctor_id=clinic.doctors[doctor].id,
        room_id=clinic.rooms[room].id,
        during=Range(starts_at, ends_at + timedelta(minutes=exam.buffer_after_min), bounds="[)"),
        kind="session",
        active=status in ("waiting", "open"),
    )
    db.add(occupancy)
    await db.flush()
    session = Session(
        booking_code=new_booking_code(),
        occupancy_id=occupancy.id,
        branch_id=clinic.branch.id,
        patient_id=clinic.patients[patient].id,
        doctor_id=clinic.doctors[doctor].id,
        room_id=clinic.rooms[room].id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=status,
        accepted=status != "waiting" if accepted is None else accepted,
    )
    db.add(session)
    await db.flush()
    db.add(
        SessionLine(
            session_id=session.id,
            kind="examination",
            examination_id=exam.id,
            name=exam.name,
            unit_price=exam.price,
            quantity=1,
            taxable=exam.taxable,
        )
    )
    await db.flush()
    if commit:
        await db.commit()
    return session


def next_weekday(weekday: int, *, hour: int, minute: int = 0, tz: str = "Asia/Jakarta", weeks: int = 1) -> datetime:
    """A UTC instant on the coming ``weekday`` (0 = Monday) at local ``hour:minute``, at least a day ahead."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    today = datetime.now(zone).date()
    days = (weekday - today.weekday()) % 7 or 7
    day = today + timedelta(days=days + 7 * (weeks - 1))
    return datetime.combine(day, time(hour, minute), zone).astimezone(UTC)


def today_at(hour: int, minute: int = 0, *, tz: str = "Asia/Jakarta") -> datetime:
    """A UTC instant today (the branch's local day) at local ``hour:minute``: a visit that may be started now."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    return datetime.combine(datetime.now(zone).date(), time(hour, minute), zone).astimezone(UTC)
