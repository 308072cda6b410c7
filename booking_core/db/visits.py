"""Visits: the time claims that the database keeps from overlapping, holds, sessions, their lines, the queue.

Why one ``occupancies`` table: an exclusion constraint works within one table, and both booked sessions and chat
holds must refuse each other. Each session and each hold owns one occupancy row; converting a hold into a session
moves the same row over, so the slot is never free in between.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import TSTZRANGE, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from booking_core.db.base import Base, now_column, one_of

SESSION_STATUSES = ("waiting", "open", "completed", "cancelled")
HOLD_STATUSES = ("active", "released", "converted", "expired")


class Occupancy(Base):
    """A doctor's and a room's time taken by a session or a hold. Active rows never overlap (SQLSTATE 23P01)."""

    __tablename__ = "occupancies"
    __table_args__ = (
        ExcludeConstraint(
            ("doctor_id", "="),
            ("during", "&&"),
            name="no_double_booking_doctor",
            using="gist",
            where=text("active"),
        ),
        ExcludeConstraint(
            ("room_id", "="),
            ("during", "&&"),
            name="no_double_booking_room",
            using="gist",
            where=text("active"),
        ),
        CheckConstraint("NOT isempty(during)", name="not_empty"),
        one_of("kind", ("session", "hold")),
        Index("ix_occupancies_branch_during", "branch_id", "during", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"))
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    # The claimed range includes the examination's buffers; the visit itself is on the session / hold.
    during: Mapped[object] = mapped_column(TSTZRANGE)
    kind: Mapped[str] = mapped_column(String(7))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime | None]  # holds only: an expired hold is released before a competing insert


class SlotHold(Base):
    """A slot kept for a few minutes while a patient confirms in chat."""

    __tablename__ = "slot_holds"
    __table_args__ = (one_of("status", HOLD_STATUSES), CheckConstraint("starts_at < ends_at", name="order"))

    id: Mapped[int] = mapped_column(primary_key=True)
    occupancy_id: Mapped[int | None] = mapped_column(ForeignKey("occupancies.id", ondelete="SET NULL"), unique=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"))
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    examination_id: Mapped[int] = mapped_column(ForeignKey("examinations.id", ondelete="CASCADE"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(9), default="active", index=True)
    created_at: Mapped[datetime] = now_column()


class Session(Base):
    """A clinic visit: Waiting → Open → Completed, or Cancelled.

    "Session" is the code's name for it, as in the API (``/api/v1/sessions``), this table, its lines
    (:class:`SessionLine`), every ``session_id`` and the services' types (``SessionChange``, ``ConvertedSession``,
    ``DeletedSession``). "Visit" is the word patients read (``templates/messages/``), and so the chatbot, which
    speaks with them, calls its plain-data view of a session ``booking_core.domain.dialog.VisitInfo``. This class is
    not renamed ``Visit``: alone it would become the one "visit" among the code's sessions, and renaming the rest
    would change the API contract and the schema. Database sessions are ``Db`` (``AsyncSession``) named ``db``.
    """

    __tablename__ = "sessions"
    __table_args__ = (
        one_of("status", SESSION_STATUSES),
        CheckConstraint("starts_at < ends_at", name="order"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        Index("ix_sessions_branch_starts", "branch_id", "starts_at"),
        Index("ix_sessions_doctor_starts", "doctor_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_code: Mapped[str] = mapped_column(String(12), unique=True)
    occupancy_id: Mapped[int | None] = mapped_column(ForeignKey("occupancies.id", ondelete="SET NULL"), unique=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"))
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"), unique=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(9), default="waiting", index=True)
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)  # staff accepted / patient confirmed
    confirmed_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(40))
    cancel_note: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    doctor_commission: Mapped[Decimal | None]
    manager_commission: Mapped[Decimal | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = now_column()


class SessionLine(Base):
    """An examination (or consumable) on a session; the invoice is built from these."""

    __tablename__ = "session_lines"
    __table_args__ = (
        one_of("kind", ("examination", "consumable")),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="price_not_negative"),
        CheckConstraint("(kind = 'examination') = (examination_id IS NOT NULL)", name="examination_ref"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(11), default="examination")
    examination_id: Mapped[int | None] = mapped_column(ForeignKey("examinations.id"))
    name: Mapped[str] = mapped_column(String(120))
    unit_price: Mapped[Decimal]
    quantity: Mapped[int] = mapped_column(SmallInteger, default=1)
    taxable: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(SmallInteger, default=0)


class QueueCounter(Base):
    """The atomic source of daily tokens per branch (A-001, A-002, ...)."""

    __tablename__ = "queue_counters"

    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class QueueEntry(Base):
    """A checked-in session waiting in its branch's queue for the day."""

    __tablename__ = "queue_entries"
    __table_args__ = (
        UniqueConstraint("branch_id", "day", "number"),
        UniqueConstraint("branch_id", "day", "token"),
        Index("ix_queue_entries_branch_day", "branch_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), unique=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"))
    day: Mapped[date] = mapped_column(Date)
    number: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(12))
    arrived_at: Mapped[datetime]
    rank: Mapped[int] = mapped_column(Integer)
    notified_position: Mapped[int | None] = mapped_column(SmallInteger)  # last "you are next" sent, to not repeat


class WaitlistEntry(Base):
    """A patient who wants a day / examination that is full; offered a slot when one frees."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (one_of("status", ("waiting", "offered", "booked", "cancelled")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("channel_identities.id", ondelete="SET NULL"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    examination_id: Mapped[int] = mapped_column(ForeignKey("examinations.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(9), default="waiting")
    created_at: Mapped[datetime] = now_column()


class WaitlistOffer(Base):
    """A freed slot offered to waitlisted patients; the first to accept gets it."""

    __tablename__ = "waitlist_offers"
    __table_args__ = (one_of("status", ("open", "taken", "expired")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"))
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    examination_id: Mapped[int] = mapped_column(ForeignKey("examinations.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(7), default="open")
    taken_by: Mapped[int | None] = mapped_column(ForeignKey("waitlist_entries.id", ondelete="SET NULL"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = now_column()
