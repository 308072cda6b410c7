"""The visit's own rules in a real browser (issue 13): the session page never offers to start a visit nobody accepted
or one days away, and says why; a past visit is entered back-dated only through its explicit form, with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.ext.asyncio import AsyncSession

from booking_core.db.engine import make_sessionmaker
from booking_core.db.tables import (
    AuditEntry,
    Branch,
    Doctor,
    Examination,
    Occupancy,
    Patient,
    Room,
    Session,
    SessionLine,
)
from booking_core.domain.codes import new_booking_code
from booking_core.domain.lifecycle import NOT_ACCEPTED_MESSAGE
from tests.e2e.conftest import Stack, staff_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def patients_booking(db: AsyncSession, name: str, day_offset: int, at: time) -> Session:
    """A GP visit with dr. Andi at Klinik Sehat Kemang that the patient booked themselves (not accepted yet)."""
    branch = (await db.execute(select(Branch).where(Branch.code == "KMG"))).scalar_one()
    zone = ZoneInfo(branch.tz)
    person = Patient(name=name, phone_e164=None, language="en")
    db.add(person)
    doc = (await db.execute(select(Doctor).where(Doctor.name == "dr. Andi Wijaya"))).scalar_one()
    exam = (await db.execute(select(Examination).where(Examination.code == "GP"))).scalar_one()
    room = (
        await db.execute(select(Room).where(Room.branch_id == branch.id, Room.name == "Consultation 1"))
    ).scalar_one()
    day: date = datetime.now(zone).date() + timedelta(days=day_offset)
    starts = datetime.combine(day, at, zone).astimezone(UTC)
    ends = starts + timedelta(minutes=exam.duration_min)
    occupancy = Occupancy(branch_id=branch.id, doctor_id=doc.id, room_id=room.id,
                          during=Range(starts, ends, bounds="[)"), kind="session", active=True)  # fmt: skip
    db.add(occupancy)
    await db.flush()
    session = Session(
        booking_code=new_booking_code(), occupancy_id=occupancy.id, branch_id=branch.id, patient_id=person.id,
        doctor_id=doc.id, room_id=room.id, starts_at=starts, ends_at=ends, status="waiting", accepted=False,
    )  # fmt: skip
    db.add(session)
    await db.flush()
    db.add(SessionLine(session_id=session.id, kind="examination", examination_id=exam.id, name=exam.name,
                       unit_price=exam.price, quantity=1, taxable=exam.taxable))  # fmt: skip
    await db.commit()
    return session


async def test_staff_are_told_why_a_visit_cannot_start_and_back_date_a_past_one_explicitly(
    browser: Browser, stack: Stack
) -> None:
    async with make_sessionmaker(stack.engine)() as db:
        ahead = await patients_booking(db, "Wulan Sari", 2, time(19, 30))  # the reported case: two days before it
        past = await patients_booking(db, "Hendra Gunawan", -1, time(19, 30))  # a paper day sheet, entered late

    page = await staff_page(browser, stack, "staff", path=f"/inbox/sessions/{ahead.id}")
    blocked = page.locator("#step-blocked")
    await expect(blocked).to_contain_text(NOT_ACCEPTED_MESSAGE)
    await expect(page.get_by_role("button", name="Start visit")).to_have_count(0)
    await expect(page.locator("#visit-title .badge.new")).to_have_text("not accepted yet")
    await expect(page.get_by_text("Enter back-dated…")).to_have_count(0)  # its time has not come

    await page.get_by_role("button", name="Accept", exact=True).click()
    await expect(page.locator("#flash")).to_contain_text("Accepted")
    await expect(blocked).to_contain_text("it can be started on its day.")  # accepted, but two days away
    await expect(page.get_by_role("button", name="Start visit")).to_have_count(0)

    # A page left open from before (another tab) still gets a clear refusal, not a started visit.
    token = await page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert token
    await page.evaluate(
        """([url, token]) => {
            const form = document.createElement("form");
            form.method = "post"; form.action = url;
            const field = document.createElement("input");
            field.type = "hidden"; field.name = "csrf_token"; field.value = token;
            form.appendChild(field); document.body.appendChild(form); form.submit();
        }""",
        [f"/inbox/sessions/{ahead.id}/start", token],
    )
    await expect(page.locator("#flash")).to_contain_text("it can be started on its day.")
    await expect(page.locator("#visit-title")).to_contain_text("waiting")

    # Yesterday's visit nobody accepted: the explicit back-dated entry, with a reason, is the way to record it.
    await page.goto(f"/inbox/sessions/{past.id}")
    await expect(page.locator("#step-blocked")).to_contain_text(NOT_ACCEPTED_MESSAGE)
    await page.get_by_text("Enter back-dated…").click()
    await page.get_by_label("Why is it entered back-dated?").fill("From the paper day sheet")
    await page.get_by_role("button", name="Start back-dated").click(force=True)  # the open <details> reflows
    await expect(page.locator("#flash")).to_contain_text("Entered back-dated")
    await expect(page.locator("#visit-title")).to_contain_text("open")
    await expect(page.get_by_role("button", name="Complete visit")).to_be_visible()

    async with make_sessionmaker(stack.engine)() as db:
        stored = await db.get(Session, past.id)
        started = (
            await db.execute(
                select(AuditEntry).where(AuditEntry.action == "session.started", AuditEntry.entity_id == past.id)
            )
        ).scalar_one()
        still = await db.get(Session, ahead.id)
    assert stored is not None and stored.started_at == past.starts_at
    assert (started.data["backdated"], started.data["reason"]) == (True, "From the paper day sheet")
    assert still is not None and (still.status, still.accepted) == ("waiting", True)
