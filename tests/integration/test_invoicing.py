"""The invoice built as you book: previews, a session's draft kept in step with its lines, finalising once.

The seeded patient (see ``seeded``), in an IDR branch with 11 % tax and the default loyalty rules (one point per
10,000 paid, a point is worth 100, points pay at most 20 % of an invoice):

- Siti has a "Facial course" package with 1 use left (covers FACIAL only), insurance "Asuransi Sehat Gold" for
  this year (80 % coverage, deductible 100,000 of which 20,000 used -> 80,000 left, annual limit 1,000,000 of which
  750,000 used -> 250,000 left) and 500 loyalty points.
- Budi has nothing but 5,000 loyalty points.

Catalogue (devtools/builders.py): GP 150,000 (not taxable), DENTAL 250,000 (not taxable), FACIAL 350,000 (taxable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import (
    AuditEntry,
    InsurancePlan,
    Invoice,
    InvoiceLine,
    LoyaltyEntry,
    Package,
    PackageExamination,
    PatientInsurance,
    PatientPackage,
    SessionLine,
)
from booking_core.domain.actors import SYSTEM
from booking_core.services import invoicing, lifecycle
from devtools.builders import Clinic, add_patient, build_clinic, insert_session, next_weekday, today_at

SignIn = Callable[..., Awaitable[dict[str, str]]]
Client = TestClient[object, object]


@dataclass
class Seeded:
    clinic: Clinic
    package: PatientPackage
    insurance: PatientInsurance


@pytest.fixture
async def seeded(db: AsyncSession, clinic: Clinic) -> Seeded:
    siti = clinic.patients["siti"]
    clinic.patients["budi"] = await add_patient(db, commit=False)
    course = Package(name="Facial course", price=Decimal("1500000"), currency="IDR", uses=5)
    plan = InsurancePlan(
        name="Asuransi Sehat Gold",
        currency="IDR",
        coverage_pct=Decimal("80"),
        deductible=Decimal("100000"),
        annual_limit=Decimal("1000000"),
    )
    db.add_all([course, plan])
    await db.flush()
    db.add(PackageExamination(package_id=course.id, examination_id=clinic.examinations["FACIAL"].id))
    owned = PatientPackage(patient_id=siti.id, package_id=course.id, remaining_uses=1)
    year = datetime.now(ZoneInfo(clinic.branch.tz)).year
    member = PatientInsurance(
        patient_id=siti.id,
        plan_id=plan.id,
        member_number="ASG-0042",
        year=year,
        deductible_used=Decimal("20000"),
        limit_used=Decimal("750000"),
    )
    db.add_all([owned, member])
    db.add(LoyaltyEntry(patient_id=siti.id, delta=500, reason="welcome"))
    db.add(LoyaltyEntry(patient_id=clinic.patients["budi"].id, delta=5000, reason="welcome"))
    await db.commit()
    return Seeded(clinic=clinic, package=owned, insurance=member)


def _totals(
    *,
    gross: str,
    patient_pays: str,
    package_covered: str = "0",
    insurer_pays: str = "0",
    tax: str = "0",
    consumables: str = "0",
    loyalty_discount: str = "0",
    package_uses: int = 0,
    deductible_used: str = "0",
    loyalty_points_used: int = 0,
) -> dict[str, Any]:
    # The insurance limit used is always what the insurer pays on this invoice.
    return {
        "gross": gross, "package_covered": package_covered, "insurer_pays": insurer_pays, "tax": tax,
        "consumables": consumables, "loyalty_discount": loyalty_discount, "patient_pays": patient_pays,
        "package_uses": package_uses, "deductible_used": deductible_used, "insurance_limit_used": insurer_pays,
        "loyalty_points_used": loyalty_points_used, "coupon_discount": "0",
    }  # fmt: skip


@dataclass(frozen=True)
class PreviewCase:
    name: str
    patient: str | None
    examinations: list[tuple[str, int]]
    totals: dict[str, Any]
    consumables: list[dict[str, Any]] = field(default_factory=list)
    loyalty_points: int = 0


PREVIEWS = [
    PreviewCase(
        "package, insurance, tax, consumables and loyalty together",
        patient="siti",
        examinations=[("FACIAL", 2), ("GP", 1)],
        consumables=[{"name": "Syringe", "unit_price": "7500", "quantity": 2, "taxable": True}],
        loyalty_points=500,
        # FACIAL x2: price 700,000; package covers 1 of 2 = -350,000 (the last use) -> 350,000;
        #   insurance: patient pays the 80,000 deductible left, 80 % of 270,000 = 216,000 (limit 250,000 -> 34,000
        #   left) -> 134,000; tax 11 % of 134,000 = 14,740 -> patient 148,740, insurer 216,000.
        # GP x1: 150,000; package does not include it; insurance 80 % of 150,000 = 120,000 capped by the 34,000
        #   left -> 116,000; not taxable -> patient 116,000, insurer 34,000.
        # Syringe 2 x 7,500 = 15,000 + tax 1,650 = 16,650.
        # Before loyalty: 148,740 + 116,000 + 16,650 = 281,390; 500 points x 100 = 50,000 <= cap 20 % = 56,278.
        # Patient pays 281,390 - 50,000 = 231,390.
        # Check: 231,390 + 250,000 + 350,000 + 50,000 = 881,390 = 850,000 + 16,390 + 15,000.
        totals=_totals(
            gross="850000",
            package_covered="350000",
            insurer_pays="250000",
            tax="16390",
            consumables="15000",
            loyalty_discount="50000",
            patient_pays="231390",
            package_uses=1,
            deductible_used="80000",
            loyalty_points_used=500,
        ),
    ),
    PreviewCase(
        "the loyalty cap binds",
        patient="budi",
        examinations=[("GP", 1)],
        loyalty_points=5000,
        # 150,000, nothing else applies; 5,000 points would be 500,000 but the cap is 20 % of 150,000 = 30,000
        # -> 300 points; patient pays 120,000.
        totals=_totals(gross="150000", loyalty_discount="30000", patient_pays="120000", loyalty_points_used=300),
    ),
    PreviewCase(
        "a walk-in without a patient pays list price and tax",
        patient=None,
        examinations=[("FACIAL", 1)],
        # 350,000 + 11 % tax 38,500 = 388,500.
        totals=_totals(gross="350000", tax="38500", patient_pays="388500"),
    ),
    PreviewCase(
        "untaxed consumables are added at their price",
        patient="budi",
        examinations=[("DENTAL", 1)],
        consumables=[{"name": "Gauze", "unit_price": "2500", "quantity": 3}],
        # 250,000 + 3 x 2,500 = 257,500; neither is taxable; no points asked for.
        totals=_totals(gross="250000", consumables="7500", patient_pays="257500"),
    ),
]


@pytest.mark.parametrize("case", PREVIEWS, ids=[c.name for c in PREVIEWS])
async def test_a_preview_shows_what_the_patient_would_pay_step_by_step(
    client: Client, db: AsyncSession, seeded: Seeded, sign_in: SignIn, case: PreviewCase
) -> None:
    clinic = seeded.clinic
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    invoices_before = await _count(db, Invoice)
    exams = clinic.examinations
    body = {
        "branch_id": clinic.branch.id,
        "patient_id": clinic.patients[case.patient].id if case.patient else None,
        "examinations": [{"examination_id": exams[code].id, "quantity": q} for code, q in case.examinations],
        "consumables": case.consumables,
        "loyalty_points": case.loyalty_points,
    }
    response = await client.post("/api/v1/invoices/preview", json=body, headers=headers)
    assert response.status == 200, await response.text()
    preview = await response.json()
    assert preview["totals"] == case.totals
    assert preview["status"] == "preview" and preview["id"] is None
    for line in preview["lines"]:  # every line shows how it was derived, and its steps add up
        assert sum(Decimal(step["amount"]) for step in line["steps"]) == Decimal(line["patient_amount"])
    assert await _count(db, Invoice) == invoices_before  # nothing saved


async def test_the_preview_explains_the_package_and_insurance_in_words(
    client: Client, seeded: Seeded, sign_in: SignIn
) -> None:
    clinic = seeded.clinic
    headers = await sign_in("admin")
    body = {
        "branch_id": clinic.branch.id,
        "patient_id": clinic.patients["siti"].id,
        "examinations": [{"examination_id": clinic.examinations["FACIAL"].id, "quantity": 2}],
    }
    preview = await (await client.post("/api/v1/invoices/preview", json=body, headers=headers)).json()
    steps = {step["kind"]: step["explanation"] for step in preview["lines"][0]["steps"]}
    assert steps["package"].startswith("package Facial course: 1 of 2 covered = 350,000")
    assert steps["insurance"] == "insurance Asuransi Sehat Gold: 80% of 270,000 after deductible 80,000 = 216,000"
    assert steps["tax"] == "tax 11% of 134,000 = 14,740"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"consumables": [{"name": "Syringe", "unit_price": "-7500"}]}, 422, "invalid_amount"),
        ({"consumables": [{"name": "Syringe", "unit_price": "1500.50"}]}, 422, "invalid_amount"),  # IDR has no sen
        ({"consumables": [{"name": "Syringe", "unit_price": "1e40"}]}, 422, "invalid_amount"),
        ({"consumables": [{"name": "Syringe", "unit_price": "7500", "quantity": 0}]}, 422, "invalid_body"),
        ({"examinations": [{"examination_id": 987654321}]}, 404, "not_found"),
        ({"examinations": [{"examination_id": "other-branch"}]}, 404, "not_found"),
        ({"patient_id": 987654321}, 404, "not_found"),
        ({"branch_id": "other-branch"}, 404, "not_found"),
        ({"patient_id": None, "loyalty_points": 10}, 422, "patient_required"),
        ({"loyalty_points": -1}, 422, "invalid_body"),
        ({"surprise": True}, 422, "invalid_body"),
    ],
    ids=[
        "negative price",
        "IDR with decimals",
        "absurd price",
        "zero quantity",
        "unknown examination",
        "another branch's examination",
        "unknown patient",
        "another branch",
        "points without a patient",
        "negative points",
        "unknown field",
    ],
)
async def test_a_bad_preview_is_refused_with_a_code(
    client: Client, db: AsyncSession, seeded: Seeded, sign_in: SignIn, change: dict[str, Any], status: int, code: str
) -> None:
    clinic = seeded.clinic
    elsewhere = await build_clinic(db)
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    body: dict[str, Any] = {
        "branch_id": clinic.branch.id,
        "patient_id": clinic.patients["siti"].id,
        "examinations": [{"examination_id": clinic.examinations["GP"].id}],
    }
    body.update(change)
    if body["branch_id"] == "other-branch":
        body["branch_id"] = elsewhere.branch.id
    if body["examinations"][0]["examination_id"] == "other-branch":
        body["examinations"] = [{"examination_id": elsewhere.examinations["GP"].id}]
    response = await client.post("/api/v1/invoices/preview", json=body, headers=headers)
    assert response.status == status, await response.text()
    assert (await response.json())["error"]["code"] == code


async def test_the_session_invoice_follows_its_lines(
    client: Client, db: AsyncSession, seeded: Seeded, sign_in: SignIn
) -> None:
    clinic = seeded.clinic
    session = await insert_session(db, clinic, starts_at=next_weekday(1, hour=10), patient="budi")
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    url = f"/api/v1/sessions/{session.id}"

    # GP 150,000 + FACIAL 350,000 + tax 11 % of 350,000 = 38,500 -> 538,500.
    added = await client.post(
        f"{url}/lines", json={"examination_id": clinic.examinations["FACIAL"].id}, headers=headers
    )
    assert added.status == 201, await added.text()
    facial_line = (await added.json())["id"]
    assert (await added.json())["invoice"]["totals"]["patient_pays"] == "538500"

    # + Bandage 2 x 5,000, not taxable -> 548,500.
    bandage = {"consumable": {"name": "Bandage", "unit_price": "5000", "quantity": 2}}
    added = await client.post(f"{url}/lines", json=bandage, headers=headers)
    assert added.status == 201
    assert (await added.json())["invoice"]["totals"]["patient_pays"] == "548500"

    # - FACIAL -> GP 150,000 + Bandage 10,000 = 160,000.
    removed = await client.delete(f"{url}/lines/{facial_line}", headers=headers)
    assert removed.status == 200, await removed.text()
    invoice = await removed.json()
    assert invoice["totals"]["patient_pays"] == "160000" and invoice["totals"]["tax"] == "0"
    assert [line["name"] for line in invoice["lines"]] == ["General consultation", "Bandage"]

    stored = (await db.execute(select(Invoice).where(Invoice.session_id == session.id))).scalar_one()
    assert (stored.status, stored.patient_pays, stored.gross, stored.consumables) == (
        "draft",
        Decimal("160000"),
        Decimal("150000"),
        Decimal("10000"),
    )
    stored_lines = select(InvoiceLine).where(InvoiceLine.invoice_id == stored.id).order_by(InvoiceLine.position)
    rows = (await db.execute(stored_lines)).scalars().all()
    assert [(r.kind, r.quantity, r.patient_amount) for r in rows] == [
        ("examination", 1, Decimal("150000")),
        ("consumable", 2, Decimal("10000")),
    ]
    assert rows[1].steps[0] == {"kind": "consumable", "amount": "10000", "explanation": "2 × 5,000 = 10,000"}
    shown = await (await client.get(f"{url}/invoice", headers=headers)).json()
    assert shown["id"] == stored.id and shown["totals"] == invoice["totals"]
    audited = select(AuditEntry.action).where(AuditEntry.entity == "session", AuditEntry.entity_id == session.id)
    actions = (await db.execute(audited)).scalars().all()
    assert sorted(actions) == ["session.line_added", "session.line_added", "session.line_removed"]


async def test_a_session_without_an_invoice_yet_shows_a_draft_built_on_the_fly(
    client: Client, db: AsyncSession, seeded: Seeded, sign_in: SignIn
) -> None:
    clinic = seeded.clinic
    session = await insert_session(db, clinic, starts_at=next_weekday(1, hour=10), examination="FACIAL", patient="budi")
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    shown = await (await client.get(f"/api/v1/sessions/{session.id}/invoice", headers=headers)).json()
    assert shown["id"] is None and shown["status"] == "draft"
    assert shown["totals"]["patient_pays"] == "388500"  # 350,000 + 11 % tax 38,500
    assert await db.scalar(select(func.count()).select_from(Invoice).where(Invoice.session_id == session.id)) == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"consumable": {"name": "Bandage", "unit_price": "-5000"}}, 422, "invalid_amount"),
        ({"consumable": {"name": "Bandage", "unit_price": "5000.50"}}, 422, "invalid_amount"),
        ({"examination_id": 987654321}, 404, "not_found"),
        ({"examination_id": "other-branch"}, 404, "not_found"),
        ({}, 422, "invalid_body"),
        ({"examination_id": "gp", "consumable": {"name": "Bandage", "unit_price": "5000"}}, 422, "invalid_body"),
    ],
    ids=[
        "negative price",
        "IDR with decimals",
        "unknown examination",
        "another branch's examination",
        "neither",
        "both",
    ],
)
async def test_a_bad_line_is_refused_and_nothing_is_written(
    client: Client, db: AsyncSession, seeded: Seeded, sign_in: SignIn, body: dict[str, Any], status: int, code: str
) -> None:
    clinic = seeded.clinic
    elsewhere = await build_clinic(db)
    session = await insert_session(db, clinic, starts_at=next_weekday(1, hour=10), patient="budi")
    if body.get("examination_id") == "other-branch":
        body = {"examination_id": elsewhere.examinations["GP"].id}
    elif body.get("examination_id") == "gp":
        body = {**body, "examination_id": clinic.examinations["GP"].id}
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    response = await client.post(f"/api/v1/sessions/{session.id}/lines", json=body, headers=headers)
    assert response.status == status, await response.text()
    assert (await response.json())["error"]["code"] == code
    assert (
        await db.scalar(select(func.count()).select_from(SessionLine).where(SessionLine.session_id == session.id)) == 1
    )
    assert await db.scalar(select(func.count()).select_from(Invoice).where(Invoice.session_id == session.id)) == 0


async def test_the_last_examination_stays_and_a_closed_session_takes_no_more_lines(
    client: Client, db: AsyncSession, seeded: Seeded, sign_in: SignIn
) -> None:
    clinic = seeded.clinic
    waiting = await insert_session(db, clinic, starts_at=next_weekday(1, hour=10), patient="budi")
    done = await insert_session(db, clinic, starts_at=next_weekday(1, hour=11), patient="budi", status="completed")
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    only = (await db.execute(select(SessionLine.id).where(SessionLine.session_id == waiting.id))).scalar_one()
    refused = await client.delete(f"/api/v1/sessions/{waiting.id}/lines/{only}", headers=headers)
    assert refused.status == 409 and (await refused.json())["error"]["code"] == "last_examination"
    closed = await client.post(
        f"/api/v1/sessions/{done.id}/lines", json={"examination_id": clinic.examinations["GP"].id}, headers=headers
    )
    assert closed.status == 409 and (await closed.json())["error"]["code"] == "session_closed"
    missing = await client.delete(f"/api/v1/sessions/{waiting.id}/lines/987654321", headers=headers)
    assert missing.status == 404


async def test_completing_finalises_once_spending_the_package_insurance_and_points(
    client: Client, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], seeded: Seeded, sign_in: SignIn
) -> None:
    clinic = seeded.clinic
    siti = clinic.patients["siti"]
    session = await insert_session(db, clinic, starts_at=today_at(10), status="open")
    headers = await sign_in("staff", branch_id=clinic.branch.id)
    url = f"/api/v1/sessions/{session.id}"
    assert (
        await client.post(f"{url}/lines", json={"examination_id": clinic.examinations["FACIAL"].id}, headers=headers)
    ).status == 201
    asked = await client.put(f"{url}/invoice/loyalty", json={"points": 500}, headers=headers)
    assert asked.status == 200, await asked.text()

    # GP 150,000: deductible 80,000 by the patient, insurer 80 % of 70,000 = 56,000 -> patient 94,000.
    # FACIAL 350,000: the package's last use covers it -> 0 (insurance: nothing left to cover; tax on 0 is 0).
    # Loyalty: 500 points = 50,000 but capped at 20 % of 94,000 = 18,800 -> 188 points; patient pays 75,200.
    # Earned: floor(75,200 / 10,000) = 7 points.
    completed = await client.post(f"{url}/complete", headers=headers)
    assert completed.status == 200, await completed.text()
    summary = (await completed.json())["invoice"]
    assert (summary["status"], summary["patient_pays"], summary["insurer_pays"], summary["loyalty_discount"]) == (
        "final",
        "75200",
        "56000",
        "18800",
    )

    async def balances() -> tuple[int, Decimal, Decimal, list[tuple[int, str]], datetime | None]:
        async with sessionmaker() as fresh:
            package = await fresh.get(PatientPackage, seeded.package.id)
            member = await fresh.get(PatientInsurance, seeded.insurance.id)
            ledger = (
                await fresh.execute(
                    select(LoyaltyEntry.delta, LoyaltyEntry.reason)
                    .where(LoyaltyEntry.patient_id == siti.id)
                    .order_by(LoyaltyEntry.id)
                )
            ).all()
            invoice = (await fresh.execute(select(Invoice).where(Invoice.session_id == session.id))).scalar_one()
            assert package and member
            entries = [(delta, reason) for delta, reason in ledger]
            return package.remaining_uses, member.deductible_used, member.limit_used, entries, invoice.finalised_at

    after_first = await balances()
    remaining, deductible_used, limit_used, ledger, finalised_at = after_first
    assert remaining == 0
    assert deductible_used == Decimal("100000")  # 20,000 + 80,000
    assert limit_used == Decimal("806000")  # 750,000 + 56,000
    assert ledger == [(500, "welcome"), (-188, "redeemed"), (7, "earned")]
    assert finalised_at is not None

    # Finalising again (a retried job, a double click) changes nothing more.
    async with sessionmaker() as again, again.begin():
        await invoicing.finalise(again, session.id, actor=SYSTEM)
    async with sessionmaker() as again, again.begin():
        await invoicing.finalise(again, session.id, actor=SYSTEM)
    assert await balances() == after_first
    twice = await client.post(f"{url}/complete", headers=headers)
    assert twice.status == 409 and (await twice.json())["error"]["code"] == "invalid_transition"
    assert await balances() == after_first


async def test_two_visits_completed_at_once_use_the_last_package_use_only_once(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], seeded: Seeded
) -> None:
    clinic = seeded.clinic
    first = await insert_session(db, clinic, starts_at=today_at(10), examination="FACIAL", status="open")
    second = await insert_session(db, clinic, starts_at=today_at(11), examination="FACIAL", status="open")

    async def complete_second() -> None:
        async with sessionmaker() as other, other.begin():
            await lifecycle.complete(other, second.id, actor=SYSTEM)

    async with sessionmaker() as work, work.begin():
        await lifecycle.complete(work, first.id, actor=SYSTEM)
        queued = asyncio.create_task(complete_second())
        await waiting_on_a_lock(sessionmaker)  # the second visit reads Siti's balances only after this commit
    await queued

    async with sessionmaker() as fresh:
        invoices = {
            row.session_id: row
            for row in (await fresh.execute(select(Invoice).where(Invoice.session_id.in_([first.id, second.id]))))
            .scalars()
            .all()
        }
        package = await fresh.get(PatientPackage, seeded.package.id)
    # The first FACIAL takes the last use (patient pays 0). The second is paid: deductible 80,000, insurer 80 % of
    # 270,000 = 216,000, the patient 134,000 + 11 % tax 14,740 = 148,740.
    assert (invoices[first.id].package_covered, invoices[first.id].patient_pays) == (Decimal("350000"), Decimal("0"))
    assert (invoices[second.id].package_covered, invoices[second.id].patient_pays) == (
        Decimal("0"),
        Decimal("148740"),
    )
    assert package is not None and package.remaining_uses == 0


async def test_branch_staff_cannot_see_another_branch_session_invoice(
    client: Client, db: AsyncSession, seeded: Seeded, sign_in: SignIn
) -> None:
    elsewhere = await build_clinic(db)
    session = await insert_session(db, elsewhere, starts_at=next_weekday(1, hour=10))
    headers = await sign_in("staff", branch_id=seeded.clinic.branch.id)
    assert (await client.get(f"/api/v1/sessions/{session.id}/invoice", headers=headers)).status == 404
    bandage = {"consumable": {"name": "Bandage", "unit_price": "5000"}}
    added = await client.post(f"/api/v1/sessions/{session.id}/lines", json=bandage, headers=headers)
    assert added.status == 404
    assert (
        await db.scalar(select(func.count()).select_from(SessionLine).where(SessionLine.session_id == session.id)) == 1
    )


async def waiting_on_a_lock(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Return once another connection of this test database is blocked on a row lock (polls pg_stat_activity)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with sessionmaker() as watcher:
        for _ in range(2000):
            if await watcher.scalar(query):
                return
            await watcher.rollback()  # a fresh snapshot of pg_stat_activity on the next read
            await asyncio.sleep(0.005)
    raise AssertionError("the second transaction never waited on the first one's lock")


async def _lines(db: AsyncSession, session_id: int) -> int:
    return int(
        await db.scalar(select(func.count()).select_from(SessionLine).where(SessionLine.session_id == session_id)) or 0
    )


async def _count(db: AsyncSession, table: type[Any]) -> int:
    return int(await db.scalar(select(func.count()).select_from(table)) or 0)
