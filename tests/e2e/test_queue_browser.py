"""The waiting room in a real browser against the running demo clinic: reordering the queue board by dragging, and
checking a patient in by typing their QR code on the scanner page."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import Branch, Doctor, Examination, Occupancy, Patient, Room, Session, SessionLine
from booking_core.domain.actors import Actor
from booking_core.domain.codes import new_booking_code
from booking_core.domain.links import checkin_content
from booking_core.services import queue_actions
from devtools import harness
from tests.e2e.conftest import Stack, staff_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DESK = Actor(kind="staff", name="Reception", role="staff")
SCREENSHOT = Path(harness.ROOT) / "docs" / "screenshots" / "queue.png"


async def book_today(
    db: AsyncSession, patient: str, doctor: str, exam_code: str, room: str, at: time, *, phone: str | None = None
) -> Session:
    """A visit at Klinik Sehat Kemang today at local ``at``, accepted (as after the patient confirmed)."""
    branch = (await db.execute(select(Branch).where(Branch.code == "KMG"))).scalar_one()
    zone = ZoneInfo(branch.tz)
    person = (await db.execute(select(Patient).where(Patient.name == patient))).scalars().first()
    if person is None:
        person = Patient(name=patient, phone_e164=phone, language="id")
        db.add(person)
        await db.flush()
    doc = (await db.execute(select(Doctor).where(Doctor.name == doctor))).scalar_one()
    exam = (await db.execute(select(Examination).where(Examination.code == exam_code))).scalar_one()
    place = (await db.execute(select(Room).where(Room.branch_id == branch.id, Room.name == room))).scalar_one()
    starts = datetime.combine(datetime.now(zone).date(), at, zone).astimezone(UTC)
    ends = starts + timedelta(minutes=exam.duration_min)
    occupancy = Occupancy(
        branch_id=branch.id, doctor_id=doc.id, room_id=place.id, during=Range(starts, ends, bounds="[)"),
        kind="session", active=True,
    )  # fmt: skip
    db.add(occupancy)
    await db.flush()
    session = Session(
        booking_code=new_booking_code(), occupancy_id=occupancy.id, branch_id=branch.id, patient_id=person.id,
        doctor_id=doc.id, room_id=place.id, starts_at=starts, ends_at=ends, status="waiting", accepted=True,
    )  # fmt: skip
    db.add(session)
    await db.flush()
    db.add(SessionLine(session_id=session.id, kind="examination", examination_id=exam.id, name=exam.name,
                       unit_price=exam.price, quantity=1, taxable=exam.taxable))  # fmt: skip
    await db.commit()
    return session


async def waiting_tokens(page: Page) -> list[str]:
    tokens: list[str] = await page.locator("#waiting-list li").evaluate_all("els => els.map(e => e.dataset.token)")
    return tokens


async def test_the_desk_reorders_the_queue_by_dragging_and_the_order_stays(browser: Browser, stack: Stack) -> None:
    async with make_sessionmaker(stack.engine)() as db:
        morning = [
            ("Siti Rahmawati", "dr. Andi Wijaya", "GP", "Consultation 1", time(9, 0)),
            ("Budi Hartono", "dr. Andi Wijaya", "GP", "Consultation 1", time(9, 30)),
            ("Dewi Anggraini", "drg. Sari Lestari", "DENTAL", "Dental suite", time(10, 0)),
            ("Agus Setiawan", "dr. Andi Wijaya", "GP", "Consultation 1", time(10, 0)),
            ("Rizky Pratama", "dr. Maya Putri, Sp.KK", "SKIN", "Consultation 2", time(10, 30)),
        ]
        visits = [await book_today(db, *spec, phone="+6281399990001") for spec in morning]
        now = datetime.now(UTC)
        # Arrivals spread over the last 40 minutes, or over what has passed of the clinic's day when the run starts
        # just after its midnight: a patient checks in on the day of the visit.
        jakarta = ZoneInfo("Asia/Jakarta")  # Klinik Sehat Kemang's zone
        local_midnight = datetime.combine(now.astimezone(jakarta).date(), time(0), jakarta)
        span = min(timedelta(minutes=40), now - local_midnight)
        for fraction, visit in zip((1.0, 0.8, 0.625, 0.3, 0.125), visits, strict=True):
            await queue_actions.check_in(db, visit.id, actor=DESK, arrived_at=now - span * fraction)
            await db.commit()
        maya = visits[-1].doctor_id
        await queue_actions.call_next(db, visits[-1].branch_id, maya, actor=DESK)
        await db.commit()
        branch_id = visits[0].branch_id

    page = await staff_page(browser, stack, "staff", path="/inbox/queue")
    await page.goto(f"/inbox/queue?branch={branch_id}")
    await expect(page.get_by_role("heading", name="Queue · Klinik Sehat Kemang")).to_be_visible()
    assert await waiting_tokens(page) == ["A-001", "A-002", "A-003", "A-004"]
    await expect(page.locator("#in-progress")).to_contain_text("Rizky Pratama")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Agus is in pain: the receptionist drags him to the top.
    await page.locator('#waiting-list li[data-token="A-004"]').drag_to(
        page.locator('#waiting-list li[data-token="A-001"]')
    )

    # The drop is saved by a request to the gateway: on a machine busy with other suites that can take a while.
    await expect(page.locator("#flash")).to_contain_text("A-004 moved.", timeout=20_000)
    assert await waiting_tokens(page) == ["A-004", "A-001", "A-002", "A-003"]
    await expect(page.locator("#calling-order")).to_contain_text("manual order")
    await page.reload()
    assert await waiting_tokens(page) == ["A-004", "A-001", "A-002", "A-003"]
    await page.goto(f"/inbox/queue?branch={branch_id}")  # the board's own default now is the dragged order
    assert await waiting_tokens(page) == ["A-004", "A-001", "A-002", "A-003"]

    # Keyboard users get the same with the buttons: Siti moves back up past Agus.
    await page.get_by_role("button", name="Move A-001 up").click()
    await expect(page.locator("#flash")).to_contain_text("A-001 moved.")
    assert await waiting_tokens(page) == ["A-001", "A-004", "A-002", "A-003"]


async def test_the_desk_checks_a_patient_in_by_typing_the_qr_code(browser: Browser, stack: Stack) -> None:
    async with make_sessionmaker(stack.engine)() as db:
        visit = await book_today(
            db, "Putri Ayu Lestari", "dr. Andi Wijaya", "GP", "Consultation 1", time(11, 0), phone="+6281399990002"
        )

    board = await staff_page(browser, stack, "staff", path="/inbox/queue")
    await board.goto(f"/inbox/queue?branch={visit.branch_id}")
    await expect(board.get_by_text("Nobody is waiting")).to_be_visible()
    await expect(board.locator("html[data-live=on]")).to_have_count(1)  # the board listens for changes

    page = await board.context.new_page()  # the scanner, on the desk's phone
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto("/inbox/scanner")
    await page.get_by_label("Branch (this desk)").select_option(label="Klinik Sehat Kemang")
    await page.get_by_label("Check-in or coupon code").fill(checkin_content(visit.booking_code))
    await page.get_by_role("button", name="Check code").click()

    result = page.locator("[data-result]")
    await expect(result).to_have_attribute("data-result", "checked_in")
    await expect(result.get_by_role("heading", name="Checked in")).to_be_visible()
    await expect(page.locator("#result-token")).to_have_text("A-001")
    await expect(result).to_contain_text("Putri Ayu Lestari")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sideways at phone width

    # The same code again: already checked in, same token.
    await page.get_by_label("Check-in or coupon code").fill(visit.booking_code.lower())
    await page.get_by_role("button", name="Check code").click()
    await expect(page.locator("[data-result]")).to_have_attribute("data-result", "already_checked_in")
    await expect(page.locator("#result-token")).to_have_text("A-001")

    # The board, open on the desk's screen all along, shows the patient without a reload.
    arrived = board.locator('#waiting-list li[data-token="A-001"]')
    await expect(arrived).to_contain_text("Putri Ayu Lestari")
    await expect(arrived).to_contain_text("Next for dr. Andi Wijaya")
