"""The examination catalog through the staff API: what the clinic offers, where, by whom, at what price."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, Examination, ExaminationBranch, ScheduleApplication
from booking_core.domain.actors import Actor
from booking_core.services import catalog
from booking_core.services.errors import Conflict
from devtools.builders import Clinic, build_clinic, next_weekday, unique

SignIn = Callable[..., Awaitable[dict[str, str]]]
Client = TestClient[object, object]
OWNER = Actor(kind="staff", name="Owner", role="owner")


def _examination(clinic: Clinic, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": unique("USG").lower(),
        "name": "Abdominal ultrasound",
        "description": "Fasting 6 hours before.",
        "price": "450000",
        "currency": "IDR",
        "duration_min": 45,
        "taxable": True,
        "room_kind": "consultation",
        "min_notice_min": 120,
        "horizon_days": 30,
        "buffer_before_min": 5,
        "buffer_after_min": 10,
        "cancel_cutoff_min": 240,
        "keywords": ["usg", "ultrasound"],
        "branch_ids": [clinic.branch.id],
        "doctor_ids": [clinic.doctors["andi"].id],
        "windows": [{"weekday": 1, "starts": "13:00", "ends": "16:00"}],
        "doctor_commission": {"kind": "percent", "value": "10"},
        "manager_commission": {"kind": "fixed", "value": "15000"},
    }
    body.update(overrides)
    return body


async def _audit(db: AsyncSession, action: str, entity_id: int) -> AuditEntry:
    return (
        await db.execute(
            select(AuditEntry)
            .where(AuditEntry.action == action, AuditEntry.entity == "examination", AuditEntry.entity_id == entity_id)
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
    ).scalar_one()


async def _count(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(Examination))).scalar_one())


async def test_an_owner_adds_an_ultrasound_and_reception_finds_it_in_the_branch_catalog(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    owner = await sign_in("owner")
    body = _examination(clinic)
    created = await client.post("/api/v1/examinations", json=body, headers=owner)
    assert created.status == 201, await created.text()
    exam = await created.json()
    assert exam["code"] == body["code"].upper()
    assert exam["price"] == "450000" and exam["currency"] == "IDR"
    assert exam["windows"] == [{"weekday": 1, "starts": "13:00:00", "ends": "16:00:00"}]
    assert exam["doctor_commission"] == {"kind": "percent", "value": "10.00"}
    assert exam["manager_commission"] == {"kind": "fixed", "value": "15000"}
    assert exam["branch_ids"] == [clinic.branch.id] and exam["doctor_ids"] == [clinic.doctors["andi"].id]
    assert exam["active"] is True

    reception = await sign_in("staff", branch_id=clinic.branch.id)
    one = await client.get(f"/api/v1/examinations/{exam['id']}", headers=reception)
    assert one.status == 200 and (await one.json())["keywords"] == ["usg", "ultrasound"]
    listed = await client.get(f"/api/v1/examinations?branch_id={clinic.branch.id}&active=true", headers=reception)
    codes = [item["code"] for item in (await listed.json())["items"]]
    assert exam["code"] in codes and clinic.examinations["GP"].code in codes

    entry = await _audit(db, "examination.created", exam["id"])
    assert entry.data["fields"]["price"] == "450000"


async def test_an_idr_price_with_sen_or_below_zero_is_refused_and_nothing_is_written(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    owner = await sign_in("owner")
    before = await _count(db)
    for price in ("1500.50", "-1000", "1e15"):
        response = await client.post("/api/v1/examinations", json=_examination(clinic, price=price), headers=owner)
        assert response.status == 422, price
        assert (await response.json())["error"]["code"] == "invalid_amount", price
    trailing_zeros = await client.post(
        "/api/v1/examinations", json=_examination(clinic, price="1500.00"), headers=owner
    )
    assert (await trailing_zeros.json())["price"] == "1500"
    assert await _count(db) == before + 1


async def test_a_second_examination_with_the_same_code_is_a_conflict(
    client: Client, sign_in: SignIn, clinic: Clinic
) -> None:
    owner = await sign_in("admin")
    first = _examination(clinic)
    assert (await client.post("/api/v1/examinations", json=first, headers=owner)).status == 201
    again = await client.post("/api/v1/examinations", json=_examination(clinic, code=first["code"]), headers=owner)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "duplicate_code"
    rename = await client.patch(
        f"/api/v1/examinations/{clinic.examinations['GP'].id}", json={"code": first["code"]}, headers=owner
    )
    assert rename.status == 409
    assert (await rename.json())["error"]["code"] == "duplicate_code"
    gp = await client.get(f"/api/v1/examinations/{clinic.examinations['GP'].id}", headers=owner)
    assert (await gp.json())["code"] == clinic.examinations["GP"].code


async def test_two_admins_adding_the_same_code_at_once_get_one_examination(
    sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic
) -> None:
    code = unique("ECG")

    async def add() -> str:
        async with sessionmaker() as db, db.begin():
            draft = catalog.ExaminationDraft(
                code=code,
                name="ECG",
                price=Decimal("200000"),
                currency="IDR",
                duration_min=20,
                branch_ids=(clinic.branch.id,),
                doctor_ids=(clinic.doctors["andi"].id,),
            )
            try:
                await catalog.create_examination(db, draft, actor=OWNER)
            except Conflict as exc:
                return exc.code
            return "created"

    outcomes = await asyncio.gather(*(add() for _ in range(5)))
    assert sorted(outcomes) == ["created", *["duplicate_code"] * 4]


async def test_unknown_branches_and_doctors_are_not_found(client: Client, sign_in: SignIn, clinic: Clinic) -> None:
    owner = await sign_in("owner")
    no_branch = await client.post(
        "/api/v1/examinations", json=_examination(clinic, branch_ids=[2_000_000_000]), headers=owner
    )
    assert no_branch.status == 404
    no_doctor = await client.post(
        "/api/v1/examinations", json=_examination(clinic, doctor_ids=[2_000_000_000]), headers=owner
    )
    assert no_doctor.status == 404
    assert (await client.get("/api/v1/examinations/2000000000", headers=owner)).status == 404
    assert (await client.get("/api/v1/examinations/99999999999999", headers=owner)).status == 422  # past 2**31


async def test_commission_rules_are_a_percentage_up_to_100_or_a_valid_amount(
    client: Client, sign_in: SignIn, clinic: Clinic
) -> None:
    owner = await sign_in("owner")
    cases = [
        ({"kind": "percent", "value": "100.5"}, "invalid_commission"),
        ({"kind": "percent", "value": "-1"}, "invalid_commission"),
        ({"kind": "fixed", "value": "2500.5"}, "invalid_amount"),
        ({"kind": "fixed", "value": "-2500"}, "invalid_amount"),
    ]
    for rule, code in cases:
        response = await client.post(
            "/api/v1/examinations", json=_examination(clinic, doctor_commission=rule), headers=owner
        )
        assert response.status == 422, rule
        assert (await response.json())["error"]["code"] == code, rule
    bonus = await client.post(
        "/api/v1/examinations",
        json=_examination(clinic, doctor_commission={"kind": "bonus", "value": "1"}),
        headers=owner,
    )
    assert bonus.status == 422
    everything = _examination(clinic, doctor_commission={"kind": "percent", "value": 100})
    full = await client.post("/api/v1/examinations", json=everything, headers=owner)
    assert full.status == 201


async def test_windows_durations_and_currencies_follow_the_clinic_rules(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    owner = await sign_in("owner")
    backwards = await client.post(
        "/api/v1/examinations",
        headers=owner,
        json=_examination(clinic, windows=[{"weekday": 2, "starts": "16:00", "ends": "09:00"}]),
    )
    assert backwards.status == 422 and (await backwards.json())["error"]["code"] == "invalid_window"
    sunday_eight = await client.post(
        "/api/v1/examinations",
        headers=owner,
        json=_examination(clinic, windows=[{"weekday": 7, "starts": "09:00", "ends": "10:00"}]),
    )
    assert sunday_eight.status == 422
    for minutes in (4, 721):
        response = await client.post(
            "/api/v1/examinations", json=_examination(clinic, duration_min=minutes), headers=owner
        )
        assert response.status == 422, minutes
    dollars = await client.post(
        "/api/v1/examinations", json=_examination(clinic, currency="USD", price="45.50"), headers=owner
    )
    assert dollars.status == 422 and (await dollars.json())["error"]["code"] == "currency_mismatch"
    singapore = await build_clinic(db, currency="SGD", tz="Asia/Singapore")
    in_sgd = await client.post(
        "/api/v1/examinations",
        headers=owner,
        json=_examination(
            singapore, currency="SGD", price="45.50", manager_commission={"kind": "fixed", "value": "2.25"}
        ),
    )
    assert in_sgd.status == 201 and (await in_sgd.json())["price"] == "45.50"
    unexpected = await client.post("/api/v1/examinations", json=_examination(clinic, colour="blue"), headers=owner)
    assert unexpected.status == 422


async def test_a_patch_changes_what_is_sent_replaces_lists_and_audits_the_difference(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    owner = await sign_in("owner")
    exam = await (await client.post("/api/v1/examinations", json=_examination(clinic), headers=owner)).json()
    sari = clinic.doctors["sari"].id
    patch = {
        "price": "475000",
        "doctor_ids": [sari],
        "windows": [
            {"weekday": 3, "starts": "09:00", "ends": "12:00"},
            {"weekday": 4, "starts": "09:00", "ends": "12:00"},
        ],
    }
    response = await client.patch(f"/api/v1/examinations/{exam['id']}", json=patch, headers=owner)
    assert response.status == 200, await response.text()
    changed = await response.json()
    assert changed["price"] == "475000" and changed["doctor_ids"] == [sari]
    assert [w["weekday"] for w in changed["windows"]] == [3, 4]
    assert changed["name"] == exam["name"] and changed["keywords"] == exam["keywords"]
    entry = await _audit(db, "examination.updated", exam["id"])
    assert set(entry.data["changed"]) == {"price", "doctor_ids", "windows"}
    assert entry.data["changed"]["price"] == {"from": "450000", "to": "475000"}

    null_price = await client.patch(f"/api/v1/examinations/{exam['id']}", json={"price": None}, headers=owner)
    assert null_price.status == 422
    no_room_kind = await client.patch(f"/api/v1/examinations/{exam['id']}", json={"room_kind": None}, headers=owner)
    assert (await no_room_kind.json())["room_kind"] is None
    sen = await client.patch(f"/api/v1/examinations/{exam['id']}", json={"price": "475000.25"}, headers=owner)
    assert (await sen.json())["error"]["code"] == "invalid_amount"


async def test_deleting_an_examination_withdraws_it_but_keeps_it_for_history(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    owner = await sign_in("owner")
    exam_id = clinic.examinations["FACIAL"].id
    response = await client.delete(f"/api/v1/examinations/{exam_id}", headers=owner)
    assert response.status == 200 and (await response.json())["active"] is False
    assert (await client.get(f"/api/v1/examinations/{exam_id}", headers=owner)).status == 200
    bookable = await client.get(f"/api/v1/examinations?branch_id={clinic.branch.id}&active=true", headers=owner)
    assert exam_id not in [item["id"] for item in (await bookable.json())["items"]]
    withdrawn = await client.get(f"/api/v1/examinations?branch_id={clinic.branch.id}&active=false", headers=owner)
    assert [item["id"] for item in (await withdrawn.json())["items"]] == [exam_id]
    entry = await _audit(db, "examination.deleted", exam_id)
    assert entry.data["changed"] == {"active": {"from": True, "to": False}}
    back = await client.patch(f"/api/v1/examinations/{exam_id}", json={"active": True}, headers=owner)
    assert (await back.json())["active"] is True


async def test_reception_and_doctors_may_read_but_not_change_the_catalog(
    client: Client, sign_in: SignIn, clinic: Clinic
) -> None:
    exam_id = clinic.examinations["GP"].id
    for role in ("staff", "doctor"):
        headers = await sign_in(role)
        assert (await client.get(f"/api/v1/examinations/{exam_id}", headers=headers)).status == 200
        assert (await client.post("/api/v1/examinations", json=_examination(clinic), headers=headers)).status == 403
        patch = await client.patch(f"/api/v1/examinations/{exam_id}", json={"price": "1"}, headers=headers)
        assert patch.status == 403
        assert (await client.delete(f"/api/v1/examinations/{exam_id}", headers=headers)).status == 403
    assert (await client.get("/api/v1/examinations")).status == 401


async def test_branch_staff_do_not_see_another_branchs_catalog(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    other = await build_clinic(db)
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    foreign = other.examinations["GP"].id
    assert (await client.get(f"/api/v1/examinations/{foreign}", headers=reception)).status == 404
    assert (await client.get(f"/api/v1/examinations?branch_id={other.branch.id}", headers=reception)).status == 404
    mine = await client.get("/api/v1/examinations", headers=reception)
    ids = [item["id"] for item in (await mine.json())["items"]]
    assert clinic.examinations["GP"].id in ids and foreign not in ids
    branch_admin = await sign_in("admin", branch_id=clinic.branch.id)
    elsewhere = await client.post("/api/v1/examinations", json=_examination(other), headers=branch_admin)
    assert elsewhere.status == 404


async def test_the_inbox_lists_branches_and_the_doctors_who_attend_them(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    other = await build_clinic(db, currency="SGD", tz="Asia/Singapore", tax_rate=Decimal("0.09"))
    saturday = next_weekday(5, hour=9).date()
    db.add(
        ScheduleApplication(
            doctor_id=clinic.doctors["andi"].id,
            branch_id=other.branch.id,
            day=saturday,
            starts=next_weekday(5, hour=9).time(),
            ends=next_weekday(5, hour=12).time(),
            status="accepted",
        )
    )
    await db.commit()
    owner = await sign_in("owner")
    branches = {b["id"]: b for b in (await (await client.get("/api/v1/branches", headers=owner)).json())["items"]}
    assert branches[other.branch.id]["currency"] == "SGD" and branches[other.branch.id]["tax_rate"] == "0.0900"
    assert branches[clinic.branch.id]["tz"] == "Asia/Jakarta"
    doctors = await (await client.get(f"/api/v1/doctors?branch_id={clinic.branch.id}", headers=owner)).json()
    andi = next(d for d in doctors["items"] if d["id"] == clinic.doctors["andi"].id)
    assert andi["branch_ids"] == sorted([clinic.branch.id, other.branch.id])
    assert other.doctors["andi"].id not in [d["id"] for d in doctors["items"]]

    reception = await sign_in("staff", branch_id=clinic.branch.id)
    seen = await (await client.get("/api/v1/branches", headers=reception)).json()
    assert [b["id"] for b in seen["items"]] == [clinic.branch.id]
    their_doctors = await (await client.get("/api/v1/doctors", headers=reception)).json()
    assert {d["id"] for d in their_doctors["items"]} == {clinic.doctors["andi"].id, clinic.doctors["sari"].id}
    assert all(d["branch_ids"] == [clinic.branch.id] for d in their_doctors["items"])
    assert (await client.get(f"/api/v1/doctors?branch_id={other.branch.id}", headers=reception)).status == 404


async def test_a_branch_admin_edits_a_shared_examination_without_touching_the_other_branch(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    other = await build_clinic(db)
    owner = await sign_in("owner")
    both = [clinic.branch.id, other.branch.id]
    doctors = [clinic.doctors["andi"].id, other.doctors["andi"].id]  # each branch's own dr. Andi
    shared = await client.post(
        "/api/v1/examinations", json=_examination(clinic, branch_ids=both, doctor_ids=doctors), headers=owner
    )
    exam = await shared.json()
    branch_admin = await sign_in("admin", branch_id=clinic.branch.id)
    url = f"/api/v1/examinations/{exam['id']}"
    priced = await client.patch(url, json={"price": "500000"}, headers=branch_admin)
    assert priced.status == 200, await priced.text()
    assert (await priced.json())["branch_ids"] == [clinic.branch.id]  # the other branch is not shown to them
    relisted = await client.patch(url, json={"branch_ids": [clinic.branch.id]}, headers=branch_admin)
    assert relisted.status == 200
    seen_by_owner = await (await client.get(url, headers=owner)).json()
    assert seen_by_owner["price"] == "500000"
    assert seen_by_owner["branch_ids"] == sorted([clinic.branch.id, other.branch.id])


async def test_an_examination_is_not_offered_where_none_of_its_doctors_works(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    other = await build_clinic(db)  # dr. Andi of this clinic never works there
    owner = await sign_in("owner")
    refused = await client.post(
        "/api/v1/examinations", json=_examination(clinic, branch_ids=[clinic.branch.id, other.branch.id]), headers=owner
    )
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert error["code"] == "no_doctor_at_branch"
    assert error["message"].startswith("None of this examination's doctors works at Klinik Sehat Test:")

    created = await client.post("/api/v1/examinations", json=_examination(clinic), headers=owner)
    exam = await created.json()
    assert created.status == 201 and exam["unstaffed_branch_ids"] == []
    url = f"/api/v1/examinations/{exam['id']}"
    added = await client.patch(url, json={"branch_ids": [clinic.branch.id, other.branch.id]}, headers=owner)
    assert added.status == 422 and (await added.json())["error"]["code"] == "no_doctor_at_branch"

    # An offer made before this rule (or left when a doctor stopped attending) is kept, and flagged.
    db.add(ExaminationBranch(examination_id=exam["id"], branch_id=other.branch.id))
    await db.commit()
    flagged = await (await client.get(url, headers=owner)).json()
    assert flagged["branch_ids"] == sorted([clinic.branch.id, other.branch.id])
    assert flagged["unstaffed_branch_ids"] == [other.branch.id]
    repriced = await client.patch(url, json={"price": "500000"}, headers=owner)
    assert repriced.status == 200, await repriced.text()  # editing it otherwise is not refused for it
