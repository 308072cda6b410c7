"""The front desk's QR scanner (/inbox/scanner): check-in QR codes, typed booking codes and Best Deal coupons."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import AuditEntry, Coupon, CouponRedemption, QueueEntry, Session
from booking_core.domain.links import checkin_content
from booking_core.services import coupons
from devtools.builders import Clinic, insert_session
from tests.conftest import TEST_SECRET
from tests.integration.queue_pages import DESK, Client, at, checked_in, flash_of, midday_clinic, today, visit
from tests.integration.staff_pages import sign_in_page


async def scan(client: Client, csrf: str, code: str, *, branch: int | None = None) -> str:
    """Post a code as the scanner page does and return the page the redirect shows (with the result)."""
    data = {"csrf_token": csrf, "code": code} | ({"branch": str(branch)} if branch else {})
    response = await client.post(
        "/inbox/scanner", data=data, headers={"Referer": "/inbox/scanner"}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    page = await client.get(response.headers["Location"])
    assert page.status == 200
    return await page.text()


def result_of(html: str) -> str:
    found = re.search(r'data-result="([a-z_]+)"', html)
    return found.group(1) if found else ""


def token_of(html: str) -> str:
    found = re.search(r'id="result-token">([^<]+)<', html)
    return found.group(1) if found else ""


async def coupon_code(db: AsyncSession, clinic: Clinic, **overrides: object) -> str:
    values: dict[str, object] = {
        "title": "Best Deal: acne facial",
        "price_paid": Decimal("299000"),
        "currency": "IDR",
        "valid_from": today(clinic) - timedelta(days=1),
        "valid_until": today(clinic) + timedelta(days=30),
        "branch_id": clinic.branch.id,
    } | overrides
    issued = await coupons.issue(
        db,
        actor=DESK,
        secret=TEST_SECRET,
        patient_id=clinic.patients["siti"].id,
        **values,  # type: ignore[arg-type]
    )
    await db.commit()
    return issued.code


async def test_scanning_a_check_in_qr_checks_the_patient_in_with_the_days_token(
    client: Client, db: AsyncSession
) -> None:
    clinic = await midday_clinic(db)
    session = await visit(db, clinic, at(clinic, 13), name="Ani Suryani")
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    html = await scan(client, csrf, checkin_content(session.booking_code))

    assert result_of(html) == "checked_in" and token_of(html) == "A-001"
    assert "Checked in" in html and "Ani Suryani" in html and "dr. Andi Wijaya" in html and "They are next." in html
    entry = (await db.execute(select(QueueEntry).where(QueueEntry.session_id == session.id))).scalar_one()
    assert entry.token == "A-001"
    again = await client.get("/inbox/scanner")  # the result shows once: a reload is a fresh scanner
    assert result_of(await again.text()) == ""


async def test_a_typed_booking_code_with_dashes_and_lower_case_checks_in_too(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    await checked_in(db, await visit(db, clinic, at(clinic, 9)))
    session = await visit(db, clinic, at(clinic, 13), name="Bayu Pratama")
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    typed = f" {session.booking_code[:4].lower()}-{session.booking_code[4:].lower()} "

    html = await scan(client, csrf, typed)

    assert result_of(html) == "checked_in" and token_of(html) == "A-002"
    assert "1 waiting before them, expected about" in html


async def test_scanning_twice_says_already_checked_in_and_keeps_the_token(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    session = await visit(db, clinic, at(clinic, 13))
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    await scan(client, csrf, checkin_content(session.booking_code))

    html = await scan(client, csrf, checkin_content(session.booking_code))

    assert result_of(html) == "already_checked_in" and token_of(html) == "A-001"
    assert "Already checked in" in html and "nothing was changed" in html
    count = await db.execute(select(QueueEntry).where(QueueEntry.session_id == session.id))
    assert len(count.scalars().all()) == 1


async def test_a_visit_not_accepted_yet_waits_for_the_desk_to_accept_it(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    session = await visit(db, clinic, at(clinic, 13), name="Citra Dewi", accepted=False)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    html = await scan(client, csrf, checkin_content(session.booking_code))

    assert result_of(html) == "not_accepted" and "Not accepted yet" in html
    assert f'name="session_id" value="{session.id}"' in html and "Accept and check in" in html
    assert (await db.execute(select(QueueEntry).where(QueueEntry.session_id == session.id))).first() is None

    response = await client.post(
        "/inbox/scanner/accept",
        data={"csrf_token": csrf, "session_id": str(session.id), "branch": str(clinic.branch.id)},
        allow_redirects=False,
    )
    accepted = await (await client.get(response.headers["Location"])).text()

    assert result_of(accepted) == "checked_in" and token_of(accepted) == "A-001"
    assert "Visit accepted and checked in." in accepted
    await db.refresh(session)
    assert session.accepted is True


async def test_a_visit_booked_at_another_branch_is_not_checked_in_here(client: Client, db: AsyncSession) -> None:
    here = await midday_clinic(db)
    there = await midday_clinic(db, token_prefix="B")
    session = await visit(db, there, at(there, 13), name="Dewi Lestari")
    csrf = await sign_in_page(client, db, "staff", branch_id=here.branch.id)

    html = await scan(client, csrf, checkin_content(session.booking_code))

    assert result_of(html) == "other_branch" and "Booked at another branch" in html
    assert "Dewi Lestari" not in html  # nothing of another branch's patient shows
    assert (await db.execute(select(QueueEntry).where(QueueEntry.session_id == session.id))).first() is None


async def test_cancelled_visits_and_visits_on_another_day_are_refused(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    cancelled = await visit(db, clinic, at(clinic, 13), status="cancelled")
    tomorrow = await visit(db, clinic, at(clinic, 13) + timedelta(days=1))
    csrf = await sign_in_page(client, db, "owner")

    gone = await scan(client, csrf, checkin_content(cancelled.booking_code), branch=clinic.branch.id)
    later = await scan(client, csrf, tomorrow.booking_code, branch=clinic.branch.id)

    assert result_of(gone) == "cancelled" and "Visit cancelled" in gone
    assert result_of(later) == "wrong_day" and "patients check in on the day of their visit" in later


async def test_an_unknown_code_says_so(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    answers = [await scan(client, csrf, code) for code in ("FD:ZZZZZZZZ", "hello there", "BD-ZZZZZZZZZZZZZ")]

    assert [result_of(html) for html in answers] == ["unknown", "unknown", "unknown"]
    assert "This is not a check-in QR or coupon we know." in answers[0]


async def siti_visits(db: AsyncSession, clinic: Clinic) -> tuple[Session, Session]:
    """Siti's two visits today: a general consultation at 13:00, and her acne facial at 14:00, checked in."""
    consultation = await insert_session(db, clinic, starts_at=at(clinic, 13), examination="GP", accepted=True)
    facial = await insert_session(db, clinic, starts_at=at(clinic, 14), examination="FACIAL", accepted=True)
    await checked_in(db, facial)
    return consultation, facial


async def post_form(client: Client, path: str, data: dict[str, str]) -> str:
    response = await client.post(path, data=data, headers={"Referer": "/inbox/scanner"}, allow_redirects=False)
    assert response.status == 303, await response.text()
    return await (await client.get(response.headers["Location"])).text()


def redemption_of(html: str) -> str:
    found = re.search(r'name="redemption_id" value="(\d+)"', html)
    return found.group(1) if found else ""


async def test_scanning_a_coupon_shows_it_and_asks_which_visit_before_redeeming(
    client: Client, db: AsyncSession
) -> None:
    clinic = await midday_clinic(db)
    consultation, facial = await siti_visits(db, clinic)
    code = await coupon_code(db, clinic, examination_id=clinic.examinations["FACIAL"].id)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    html = await scan(client, csrf, code)

    assert result_of(html) == "coupon_valid" and "Best Deal: acne facial" in html
    assert "For S*** R******** (code ending" not in html and "for S*** R******** (code ending" in html
    assert "Pays one Acne facial treatment on the visit&#39;s invoice." in html
    assert re.search(r'id="coupon-uses">1 of 1<', html)
    valid_from = today(clinic) - timedelta(days=1)
    assert f"{valid_from.day} {valid_from:%b %Y} to " in html  # dates as people write them
    options = re.findall(r'<option value="(\d+)"( selected)?>([^<]+)</option>', html)
    assert [(int(i), bool(chosen)) for i, chosen, _ in options] == [(consultation.id, False), (facial.id, True)]
    assert "14:00 · dr. Andi Wijaya · Acne facial treatment · checked in" in options[1][2]
    stored = (await db.execute(select(Coupon).where(Coupon.code_hint == code[-4:]))).scalar_one()
    assert stored.status == "active" and stored.uses == 0  # a scan changes nothing


async def test_a_coupon_redeemed_on_the_checked_in_visit_shows_on_its_invoice_and_can_be_undone(
    client: Client, db: AsyncSession
) -> None:
    clinic = await midday_clinic(db)
    _consultation, facial = await siti_visits(db, clinic)
    code = await coupon_code(db, clinic, examination_id=clinic.examinations["FACIAL"].id)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    form = {"csrf_token": csrf, "code": code, "branch": str(clinic.branch.id)}

    redeemed = await post_form(client, "/inbox/scanner/redeem", form | {"session_id": str(facial.id)})
    invoice_page = await (await client.get(f"/inbox/sessions/{facial.id}")).text()
    again = await scan(client, csrf, code.lower())

    assert result_of(redeemed) == "coupon_redeemed" and "IDR 350,000 off" in redeemed
    assert f'href="/inbox/sessions/{facial.id}#invoice"' in redeemed
    assert "Coupon: Best Deal: acne facial" in invoice_page
    assert "pays 1 × Acne facial treatment at 350,000" in invoice_page
    assert re.search(r'id="invoice-total">IDR 38,500<', invoice_page)  # the facial's 11 % tax is left to pay
    assert result_of(again) == "coupon_used" and re.search(r'id="coupon-uses">0 of 1<', again)
    stored = (await db.execute(select(Coupon).where(Coupon.code_hint == code[-4:]))).scalar_one()
    await db.refresh(stored)
    assert stored.redeemed_at is not None
    local = stored.redeemed_at.astimezone(ZoneInfo(clinic.branch.tz))
    shown = f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M}"
    assert f"This coupon was already redeemed ({shown})." in again and stored.redeemed_at.isoformat()[:16] not in again

    undone = await post_form(
        client, "/inbox/scanner/undo", form | {"redemption_id": redemption_of(again), "reason": "Wrong patient"}
    )
    invoice_after = await (await client.get(f"/inbox/sessions/{facial.id}")).text()

    assert result_of(undone) == "coupon_undone" and "undone" in undone and "(Wrong patient)" in undone
    assert "Coupon: Best Deal: acne facial" not in invoice_after
    assert re.search(r'id="invoice-total">IDR 388,500<', invoice_after)
    await db.refresh(stored)
    assert stored.status == "active" and stored.uses == 0
    trail = await db.execute(
        select(AuditEntry.action).where(AuditEntry.entity == "coupon", AuditEntry.entity_id == stored.id)
    )
    assert list(trail.scalars()) == ["coupon.issued", "coupon.redeemed", "coupon.redemption_undone"]


async def test_a_coupon_is_refused_on_a_visit_without_its_examination_or_of_another_patient(
    client: Client, db: AsyncSession
) -> None:
    clinic = await midday_clinic(db)
    consultation, _facial = await siti_visits(db, clinic)
    someone_else = await visit(db, clinic, at(clinic, 16), name="Ani Suryani")
    code = await coupon_code(db, clinic, examination_id=clinic.examinations["FACIAL"].id)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    form = {"csrf_token": csrf, "code": code, "branch": str(clinic.branch.id)}

    no_facial = await post_form(client, "/inbox/scanner/redeem", form | {"session_id": str(consultation.id)})
    not_hers = await post_form(client, "/inbox/scanner/redeem", form | {"session_id": str(someone_else.id)})

    assert result_of(no_facial) == "coupon_refused"
    assert "This coupon is for Acne facial treatment; the visit has none. Add it to the visit first." in no_facial
    assert result_of(not_hers) == "coupon_refused" and "This visit is another patient&#39;s" in not_hers
    stored = (await db.execute(select(Coupon).where(Coupon.code_hint == code[-4:]))).scalar_one()
    assert stored.status == "active" and stored.uses == 0


async def test_a_coupon_that_cannot_be_used_here_today_says_why(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    elsewhere = await midday_clinic(db, token_prefix="B")
    expired = await coupon_code(
        db, clinic, valid_from=today(clinic) - timedelta(days=60), valid_until=today(clinic) - timedelta(days=1)
    )
    theirs = await coupon_code(db, elsewhere, branch_id=elsewhere.branch.id)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    late = await scan(client, csrf, expired)
    wrong_place = await scan(client, csrf, theirs)

    assert result_of(late) == "coupon_expired" and "This coupon expired after" in late
    assert result_of(wrong_place) == "coupon_other_branch" and "Coupon for another branch" in wrong_place


async def test_patient_names_in_a_result_show_as_text(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    session = await visit(db, clinic, at(clinic, 13), name="<img src=x onerror=alert(1)> <b>Eka</b>")
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    html = await scan(client, csrf, session.booking_code)

    assert "<img src=x" not in html and "<b>Eka</b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; &lt;b&gt;Eka&lt;/b&gt;" in html


async def test_accepting_another_branchs_visit_by_id_is_refused(client: Client, db: AsyncSession) -> None:
    here = await midday_clinic(db)
    there = await midday_clinic(db, token_prefix="B")
    session = await visit(db, there, at(there, 13), accepted=False)
    csrf = await sign_in_page(client, db, "staff", branch_id=here.branch.id)

    response = await client.post(
        "/inbox/scanner/accept", data={"csrf_token": csrf, "session_id": str(session.id)},
        headers={"Referer": "/inbox/scanner"}, allow_redirects=False,
    )  # fmt: skip
    html = await (await client.get(response.headers["Location"])).text()

    assert f"There is no session {session.id}." in flash_of(html)
    await db.refresh(session)
    assert session.accepted is False


async def test_the_scanner_is_for_the_front_desk_and_checks_the_forms_token(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    session = await visit(db, clinic, at(clinic, 13))
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    forged = await client.post("/inbox/scanner", data={"code": session.booking_code, "csrf_token": "forged"})
    empty = await scan(client, csrf, "   ")
    page = await (await client.get("/inbox/scanner")).text()

    assert forged.status == 403
    assert "Scan a QR code or type the code first." in flash_of(empty)
    assert (await db.execute(select(QueueEntry).where(QueueEntry.session_id == session.id))).first() is None
    assert 'src="/static/qrscan.js"' in page and 'name="viewport" content="width=device-width' in page
    assert '<label for="code">Check-in or coupon code</label>' in page
    client.session.cookie_jar.clear()
    await sign_in_page(client, db, "doctor", branch_id=clinic.branch.id)
    refused = await client.get("/inbox/scanner")
    assert refused.status == 403


async def test_a_scanned_visit_shows_on_the_queue_board(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    session = await visit(db, clinic, at(clinic, 13), name="Fajar Nugroho")
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    await scan(client, csrf, checkin_content(session.booking_code))
    board = await (await client.get("/inbox/queue")).text()

    assert 'data-token="A-001"' in board and "Fajar Nugroho" in board
    stored = await db.get(Session, session.id)
    assert stored is not None and stored.status == "waiting"


async def test_a_coupon_on_a_visit_is_undone_from_its_invoice_after_a_confirmation(
    client: Client, db: AsyncSession
) -> None:
    clinic = await midday_clinic(db)
    _consultation, facial = await siti_visits(db, clinic)
    code = await coupon_code(db, clinic, examination_id=clinic.examinations["FACIAL"].id)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    form = {"csrf_token": csrf, "code": code, "branch": str(clinic.branch.id), "session_id": str(facial.id)}
    await post_form(client, "/inbox/scanner/redeem", form)
    page = await (await client.get(f"/inbox/sessions/{facial.id}")).text()
    undo = re.search(
        r'<form method="post" action="(/inbox/coupon-redemptions/\d+/undo)"[^>]*data-confirm="([^"]+)"', page
    )
    assert undo is not None and undo.group(2).startswith("Undo this coupon?")

    response = await client.post(
        undo.group(1), data={"csrf_token": csrf, "session_id": str(facial.id)},
        headers={"Referer": f"/inbox/sessions/{facial.id}"}, allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303 and response.headers["Location"] == f"/inbox/sessions/{facial.id}#invoice"
    after = await (await client.get(response.headers["Location"])).text()

    assert "Coupon Best Deal: acne facial undone" in flash_of(after)
    assert "Coupon: Best Deal: acne facial" not in after and "Undo coupon" not in after
    redemption = (await db.execute(select(CouponRedemption))).scalars().all()
    mine = [r for r in redemption if r.session_id == facial.id]
    assert [r.undo_reason for r in mine] == ["Undone from the visit's invoice"]


async def test_a_valid_coupon_whose_owner_has_no_visit_here_says_to_book_one_first(
    client: Client, db: AsyncSession
) -> None:
    clinic = await midday_clinic(db)
    code = await coupon_code(db, clinic)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    html = await scan(client, csrf, code)

    assert result_of(html) == "coupon_valid" and 'id="redeem-form"' not in html
    assert "has no visit today or coming up here that it can go on. Book the visit first" in html
