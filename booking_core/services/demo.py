"""The demo clinic that `frontdesk run` seeds into an empty database: believable enough to click through."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from booking_core.db.engine import Db
from booking_core.db.queries import clinic as queries
from booking_core.db.tables import (
    AttendanceOverride,
    BlackoutBlock,
    Branch,
    BranchHours,
    ChannelIdentity,
    Doctor,
    DoctorAttendance,
    Examination,
    ExaminationBranch,
    ExaminationDoctor,
    ExaminationWindow,
    InsurancePlan,
    Package,
    PackageExamination,
    Patient,
    PatientInsurance,
    PatientPackage,
    Room,
    Staff,
)
from booking_core.domain.actors import SYSTEM
from booking_core.services import audit
from booking_core.services.settings import DEFAULT_SETTINGS

JAKARTA = "Asia/Jakarta"
MON_SAT = range(6)

# code, name, price (IDR), minutes, taxable, room kind, doctors (by index), keywords
EXAMINATIONS: list[tuple[str, str, int, int, bool, str | None, tuple[int, ...], list[str]]] = [
    (
        "GP",
        "General consultation",
        150_000,
        30,
        False,
        "consultation",
        (0,),
        ["umum", "doctor", "dokter", "sick"],
    ),
    ("CHILD", "Child consultation", 200_000, 30, False, "consultation", (2,), ["anak", "paediatric", "kid"]),
    ("VAX", "Vaccination", 400_000, 15, False, "consultation", (0, 2), ["vaksin", "imunisasi", "vaccine"]),
    ("DENTAL", "Dental check-up", 250_000, 30, False, "dental", (1,), ["gigi", "dentist", "teeth"]),
    ("SCALING", "Dental scaling", 450_000, 45, False, "dental", (1,), ["karang gigi", "cleaning"]),
    ("EXTRACT", "Tooth extraction", 600_000, 60, False, "dental", (1,), ["cabut gigi"]),
    ("SKIN", "Skin consultation", 250_000, 30, False, "consultation", (3,), ["kulit", "derma", "acne"]),
    ("FACIAL", "Acne facial treatment", 350_000, 60, True, "treatment", (3,), ["facial", "jerawat"]),
]


def _hours(branch: Branch, weekdays: range | tuple[int, ...], opens: time, closes: time) -> list[BranchHours]:
    return [BranchHours(branch_id=branch.id, weekday=d, opens=opens, closes=closes) for d in weekdays]


def _next_weekday(today: date, weekday: int) -> date:
    return today + timedelta(days=(weekday - today.weekday()) % 7 or 7)


async def seed_demo(db: Db, *, today: date | None = None) -> bool:
    """Create the demo clinic if the database has no branch yet; return whether anything was created."""
    if await queries.branch_count(db) > 0:
        return False
    today = today or datetime.now(ZoneInfo(JAKARTA)).date()
    kemang, gading = await _branches(db)
    doctors = await _rooms_and_doctors(db, kemang, gading)
    _attendance(db, doctors, kemang, gading, today)
    exams = await _examinations(db, doctors, kemang, gading)
    _staff_meeting(db, kemang, _next_weekday(today, 2))
    await _patients(db, exams, today)
    db.add(Staff(name="Clinic owner", role="owner"))
    for key, value in DEFAULT_SETTINGS.items():
        await queries.put_setting(db, key, value)
    audit.record(db, SYSTEM, "demo.seeded", "branch", kemang.id, {"branches": [kemang.code, gading.code]})
    await db.flush()
    return True


async def _branches(db: Db) -> tuple[Branch, Branch]:
    """Two Jakarta branches and their opening hours (Kemang also opens on Sunday mornings)."""
    kemang = Branch(
        code="KMG",
        name="Klinik Sehat Kemang",
        address="Jl. Kemang Raya 12, Jakarta Selatan",
        phone="+62217190000",
        tz=JAKARTA,
        currency="IDR",
        tax_rate=Decimal("0.11"),
        token_prefix="A",
    )
    gading = Branch(
        code="KGD",
        name="Klinik Sehat Kelapa Gading",
        address="Jl. Boulevard Raya 8, Jakarta Utara",
        phone="+62214500000",
        tz=JAKARTA,
        currency="IDR",
        tax_rate=Decimal("0.11"),
        token_prefix="B",
    )
    db.add_all([kemang, gading])
    await db.flush()
    db.add_all(_hours(kemang, MON_SAT, time(8), time(20)) + _hours(kemang, (6,), time(9), time(14)))
    db.add_all(_hours(gading, MON_SAT, time(9), time(21)))
    return kemang, gading


async def _rooms_and_doctors(db: Db, kemang: Branch, gading: Branch) -> list[Doctor]:
    """The rooms of both branches and the four doctors: a GP, a dentist, a paediatrician, a dermatologist."""
    rooms = [
        Room(branch_id=kemang.id, name="Consultation 1", kind="consultation"),
        Room(branch_id=kemang.id, name="Consultation 2", kind="consultation"),
        Room(branch_id=kemang.id, name="Dental suite", kind="dental"),
        Room(branch_id=kemang.id, name="Treatment room", kind="treatment"),
        Room(branch_id=gading.id, name="Consultation A", kind="consultation"),
        Room(branch_id=gading.id, name="Consultation B", kind="consultation"),
        Room(branch_id=gading.id, name="Dental room", kind="dental"),
    ]
    doctors = [
        Doctor(name="dr. Andi Wijaya", specialty="General practitioner", phone_e164="+6281110000001"),
        Doctor(name="drg. Sari Lestari", specialty="Dentist", phone_e164="+6281110000002"),
        Doctor(name="dr. Budi Santoso, Sp.A", specialty="Paediatrician", phone_e164="+6281110000003"),
        Doctor(name="dr. Maya Putri, Sp.KK", specialty="Dermatologist", phone_e164="+6281110000004"),
    ]
    db.add_all([*rooms, *doctors])
    await db.flush()
    return doctors


def _attendance(db: Db, doctors: list[Doctor], kemang: Branch, gading: Branch, today: date) -> None:
    """Who attends where and when; dr. Andi is at a conference next Friday."""
    andi, sari, budi, maya = doctors

    def attend(doctor: Doctor, branch: Branch, days: tuple[int, ...], starts: time, ends: time) -> None:
        db.add_all(
            DoctorAttendance(doctor_id=doctor.id, branch_id=branch.id, weekday=d, starts=starts, ends=ends)
            for d in days
        )

    attend(andi, kemang, (0, 1, 2, 3, 4), time(8), time(16))
    attend(andi, kemang, (5,), time(9), time(13))
    attend(sari, kemang, (0, 2, 4), time(10), time(18))
    attend(sari, gading, (1, 3, 5), time(10), time(18))
    attend(budi, gading, (0, 1, 2, 3, 4), time(14), time(21))
    attend(budi, kemang, (5,), time(9), time(14))
    attend(maya, kemang, (1, 3), time(13), time(20))
    attend(maya, gading, (0, 2, 4), time(9), time(15))
    db.add(AttendanceOverride(doctor_id=andi.id, branch_id=kemang.id, day=_next_weekday(today, 4), note="Conference"))


async def _examinations(db: Db, doctors: list[Doctor], kemang: Branch, gading: Branch) -> list[Examination]:
    """The :data:`EXAMINATIONS`, where and by whom they are done; vaccinations only in the morning."""
    exams: list[Examination] = []
    for code, name, price, minutes, taxable, room_kind, _by, keywords in EXAMINATIONS:
        exam = Examination(
            code=code,
            name=name,
            price=Decimal(price),
            currency="IDR",
            duration_min=minutes,
            taxable=taxable,
            room_kind=room_kind,
            keywords=keywords,
            min_notice_min=60,
            horizon_days=60,
            buffer_after_min=5 if room_kind == "dental" else 0,
            doctor_commission_kind="percent",
            doctor_commission_value=Decimal("30"),
            manager_commission_kind="fixed",
            manager_commission_value=Decimal("10000"),
        )
        exams.append(exam)
    db.add_all(exams)
    await db.flush()
    for exam, (_code, _name, _price, _min, _tax, room_kind, by, _kw) in zip(exams, EXAMINATIONS, strict=True):
        branches = [kemang, gading] if room_kind != "treatment" else [kemang]
        db.add_all(ExaminationBranch(examination_id=exam.id, branch_id=b.id) for b in branches)
        db.add_all(ExaminationDoctor(examination_id=exam.id, doctor_id=doctors[i].id) for i in by)
    vax = exams[2]
    db.add_all(ExaminationWindow(examination_id=vax.id, weekday=d, starts=time(8), ends=time(12)) for d in MON_SAT)
    return exams


def _staff_meeting(db: Db, branch: Branch, day: date) -> None:
    """The branch is blacked out for an hour at noon on ``day``."""
    tz = ZoneInfo(JAKARTA)
    db.add(
        BlackoutBlock(
            branch_id=branch.id,
            scope="branch",
            starts_at=datetime.combine(day, time(12), tz).astimezone(UTC),
            ends_at=datetime.combine(day, time(13), tz).astimezone(UTC),
            reason="Staff meeting",
        )
    )


async def _patients(db: Db, exams: list[Examination], today: date) -> None:
    """Four patients (Siti also on WhatsApp), one insured, one with a dental package of check-ups left."""
    patients = [
        Patient(name="Siti Rahmawati", phone_e164="+6281234567890", language="id"),
        Patient(name="Budi Hartono", phone_e164="+6281311112222", language="id"),
        Patient(name="Dewi Anggraini", phone_e164="+6285712345678", language="en"),
        Patient(name="Rizky Pratama", phone_e164="+6287788889999", language="id"),
    ]
    db.add_all(patients)
    await db.flush()
    db.add(
        ChannelIdentity(
            patient_id=patients[0].id, channel="whatsapp", external_id="+6281234567890", display_name="Siti"
        )
    )
    plan = InsurancePlan(
        name="Asuransi Sehat Gold",
        currency="IDR",
        coverage_pct=Decimal("80"),
        deductible=Decimal("100000"),
        annual_limit=Decimal("10000000"),
    )
    package = Package(name="Dental care (3 check-ups)", price=Decimal("600000"), currency="IDR", uses=3)
    db.add_all([plan, package])
    await db.flush()
    dental_checkup = exams[3]
    db.add(PackageExamination(package_id=package.id, examination_id=dental_checkup.id))
    db.add(PatientPackage(patient_id=patients[2].id, package_id=package.id, remaining_uses=2))
    db.add(PatientInsurance(patient_id=patients[1].id, plan_id=plan.id, member_number="ASG-0042", year=today.year))
