"""Best Deal coupons at the front desk: issued with a QR, checked on scan, redeemed on a visit (its invoice gets the
discount as a line), each use once, a desk mistake undone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, Coupon, CouponRedemption, Invoice, Session
from booking_core.domain.actors import Actor
from booking_core.services import coupon_redemptions, coupons
from booking_core.services.errors import Conflict
from devtools.builders import Clinic, add_patient, build_clinic, insert_session
from tests.conftest import TEST_SECRET

SignIn = Callable[..., Awaitable[dict[str, str]]]
Client = TestClient[object, object]
JAKARTA = ZoneInfo("Asia/Jakarta")


def _today() -> date:
    return datetime.now(JAKARTA).date()


def _coupon(clinic: Clinic, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient_id": clinic.patients["siti"].id,
        "title": "Best Deal: acne facial",
        "description": "One facial treatment, any weekday.",
        "examination_id": clinic.examinations["FACIAL"].id,
        "branch_id": clinic.branch.id,
        "price_paid": "250000",
        "currency": "IDR",
        "valid_from": (_today() - timedelta(days=1)).isoformat(),
        "valid_until": (_today() + timedelta(days=30)).isoformat(),
    }
    body.update(overrides)
    return body


async def _issue(client: Client, headers: dict[str, str], clinic: Clinic, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/coupons", json=_coupon(clinic, **overrides), headers=headers)
    assert response.status == 201, await response.text()
    issued: dict[str, Any] = await response.json()
    return issued


async def _validate(client: Client, headers: dict[str, str], code: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/coupons/validate", json={"code": code, **extra}, headers=headers)
    assert response.status == 200, await response.text()
    checked: dict[str, Any] = await response.json()
    return checked


async def _visit(
    db: AsyncSession, clinic: Clinic, *, hours_ahead: int = 1, examination: str = "FACIAL", commit: bool = True
) -> Session:
    """One of Siti's visits, accepted, starting ``hours_ahead`` from the coming full hour (spaced so dr. Andi's
    visits never overlap)."""
    starts = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours_ahead)
    session = await insert_session(db, clinic, starts_at=starts, examination=examination, accepted=True, commit=commit)
    return session


async def _redeem(
    client: Client, headers: dict[str, str], code: str, clinic: Clinic, session: Session
) -> Any:  # the response
    body = {"code": code, "branch_id": clinic.branch.id, "session_id": session.id}
    return await client.post("/api/v1/coupons/redeem", json=body, headers=headers)


async def _actions(db: AsyncSession, coupon_id: int) -> list[AuditEntry]:
    rows = await db.execute(
        select(AuditEntry)
        .where(AuditEntry.entity == "coupon", AuditEntry.entity_id == coupon_id)
        .order_by(AuditEntry.id)
    )
    return list(rows.scalars())


async def test_reception_issues_a_coupon_whose_code_is_shown_once_and_stored_only_hashed(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    issued = await _issue(client, reception, clinic)
    code = issued["code"]
    assert code.startswith("BD-") and len(code) == 16
    assert issued["qr_svg"].startswith("<svg") and "</svg>" in issued["qr_svg"]
    coupon = issued["coupon"]
    assert coupon["code_hint"] == code[-4:] and coupon["status"] == "active"
    assert coupon["owner"] == "S*** R********" and coupon["price_paid"] == "250000"
    assert coupon["examination_name"] == "Acne facial treatment" and coupon["branch_name"] == clinic.branch.name

    stored = (await db.execute(select(Coupon).where(Coupon.id == coupon["id"]))).scalar_one()
    assert code not in stored.code_hash and code[3:] not in stored.code_hash and len(stored.code_hash) == 64
    [entry] = await _actions(db, coupon["id"])
    assert entry.action == "coupon.issued" and code[3:] not in str(entry.data)


async def test_scanning_a_coupon_shows_what_it_is_for_and_whose_it_is_without_using_it(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    code = (await _issue(client, reception, clinic))["code"]
    typed = code.lower().replace("-", " ")
    for attempt in (code, typed, typed):
        checked = await _validate(client, reception, attempt)
        assert checked["valid"] is True and checked["result"] == "valid"
        assert checked["coupon"]["owner"] == "S*** R********"
        assert checked["coupon"]["title"] == "Best Deal: acne facial"
    stored = (await db.execute(select(Coupon).where(Coupon.code_hint == code[-4:]))).scalars().all()
    assert [c.status for c in stored if c.patient_id == clinic.patients["siti"].id] == ["active"]


async def test_unknown_and_malformed_codes_get_the_same_answer(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    await _issue(client, reception, clinic)
    answers = [
        await _validate(client, reception, code)
        for code in ("BD-ZZZZZZZZZZZZZ", "BD-0000000000000", "not a code!", "", "'; drop table coupons; --")
    ]
    assert all(
        a
        == {
            "valid": False, "result": "unknown", "message": answers[0]["message"], "coupon": None,
            "redemptions": [], "visits": [], "suggested_session_id": None,
        }
        for a in answers
    )  # fmt: skip
    visit = await _visit(db, clinic)
    redeemed = []
    for code in ("BD-ZZZZZZZZZZZZZ", "<script>", ""):
        response = await _redeem(client, reception, code, clinic, visit)
        assert response.status == 404
        redeemed.append(await response.json())
    assert all(r == redeemed[0] for r in redeemed) and redeemed[0]["error"]["code"] == "unknown"


async def test_a_coupon_is_redeemed_once_and_afterwards_says_when(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    issued = await _issue(client, reception, clinic)
    visit = await _visit(db, clinic)
    first = await _redeem(client, reception, issued["code"], clinic, visit)
    assert first.status == 200, await first.text()
    done = await first.json()
    used = done["coupon"]
    assert used["status"] == "redeemed" and used["redeemed_branch_id"] == clinic.branch.id
    assert used["uses_left"] == 0 and done["session_id"] == visit.id and done["discount"] == "350000"
    second = await _redeem(client, reception, issued["code"], clinic, visit)
    assert second.status == 409
    error = (await second.json())["error"]
    assert error["code"] == "already_redeemed"
    assert datetime.fromisoformat(error["details"]["redeemed_at"]) == datetime.fromisoformat(used["redeemed_at"])
    assert error["message"].startswith("This coupon was already redeemed (") and "T" not in error["message"][-8:]
    checked = await _validate(client, reception, issued["code"])
    assert checked["result"] == "already_redeemed" and checked["coupon"]["redeemed_at"] == used["redeemed_at"]
    assert [r["session_id"] for r in checked["redemptions"]] == [visit.id]
    assert [e.action for e in await _actions(db, used["id"])] == ["coupon.issued", "coupon.redeemed"]


async def test_twenty_desks_scanning_one_coupon_at_once_redeem_it_exactly_once(
    sessionmaker: async_sessionmaker[AsyncSession], clinic: Clinic
) -> None:
    desk = Actor(kind="staff", name="Reception", role="staff")
    async with sessionmaker() as db, db.begin():
        issued = await coupons.issue(
            db,
            actor=desk,
            secret=TEST_SECRET,
            patient_id=clinic.patients["siti"].id,
            title="Best Deal: GP visit",
            price_paid=clinic.examinations["GP"].price,
            currency="IDR",
            valid_from=_today(),
            valid_until=_today() + timedelta(days=7),
            examination_id=clinic.examinations["GP"].id,
        )
        # Two of Siti's visits: desks racing on one visit wait on its lock, on the other on the coupon's.
        visits = [await _visit(db, clinic, hours_ahead=h, examination="GP", commit=False) for h in (1, 3)]

    async def scan(n: int) -> str:
        async with sessionmaker() as db, db.begin():
            try:
                done = await coupon_redemptions.redeem(
                    db, issued.code, actor=desk, secret=TEST_SECRET, branch_id=clinic.branch.id,
                    session_id=visits[n % 2].id,
                )  # fmt: skip
            except Conflict as exc:
                return exc.code
            return done.coupon.status

    outcomes = await asyncio.gather(*(scan(n) for n in range(20)))
    assert sorted(outcomes) == ["already_redeemed"] * 19 + ["redeemed"]
    async with sessionmaker() as db:
        mine = CouponRedemption.coupon_id == issued.coupon.id
        standing = (await db.execute(select(CouponRedemption).where(mine))).scalars().all()
        on_visits = Invoice.session_id.in_([v.id for v in visits])
        invoices = (await db.execute(select(Invoice).where(on_visits, Invoice.coupon_discount > 0))).scalars().all()
    assert len(standing) == 1 and [i.session_id for i in invoices] == [standing[0].session_id]
    assert invoices[0].coupon_discount == clinic.examinations["GP"].price


async def test_twenty_concurrent_redeem_requests_redeem_the_coupon_once(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    reception = await sign_in("staff")
    issued = await _issue(client, reception, clinic, branch_id=None)
    visit = await _visit(db, clinic)
    responses = await asyncio.gather(*(_redeem(client, reception, issued["code"], clinic, visit) for _ in range(20)))
    assert sorted(r.status for r in responses) == [200] + [409] * 19
    assert {(await r.json())["error"]["code"] for r in responses if r.status == 409} == {"already_redeemed"}
    redeemed = [e for e in await _actions(db, issued["coupon"]["id"]) if e.action == "coupon.redeemed"]
    assert len(redeemed) == 1


async def test_a_coupon_is_refused_before_its_first_day_after_its_last_and_at_another_branch(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    owner = await sign_in("owner")
    today = _today()
    early = await _issue(
        client,
        owner,
        clinic,
        valid_from=(today + timedelta(days=3)).isoformat(),
        valid_until=(today + timedelta(days=10)).isoformat(),
    )
    late = await _issue(
        client,
        owner,
        clinic,
        valid_from=(today - timedelta(days=30)).isoformat(),
        valid_until=(today - timedelta(days=1)).isoformat(),
    )
    elsewhere = await build_clinic(db)
    at_kemang = await _issue(client, owner, clinic)
    last_day = await _issue(client, owner, clinic, valid_until=today.isoformat())
    visit = await _visit(db, clinic)
    cases = [(early, "not_yet_valid"), (late, "expired"), (at_kemang, "other_branch")]
    for issued, reason in cases:
        desk = elsewhere.branch.id if reason == "other_branch" else clinic.branch.id
        checked = await _validate(client, owner, issued["code"], branch_id=desk)
        assert checked["valid"] is False and checked["result"] == reason
        body = {"code": issued["code"], "branch_id": desk, "session_id": visit.id}
        response = await client.post("/api/v1/coupons/redeem", json=body, headers=owner)
        assert response.status == 409
        assert (await response.json())["error"]["code"] == reason
    stored = await db.execute(select(Coupon.status).where(Coupon.branch_id == clinic.branch.id))
    assert set(stored.scalars()) == {"active"}
    on_last_day = await _redeem(client, owner, last_day["code"], clinic, visit)
    assert on_last_day.status == 200


async def test_a_voided_coupon_cannot_be_redeemed(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    admin = await sign_in("admin")
    issued = await _issue(client, admin, clinic)
    url = f"/api/v1/coupons/{issued['coupon']['id']}/void"
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    assert (await client.post(url, json={"reason": "Refunded"}, headers=reception)).status == 403
    voided = await client.post(url, json={"reason": "Refunded at the cashier"}, headers=admin)
    assert voided.status == 200 and (await voided.json())["status"] == "void"
    assert (await _validate(client, reception, issued["code"]))["result"] == "void"
    redeem = await _redeem(client, reception, issued["code"], clinic, await _visit(db, clinic))
    assert redeem.status == 409 and (await redeem.json())["error"]["code"] == "void"
    again = await client.post(url, json={"reason": "Twice"}, headers=admin)
    assert again.status == 409
    assert [e.action for e in await _actions(db, issued["coupon"]["id"])] == ["coupon.issued", "coupon.voided"]


async def test_issuing_checks_the_price_the_dates_the_patient_and_who_is_asking(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    owner = await sign_in("owner")
    cases = [
        (_coupon(clinic, price_paid="250000.50"), 422, "invalid_amount"),
        (_coupon(clinic, price_paid="-1"), 422, "invalid_amount"),
        (
            _coupon(clinic, valid_from=_today().isoformat(), valid_until=(_today() - timedelta(days=1)).isoformat()),
            422,
            "invalid_dates",
        ),
        (_coupon(clinic, currency="USD", price_paid="20.00"), 422, "currency_mismatch"),
        (_coupon(clinic, patient_id=2_000_000_000), 404, "not_found"),
        (_coupon(clinic, examination_id=2_000_000_000), 404, "not_found"),
        (_coupon(clinic, code="BD-PICKMYOWNCODE"), 422, "invalid_body"),
    ]
    for body, status, code in cases:
        response = await client.post("/api/v1/coupons", json=body, headers=owner)
        assert response.status == status, body
        assert (await response.json())["error"]["code"] == code, body
    doctor = await sign_in("doctor")
    assert (await client.post("/api/v1/coupons", json=_coupon(clinic), headers=doctor)).status == 403
    assert (await client.post("/api/v1/coupons/validate", json={"code": "X"}, headers=doctor)).status == 403

    elsewhere = await build_clinic(db)
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    foreign = await client.post("/api/v1/coupons", json=_coupon(elsewhere), headers=reception)
    assert foreign.status == 404
    anywhere = await _issue(client, reception, clinic, branch_id=None)
    assert anywhere["coupon"]["branch_id"] == clinic.branch.id  # a branch's desk sells for its own branch


async def _invoice(client: Client, headers: dict[str, str], session: Session) -> dict[str, Any]:
    response = await client.get(f"/api/v1/sessions/{session.id}/invoice", headers=headers)
    assert response.status == 200, await response.text()
    invoice: dict[str, Any] = await response.json()
    return invoice


def _coupon_lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in invoice["lines"] if line["kind"] == "coupon"]


async def test_a_voucher_for_two_visits_goes_on_each_invoice_once_and_an_undo_gives_its_use_back(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    issued = await _issue(
        client, reception, clinic, title="Best Deal voucher", examination_id=None, price_paid="100000", max_uses=2
    )
    first_visit, second_visit = await _visit(db, clinic, hours_ahead=1), await _visit(db, clinic, hours_ahead=26)

    first = await _redeem(client, reception, issued["code"], clinic, first_visit)
    twice = await _redeem(client, reception, issued["code"], clinic, first_visit)
    checked = await _validate(client, reception, issued["code"])

    assert first.status == 200 and (await first.json())["discount"] == "100000"
    assert twice.status == 409 and (await twice.json())["error"]["code"] == "already_applied"
    assert checked["coupon"]["uses_left"] == 1 and checked["coupon"]["status"] == "active"
    assert [v["session_id"] for v in checked["visits"]] == [first_visit.id, second_visit.id]
    assert [v["has_coupon"] for v in checked["visits"]] == [True, False]
    assert checked["suggested_session_id"] == second_visit.id  # not the visit it already stands on
    invoice = await _invoice(client, reception, first_visit)
    [line] = _coupon_lines(invoice)
    assert line["name"] == "Coupon: Best Deal voucher" and line["patient_amount"] == "-100000"
    assert line["steps"][0]["explanation"].endswith("worth 100,000, what was paid for it")
    # the acne facial (350,000 + 11 % tax) less the voucher
    assert invoice["totals"]["coupon_discount"] == "100000" and invoice["totals"]["patient_pays"] == "288500"

    second = await _redeem(client, reception, issued["code"], clinic, second_visit)
    assert second.status == 200 and (await second.json())["coupon"]["status"] == "redeemed"
    redemption_id = (await first.json())["redemption_id"]
    undo_url = f"/api/v1/coupons/redemptions/{redemption_id}/undo"
    undone = await client.post(undo_url, json={"reason": "Put on the wrong visit"}, headers=reception)
    again = await client.post(undo_url, json={"reason": "Twice"}, headers=reception)

    assert undone.status == 200 and (await undone.json())["uses_left"] == 1
    assert (await undone.json())["status"] == "active"
    assert again.status == 409 and (await again.json())["error"]["code"] == "already_undone"
    after = await _invoice(client, reception, first_visit)
    assert _coupon_lines(after) == [] and after["totals"]["patient_pays"] == "388500"
    kept = (await db.execute(select(CouponRedemption).where(CouponRedemption.id == redemption_id))).scalar_one()
    assert kept.undone_at is not None and kept.undo_reason == "Put on the wrong visit" and kept.undone_by is not None
    actions = [e.action for e in await _actions(db, issued["coupon"]["id"])]
    assert actions == ["coupon.issued", "coupon.redeemed", "coupon.redeemed", "coupon.redemption_undone"]


async def test_a_coupon_goes_only_on_its_owners_open_visit_today_or_later_that_has_its_examination(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    issued = await _issue(client, reception, clinic)  # for the acne facial
    consultation = await _visit(db, clinic, hours_ahead=1, examination="GP")
    two_days_ago = await _visit(db, clinic, hours_ahead=-48)
    cancelled = await _visit(db, clinic, hours_ahead=30)
    cancelled.status = "cancelled"
    clinic.patients["budi"] = await add_patient(db, commit=False)
    theirs = await insert_session(
        db, clinic, starts_at=consultation.starts_at + timedelta(hours=5), examination="FACIAL", patient="budi"
    )
    await db.commit()

    refusals = {}
    for name, session in {"gp": consultation, "past": two_days_ago, "cancelled": cancelled, "theirs": theirs}.items():
        response = await _redeem(client, reception, issued["code"], clinic, session)
        assert response.status == 409, name
        refusals[name] = (await response.json())["error"]
    nowhere = await client.post(
        "/api/v1/coupons/redeem",
        json={"code": issued["code"], "branch_id": clinic.branch.id, "session_id": 2_000_000_000},
        headers=reception,
    )

    assert refusals["gp"]["code"] == "examination_missing"
    assert refusals["gp"]["message"] == (
        "This coupon is for Acne facial treatment; the visit has none. Add it to the visit first."
    )
    assert refusals["past"]["code"] == "visit_past"
    assert refusals["cancelled"]["code"] == "session_closed"
    assert refusals["theirs"]["code"] == "other_patient"
    assert nowhere.status == 404
    assert (await _validate(client, reception, issued["code"]))["coupon"]["uses_left"] == 1


async def test_cancelling_a_visit_gives_its_coupon_back(
    client: Client, sign_in: SignIn, clinic: Clinic, db: AsyncSession
) -> None:
    reception = await sign_in("staff", branch_id=clinic.branch.id)
    issued = await _issue(client, reception, clinic)
    visit = await _visit(db, clinic)
    assert (await _redeem(client, reception, issued["code"], clinic, visit)).status == 200

    cancel = await client.post(
        f"/api/v1/sessions/{visit.id}/cancel", json={"reason_code": "patient_request"}, headers=reception
    )

    assert cancel.status == 200, await cancel.text()
    checked = await _validate(client, reception, issued["code"])
    assert checked["valid"] is True and checked["coupon"]["uses_left"] == 1
    [redemption] = checked["redemptions"]
    assert redemption["undone_at"] is not None and redemption["undo_reason"] == "The visit was cancelled."
