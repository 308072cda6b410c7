"""Money: invoices and their lines, payments, packages, insurance, the loyalty ledger and Best Deal coupons.

Invoices outlive a permanently deleted session: the foreign key is set to NULL and ``snapshot`` keeps what the
invoice was for.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_core.db.base import Base, now_column, one_of


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (one_of("status", ("draft", "final", "void")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL"), unique=True, index=True
    )
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(5), default="draft")
    currency: Mapped[str] = mapped_column(String(3))
    gross: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    package_covered: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    insurer_pays: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    tax: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    consumables: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    loyalty_discount: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    coupon_discount: Mapped[Decimal] = mapped_column(default=Decimal("0"), server_default="0")
    patient_pays: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    loyalty_points_used: Mapped[int] = mapped_column(Integer, default=0)
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)  # who / what / when, kept after delete
    finalised_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = now_column()


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (one_of("kind", ("examination", "consumable", "coupon", "loyalty")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(SmallInteger, default=0)
    kind: Mapped[str] = mapped_column(String(11))
    ref_id: Mapped[int | None]
    name: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int] = mapped_column(SmallInteger, default=1)
    unit_price: Mapped[Decimal]
    patient_amount: Mapped[Decimal]
    insurer_amount: Mapped[Decimal]
    steps: Mapped[list[Any]] = mapped_column(JSONB, default=list)  # how the line was derived, step by step


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"), index=True)
    amount: Mapped[Decimal]
    method: Mapped[str] = mapped_column(String(20), default="cash")
    reference: Mapped[str] = mapped_column(String(120), default="")
    paid_at: Mapped[datetime] = now_column()
    received_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))


class Package(Base):
    """A prepaid package in the catalog: N uses of some examinations."""

    __tablename__ = "packages"
    __table_args__ = (CheckConstraint("uses > 0 AND price >= 0", name="valid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    uses: Mapped[int] = mapped_column(SmallInteger)
    valid_days: Mapped[int] = mapped_column(Integer, default=365)


class PackageExamination(Base):
    __tablename__ = "package_examinations"

    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True)
    examination_id: Mapped[int] = mapped_column(ForeignKey("examinations.id", ondelete="CASCADE"), primary_key=True)


class PatientPackage(Base):
    """A package a patient bought, with the uses left."""

    __tablename__ = "patient_packages"
    __table_args__ = (CheckConstraint("remaining_uses >= 0", name="remaining_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="RESTRICT"))
    remaining_uses: Mapped[int] = mapped_column(SmallInteger)
    purchased_at: Mapped[datetime] = now_column()
    expires_at: Mapped[datetime | None]


class InsurancePlan(Base):
    __tablename__ = "insurance_plans"
    __table_args__ = (
        CheckConstraint("coverage_pct >= 0 AND coverage_pct <= 100", name="coverage_range"),
        CheckConstraint("deductible >= 0 AND annual_limit >= 0", name="amounts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    coverage_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    deductible: Mapped[Decimal]
    annual_limit: Mapped[Decimal]


class PatientInsurance(Base):
    """A patient's membership of a plan for one year, with what was used of deductible and limit."""

    __tablename__ = "patient_insurances"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("insurance_plans.id", ondelete="RESTRICT"))
    member_number: Mapped[str] = mapped_column(String(60), default="")
    year: Mapped[int] = mapped_column(SmallInteger)
    deductible_used: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    limit_used: Mapped[Decimal] = mapped_column(default=Decimal("0"))


class LoyaltyEntry(Base):
    """Loyalty points ledger: the balance is the sum; earned on completion, spent on invoices."""

    __tablename__ = "loyalty_ledger"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    delta: Mapped[int]
    reason: Mapped[str] = mapped_column(String(40))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = now_column()


class Coupon(Base):
    """A Best Deal coupon bought by a patient; its code (in a QR) is stored hashed and redeemed on visits.

    ``uses`` counts the redemptions that stand (an undone one gives its use back); the CHECK keeps it within
    ``max_uses``, so even a bug cannot redeem a single-use coupon twice. ``redeemed_*`` describe the latest
    redemption; :class:`CouponRedemption` keeps every one with its visit.
    """

    __tablename__ = "coupons"
    __table_args__ = (
        one_of("status", ("active", "redeemed", "void")),
        CheckConstraint("max_uses >= 1 AND uses >= 0 AND uses <= max_uses", name="uses_within_max"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hint: Mapped[str] = mapped_column(String(8))  # last characters, to tell coupons apart on screen
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    examination_id: Mapped[int | None] = mapped_column(ForeignKey("examinations.id", ondelete="SET NULL"))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="SET NULL"))
    price_paid: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8), default="active")
    max_uses: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    uses: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    redeemed_at: Mapped[datetime | None]
    redeemed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    redeemed_branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = now_column()


class CouponRedemption(Base):
    """One use of a coupon, on one visit; its discount is a ``coupon`` line on that visit's invoice.

    Undoing it (a desk mistake) keeps the row with who undid it and why; the partial unique index lets a coupon
    stand on a visit at most once.
    """

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        Index(
            "uq_coupon_redemptions_standing_per_visit",
            "coupon_id",
            "session_id",
            unique=True,
            postgresql_where=text("undone_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"), index=True)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="SET NULL"))
    redeemed_at: Mapped[datetime] = now_column()
    redeemed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    undo_reason: Mapped[str] = mapped_column(Text, default="")
