"""The front desk's QR scanner (/inbox/scanner): check-in QR codes, typed booking codes and Best Deal coupons."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.tables import AuditEntry, QueueEntry, Session
from booking_core.domain.links import checkin_content
from booking_core.services import coupons
from devtools.builders import Clinic
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


async def test_a_best_deal_coupon_is_redeemed_once(client: Client, db: AsyncSession) -> None:
    clinic = await midday_clinic(db)
    code = await coupon_code(db, clinic)
    csrf = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    first = await scan(client, csrf, code)
    second = await scan(client, csrf, code.lower())

    assert result_of(first) == "coupon_redeemed" and "Best Deal: acne facial" in first
    assert "For S*** R******** (code ending" in first
    assert result_of(second) == "coupon_used" and "This coupon was already redeemed" in second
    redeemed = await db.execute(select(AuditEntry).where(AuditEntry.action == "coupon.redeemed"))
    assert len([a for a in redeemed.scalars() if a.data.get("code_hint") == code[-4:]]) == 1


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
