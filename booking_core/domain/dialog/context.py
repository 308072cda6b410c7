"""What the dialog knows of the clinic and the patient: plain data the service loads before each step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

__all__ = ["BranchInfo", "Context", "DoctorInfo", "ExaminationInfo", "OpeningHours", "VisitInfo"]


@dataclass(frozen=True)
class OpeningHours:
    weekday: int  # 0 = Monday
    opens: time
    closes: time


@dataclass(frozen=True)
class BranchInfo:
    id: int
    name: str
    tz: str
    hours: tuple[OpeningHours, ...] = ()
    doctor_ids: tuple[int, ...] = ()  # doctors who attend here (empty: not known, any)


@dataclass(frozen=True)
class ExaminationInfo:
    id: int
    name: str
    keywords: tuple[str, ...] = ()
    branch_ids: tuple[int, ...] = ()
    doctor_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class DoctorInfo:
    id: int
    name: str


@dataclass(frozen=True)
class VisitInfo:
    """One of the patient's upcoming visits (a ``sessions`` row), as the dialog sees it."""

    id: int
    booking_code: str
    branch_id: int
    examination_id: int | None
    examination_name: str
    doctor_id: int
    doctor_name: str
    starts_at: datetime
    status: str = "waiting"
    cancel_cutoff_min: int = 0
    in_queue: bool = False


@dataclass(frozen=True)
class Context:
    """Plain data the service loaded for this step: the catalogue, the patient's visits, the clock."""

    now: datetime
    examinations: tuple[ExaminationInfo, ...] = ()
    branches: tuple[BranchInfo, ...] = ()
    doctors: tuple[DoctorInfo, ...] = ()
    visits: tuple[VisitInfo, ...] = ()
    patient_name: str | None = None
    patient_phone: str | None = None
    cancel_reasons: tuple[str, ...] = ("patient_request", "duplicate", "other")
    hold_minutes: int = 10
    # Button data of our latest message in the chat when it is a follow-up (confirmation, thank-you): a bare
    # "1".."n" answers that message rather than the menu (WhatsApp shows its buttons as numbered options).
    followup: tuple[str, ...] = ()

    def examination(self, examination_id: int | None) -> ExaminationInfo | None:
        return next((e for e in self.examinations if e.id == examination_id), None)

    def branch(self, branch_id: int | None) -> BranchInfo | None:
        return next((b for b in self.branches if b.id == branch_id), None)

    def doctor(self, doctor_id: int | None) -> DoctorInfo | None:
        return next((d for d in self.doctors if d.id == doctor_id), None)

    def visit(self, visit_id: int | None) -> VisitInfo | None:
        return next((v for v in self.visits if v.id == visit_id), None)
