"""The clinic itself: branches and their hours, rooms, doctors and attendance, examinations, blackout blocks."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_core.db.base import Base, now_column, one_of

WEEKDAY = "weekday BETWEEN 0 AND 6"
COMMISSION_KINDS = ("percent", "fixed")


class Branch(Base):
    __tablename__ = "branches"
    __table_args__ = (
        CheckConstraint("tax_rate >= 0 AND tax_rate <= 1", name="tax_rate_range"),
        CheckConstraint("token_prefix ~ '^[A-Z]{1,3}$'", name="token_prefix_format"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str | None] = mapped_column(String(20))
    tz: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 4), default=Decimal("0"))
    token_prefix: Mapped[str] = mapped_column(String(3))
    slot_step_min: Mapped[int] = mapped_column(SmallInteger, default=15)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = now_column()


class BranchHours(Base):
    """Weekly opening hours in the branch's local wall time."""

    __tablename__ = "branch_hours"
    __table_args__ = (
        CheckConstraint(WEEKDAY, name="weekday_range"),
        CheckConstraint("opens < closes", name="order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    opens: Mapped[time] = mapped_column(Time)
    closes: Mapped[time] = mapped_column(Time)


class Room(Base):
    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("branch_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(40), default="consultation")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Doctor(Base):
    __tablename__ = "doctors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    specialty: Mapped[str] = mapped_column(String(80), default="")
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = now_column()


class DoctorAttendance(Base):
    """The weekly attendance pattern of a doctor at a branch."""

    __tablename__ = "doctor_attendance"
    __table_args__ = (
        CheckConstraint(WEEKDAY, name="weekday_range"),
        CheckConstraint("starts < ends", name="order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)


class AttendanceOverride(Base):
    """A dated change that replaces the weekly pattern for that day; no times means a day off."""

    __tablename__ = "attendance_overrides"
    __table_args__ = (
        CheckConstraint("(starts IS NULL) = (ends IS NULL)", name="both_or_neither"),
        CheckConstraint("starts IS NULL OR starts < ends", name="order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    day: Mapped[date] = mapped_column(Date)
    starts: Mapped[time | None] = mapped_column(Time)
    ends: Mapped[time | None] = mapped_column(Time)
    note: Mapped[str] = mapped_column(Text, default="")


class ScheduleApplication(Base):
    """A doctor applies for an attendance shift; accepted ones add attendance on that day."""

    __tablename__ = "schedule_applications"
    __table_args__ = (
        one_of("status", ("pending", "accepted", "rejected")),
        CheckConstraint("starts < ends", name="order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    day: Mapped[date] = mapped_column(Date)
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = now_column()


class Examination(Base):
    __tablename__ = "examinations"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("duration_min > 0 AND duration_min <= 720", name="duration_range"),
        CheckConstraint("min_notice_min >= 0 AND horizon_days > 0", name="booking_window"),
        CheckConstraint("buffer_before_min >= 0 AND buffer_after_min >= 0", name="buffers"),
        one_of("doctor_commission_kind", COMMISSION_KINDS),
        one_of("manager_commission_kind", COMMISSION_KINDS),
        CheckConstraint("doctor_commission_value >= 0 AND manager_commission_value >= 0", name="commission"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    duration_min: Mapped[int] = mapped_column(SmallInteger)
    taxable: Mapped[bool] = mapped_column(Boolean, default=False)
    room_kind: Mapped[str | None] = mapped_column(String(40))
    min_notice_min: Mapped[int] = mapped_column(Integer, default=60)
    horizon_days: Mapped[int] = mapped_column(Integer, default=60)
    buffer_before_min: Mapped[int] = mapped_column(SmallInteger, default=0)
    buffer_after_min: Mapped[int] = mapped_column(SmallInteger, default=0)
    cancel_cutoff_min: Mapped[int] = mapped_column(Integer, default=120)
    doctor_commission_kind: Mapped[str] = mapped_column(String(8), default="percent")
    doctor_commission_value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    manager_commission_kind: Mapped[str] = mapped_column(String(8), default="percent")
    manager_commission_value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    keywords: Mapped[list[Any]] = mapped_column(JSONB, default=list)  # alternative names for the chatbot
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = now_column()


class ExaminationBranch(Base):
    """Where an examination is offered."""

    __tablename__ = "examination_branches"

    examination_id: Mapped[int] = mapped_column(ForeignKey("examinations.id", ondelete="CASCADE"), primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True)


class ExaminationDoctor(Base):
    """Which doctors perform an examination."""

    __tablename__ = "examination_doctors"

    examination_id: Mapped[int] = mapped_column(ForeignKey("examinations.id", ondelete="CASCADE"), primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"), primary_key=True)


class ExaminationWindow(Base):
    """A weekly window the examination is limited to (none = any time the branch and doctor are there)."""

    __tablename__ = "examination_windows"
    __table_args__ = (
        CheckConstraint(WEEKDAY, name="weekday_range"),
        CheckConstraint("starts < ends", name="order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[int] = mapped_column(ForeignKey("examinations.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)


class BlackoutBlock(Base):
    """Time nobody can book: the whole branch, one doctor or one room."""

    __tablename__ = "blackout_blocks"
    __table_args__ = (
        one_of("scope", ("branch", "doctor", "room")),
        CheckConstraint("starts_at < ends_at", name="order"),
        CheckConstraint(
            "(scope = 'branch' AND doctor_id IS NULL AND room_id IS NULL)"
            " OR (scope = 'doctor' AND doctor_id IS NOT NULL AND room_id IS NULL)"
            " OR (scope = 'room' AND room_id IS NOT NULL AND doctor_id IS NULL)",
            name="scope_target",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(8))
    doctor_id: Mapped[int | None] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"))
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = now_column()


class ClinicSetting(Base):
    """Clinic-wide settings edited by staff (booking-form fields, reminder offsets, queue privacy, ...)."""

    __tablename__ = "clinic_settings"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = now_column()
