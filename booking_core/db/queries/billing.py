"""Queries over invoices and what they draw on: packages, insurance, the loyalty ledger, the archive."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import (
    InsurancePlan,
    Invoice,
    InvoiceLine,
    LoyaltyEntry,
    Package,
    PackageExamination,
    Patient,
    PatientInsurance,
    PatientPackage,
)


async def invoice_for_session(db: AsyncSession, session_id: int, *, lock: bool = False) -> Invoice | None:
    stmt = select(Invoice).where(Invoice.session_id == session_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await db.execute(stmt)).scalar_one_or_none()


async def lock_or_create_invoice(
    db: AsyncSession, *, session_id: int, patient_id: int, branch_id: int, currency: str
) -> Invoice:
    """The session's invoice, created as an empty draft if it has none, and locked for this transaction.

    ``ON CONFLICT DO NOTHING`` on the unique ``session_id`` means two first-time builders make one invoice.
    """
    await db.execute(
        insert(Invoice)
        .values(
            session_id=session_id,
            patient_id=patient_id,
            branch_id=branch_id,
            currency=currency,
            status="draft",
            breakdown={},
            snapshot={},
        )
        .on_conflict_do_nothing(index_elements=[Invoice.session_id])
    )
    invoice = await invoice_for_session(db, session_id, lock=True)
    assert invoice is not None  # inserted above or already there
    return invoice


async def update_invoice(db: AsyncSession, invoice_id: int, values: dict[str, Any]) -> None:
    await db.execute(update(Invoice).where(Invoice.id == invoice_id).values(**values))


async def replace_invoice_lines(db: AsyncSession, invoice_id: int, rows: Sequence[dict[str, Any]]) -> None:
    await db.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id))
    if rows:
        db.add_all(InvoiceLine(invoice_id=invoice_id, **row) for row in rows)
        await db.flush()


async def invoice_lines(db: AsyncSession, invoice_id: int) -> list[InvoiceLine]:
    result = await db.execute(
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.position, InvoiceLine.id)
    )
    return list(result.scalars())


async def lock_patient(db: AsyncSession, patient_id: int) -> None:
    """Serialise everything that spends a patient's balances (package uses, insurance, loyalty points)."""
    await db.execute(select(Patient.id).where(Patient.id == patient_id).with_for_update())


async def usable_packages(
    db: AsyncSession, patient_id: int, *, now: datetime
) -> list[tuple[PatientPackage, Package, frozenset[int]]]:
    """The patient's packages with uses left and not expired, soonest to expire first, with what they cover."""
    result = await db.execute(
        select(PatientPackage, Package)
        .join(Package, Package.id == PatientPackage.package_id)
        .where(
            PatientPackage.patient_id == patient_id,
            PatientPackage.remaining_uses > 0,
            or_(PatientPackage.expires_at.is_(None), PatientPackage.expires_at > now),
        )
        .order_by(PatientPackage.expires_at.asc().nulls_last(), PatientPackage.purchased_at, PatientPackage.id)
    )
    rows = [(owned, package) for owned, package in result.all()]
    if not rows:
        return []
    covers = await db.execute(
        select(PackageExamination.package_id, PackageExamination.examination_id).where(
            PackageExamination.package_id.in_({package.id for _, package in rows})
        )
    )
    by_package: dict[int, set[int]] = {}
    for package_id, examination_id in covers.all():
        by_package.setdefault(package_id, set()).add(examination_id)
    return [(owned, package, frozenset(by_package.get(package.id, ()))) for owned, package in rows]


async def insurance_for_year(
    db: AsyncSession, patient_id: int, year: int
) -> tuple[PatientInsurance, InsurancePlan] | None:
    """The patient's insurance membership for ``year`` (the most recently added if there are several)."""
    result = await db.execute(
        select(PatientInsurance, InsurancePlan)
        .join(InsurancePlan, InsurancePlan.id == PatientInsurance.plan_id)
        .where(PatientInsurance.patient_id == patient_id, PatientInsurance.year == year)
        .order_by(PatientInsurance.id.desc())
        .limit(1)
    )
    row = result.first()
    return None if row is None else (row[0], row[1])


async def loyalty_balance(db: AsyncSession, patient_id: int) -> int:
    result = await db.execute(
        select(func.coalesce(func.sum(LoyaltyEntry.delta), 0)).where(LoyaltyEntry.patient_id == patient_id)
    )
    return int(result.scalar_one())


async def use_package(db: AsyncSession, patient_package_id: int, uses: int) -> bool:
    """Take ``uses`` from a package only if that many remain: the WHERE is the guard, not a Python check."""
    result = await db.execute(
        update(PatientPackage)
        .where(PatientPackage.id == patient_package_id, PatientPackage.remaining_uses >= uses)
        .values(remaining_uses=PatientPackage.remaining_uses - uses)
        .returning(PatientPackage.id)
    )
    return result.scalar_one_or_none() is not None


async def add_insurance_usage(
    db: AsyncSession, patient_insurance_id: int, *, deductible: Decimal, limit: Decimal
) -> None:
    await db.execute(
        update(PatientInsurance)
        .where(PatientInsurance.id == patient_insurance_id)
        .values(
            deductible_used=PatientInsurance.deductible_used + deductible,
            limit_used=PatientInsurance.limit_used + limit,
        )
    )


async def add_loyalty_entry(db: AsyncSession, *, patient_id: int, delta: int, reason: str, invoice_id: int) -> None:
    db.add(LoyaltyEntry(patient_id=patient_id, delta=delta, reason=reason, invoice_id=invoice_id))
    await db.flush()


async def archived_invoices(db: AsyncSession, *, branch_id: int | None, limit: int, offset: int) -> list[Invoice]:
    """Invoices whose session was deleted, newest archive first; ``branch_id`` None means every branch."""
    stmt = select(Invoice).where(Invoice.archived_at.is_not(None))
    if branch_id is not None:
        stmt = stmt.where(Invoice.branch_id == branch_id)
    stmt = stmt.order_by(Invoice.archived_at.desc(), Invoice.id.desc()).limit(limit).offset(offset)
    return list((await db.execute(stmt)).scalars())
