"""The session page: the visit, its examination lines with the invoice worked out line by line, and its lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_core.db.tables import AuditEntry, Invoice, Patient, QueueEntry, Session, SessionLine, Staff
from booking_core.domain.actors import Actor
from booking_core.domain.lifecycle import NOT_ACCEPTED_MESSAGE
from booking_core.services import booking, session_lines
from booking_core.services.errors import Invalid
from devtools.builders import Clinic, build_clinic, insert_session, next_weekday, today_at, unique
from tests.integration.queue_pages import flash_of
from tests.integration.staff_pages import csrf_of, new_code, sign_in_page

Client = TestClient[object, object]
JAKARTA = ZoneInfo("Asia/Jakarta")
DESK = Actor(kind="staff", name="Reception", role="staff")


async def _book(db: AsyncSession, clinic: Clinic, start: datetime, examination: str = "GP") -> Session:
    """A visit booked the way the front desk books (with its draft invoice)."""
    session = await booking.book(
        db, actor=DESK, branch_id=clinic.branch.id, patient_id=clinic.patients["siti"].id,
        examination_ids=[clinic.examinations[examination].id], start=start,
    )  # fmt: skip
    await db.commit()
    return session


async def _fresh(db: AsyncSession, table: type[Any], row_id: int) -> Any:
    async with async_sessionmaker(db.bind, expire_on_commit=False)() as fresh:
        return await fresh.get(table, row_id)


async def _rows(db: AsyncSession, statement: Any) -> list[Any]:
    async with async_sessionmaker(db.bind, expire_on_commit=False)() as fresh:
        return list((await fresh.execute(statement)).scalars())


async def _actions(db: AsyncSession, session_id: int) -> list[str]:
    found = await _rows(
        db, select(AuditEntry).where(AuditEntry.entity == "session", AuditEntry.entity_id == session_id)
    )
    return [entry.action for entry in sorted(found, key=lambda e: e.id)]


async def _sign_in_as_doctor(client: Client, db: AsyncSession, doctor_id: int) -> str:
    """A doctor's sign-in, linked to their doctor record (as an admin would link it)."""
    name = unique("dr")
    code = await new_code(db, "doctor", name=name)
    token = csrf_of(await (await client.get("/login")).text())
    signed = await client.post("/login", data={"code": code, "csrf_token": token}, allow_redirects=False)
    assert signed.status == 303
    await db.execute(update(Staff).where(Staff.name == name).values(doctor_id=doctor_id))
    await db.commit()
    return token


def _post(client: Client, session_id: int, action: str, token: str, **fields: str) -> Any:
    page = str(client.make_url(f"/inbox/sessions/{session_id}"))
    return client.post(
        f"/inbox/sessions/{session_id}/{action}", data={"csrf_token": token, **fields}, headers={"Referer": page}
    )


async def test_the_page_shows_the_visit_and_how_each_invoice_line_is_worked_out(
    client: Client, db: AsyncSession
) -> None:
    clinic = await build_clinic(db)
    visit = await _book(db, clinic, next_weekday(0, hour=10), "FACIAL")
    await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    page = await client.get(f"/inbox/sessions/{visit.id}")
    html = await page.text()
    assert page.status == 200
    for shown in ("Siti Rahmawati", "dr. Andi Wijaya", "Consultation 1", visit.booking_code, "waiting",
                  '<span class="badge accepted">accepted</span>', "Acne facial treatment"):  # fmt: skip
        assert shown in html, shown
    # The front desk booked it: accepted by booking it, never "not accepted yet" with a second Accept to press.
    assert "not accepted yet" not in html and f'action="/inbox/sessions/{visit.id}/accept"' not in html
    assert "IDR 350,000" in html and "IDR 38,500" in html  # the price, then 11 % tax on a taxable line
    assert 'id="invoice-total">IDR 388,500<' in html
    assert 'class="steps"' in html and "Tax" in html


async def test_adding_recounting_and_removing_lines_keeps_the_invoice_in_step(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    visit = await _book(db, clinic, next_weekday(1, hour=10))
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)

    added = await _post(client, visit.id, "lines", token, examination_id=str(clinic.examinations["FACIAL"].id),
                        quantity="1")  # fmt: skip
    html = await added.text()
    assert "Added 1 × Acne facial treatment" in html
    assert 'id="invoice-total">IDR 538,500<' in html  # 150,000 + 350,000 + 11 % of 350,000
    (facial,) = await _rows(
        db, select(SessionLine).where(SessionLine.session_id == visit.id, SessionLine.name == "Acne facial treatment")
    )

    recounted = await _post(client, visit.id, f"lines/{facial.id}/quantity", token, quantity="2")
    assert 'id="invoice-total">IDR 927,000<' in await recounted.text()
    refused = await _post(client, visit.id, f"lines/{facial.id}/quantity", token, quantity="0")
    assert "must be a whole number from 1 to 999" in await refused.text()

    removed = await _post(client, visit.id, f"lines/{facial.id}/remove", token)
    assert 'id="invoice-total">IDR 150,000<' in await removed.text()
    (gp,) = await _rows(db, select(SessionLine).where(SessionLine.session_id == visit.id))
    last = await _post(client, visit.id, f"lines/{gp.id}/remove", token)
    assert "only examination; cancel the session instead" in await last.text()
    assert (await _actions(db, visit.id))[-3:] == ["session.line_added", "session.line_changed", "session.line_removed"]
    invoice = (await _rows(db, select(Invoice).where(Invoice.session_id == visit.id)))[0]
    assert invoice.patient_pays == 150000


async def test_recounting_a_line_to_the_same_number_changes_nothing(db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    visit = await _book(db, clinic, next_weekday(2, hour=10))
    (line,) = await _rows(db, select(SessionLine).where(SessionLine.session_id == visit.id))
    before = await _actions(db, visit.id)
    same = await session_lines.set_line_quantity(db, visit.id, line.id, 1, actor=DESK)
    await db.commit()
    assert same.quantity == 1 and await _actions(db, visit.id) == before
    try:
        await session_lines.set_line_quantity(db, visit.id, line.id, 1000, actor=DESK)
    except Invalid as exc:
        assert exc.code == "invalid_quantity"
    else:
        raise AssertionError("a quantity of 1000 was accepted")
    finally:
        await db.rollback()


async def test_only_the_changes_the_lifecycle_allows_are_offered_and_they_work(
    client: Client, db: AsyncSession
) -> None:
    clinic = await build_clinic(db)
    later = await _book(db, clinic, next_weekday(3, hour=10))  # booked (and so accepted) by the desk, days away
    token = await sign_in_page(client, db, "admin")
    waiting = await (await client.get(f"/inbox/sessions/{later.id}")).text()
    for offered in ("/cancel", "/no-show"):
        assert f'action="/inbox/sessions/{later.id}{offered}"' in waiting, offered
    for refused in ("/accept", "/start", "/complete", "/check-in", "/delete"):  # delete: the owner's alone
        assert f"/inbox/sessions/{later.id}{refused}" not in waiting, refused
    assert "Check-in opens on the day of the visit." in waiting
    assert "it can be started on its day." in waiting
    early = await (await _post(client, later.id, "start", token)).text()  # a stale page, or another tab
    assert "it can be started on its day." in flash_of(early)
    assert (await _fresh(db, Session, later.id)).status == "waiting"

    visit = await insert_session(db, clinic, starts_at=today_at(10), accepted=True)
    waiting = await (await client.get(f"/inbox/sessions/{visit.id}")).text()
    assert f'action="/inbox/sessions/{visit.id}/start"' in waiting
    opened = await (await _post(client, visit.id, "start", token)).text()
    assert "The visit has started" in opened
    assert f"/inbox/sessions/{visit.id}/complete" in opened and f"/inbox/sessions/{visit.id}/start" not in opened
    done = await (await _post(client, visit.id, "complete", token)).text()
    assert "completed and its invoice finalised" in done
    assert "This visit is completed; nothing more happens to it." in done
    assert f"/inbox/sessions/{visit.id}/lines" not in done  # lines no longer change
    assert (await _fresh(db, Session, visit.id)).status == "completed"
    invoice = (await _rows(db, select(Invoice).where(Invoice.session_id == visit.id)))[0]
    assert invoice.status == "final"
    again = await _post(client, visit.id, "start", token)
    assert "a completed session cannot be opened" in await again.text()


async def test_cancelling_needs_a_reason_and_a_no_show_is_one(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    first = await _book(db, clinic, next_weekday(4, hour=10))
    second = await _book(db, clinic, next_weekday(4, hour=11))
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    vague = await _post(client, first.id, "cancel", token, reason="other", note="")
    assert "needs a note" in await vague.text()
    assert (await _fresh(db, Session, first.id)).status == "waiting"
    cancelled = await _post(client, first.id, "cancel", token, reason="patient_request", note="Moving to Bandung")
    assert "The visit is cancelled" in await cancelled.text()
    row = await _fresh(db, Session, first.id)
    assert (row.status, row.cancel_reason, row.cancel_note) == ("cancelled", "patient_request", "Moving to Bandung")
    await _post(client, second.id, "no-show", token)
    assert (await _fresh(db, Session, second.id)).cancel_reason == "no_show"


async def test_accepting_and_checking_in_a_visit_today(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    now = datetime.now(UTC)
    start = now + timedelta(minutes=2)
    if start.astimezone(JAKARTA).date() != now.astimezone(JAKARTA).date():
        start = now - timedelta(minutes=20)  # just before local midnight: a visit already under way today
    visit = await insert_session(db, clinic, starts_at=start)  # the patient's own booking, not accepted yet
    token = await sign_in_page(client, db, "staff", branch_id=clinic.branch.id)
    page = await (await client.get(f"/inbox/sessions/{visit.id}")).text()
    assert f'action="/inbox/sessions/{visit.id}/check-in"' not in page  # accept first
    assert "Start visit</button>" not in page  # (just before local midnight the explicit back-dated form may show)
    assert "Check-in opens once the visit is accepted" in page and NOT_ACCEPTED_MESSAGE in page
    refused = await (await _post(client, visit.id, "check-in", token)).text()  # a stale page
    assert flash_of(refused) == NOT_ACCEPTED_MESSAGE
    assert await _rows(db, select(QueueEntry).where(QueueEntry.session_id == visit.id)) == []
    accepted = await _post(client, visit.id, "accept", token)
    html = await accepted.text()
    assert "Accepted; the patient is sent their check-in QR." in html
    assert f'action="/inbox/sessions/{visit.id}/check-in"' in html
    assert (await _fresh(db, Session, visit.id)).accepted is True
    checked = await (await _post(client, visit.id, "check-in", token)).text()
    (entry,) = await _rows(db, select(QueueEntry).where(QueueEntry.session_id == visit.id))
    assert f"Checked in: queue number {entry.token}" in checked
    assert f"<strong>{entry.token}</strong>" in checked
    assert f'action="/inbox/sessions/{visit.id}/check-in"' not in checked
    assert "session.accepted" in await _actions(db, visit.id)


async def test_only_the_owner_deletes_a_visit_and_only_with_the_typed_phrase(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    visit = await _book(db, clinic, next_weekday(0, hour=15))
    token = await sign_in_page(client, db, "admin")
    refused = await _post(client, visit.id, "delete", token, confirm=f"DELETE {visit.booking_code}")
    assert "Only an owner may delete a session permanently." in await refused.text()
    assert await _fresh(db, Session, visit.id) is not None

    client.session.cookie_jar.clear()
    token = await sign_in_page(client, db, "owner")
    page = await (await client.get(f"/inbox/sessions/{visit.id}")).text()
    assert f"DELETE {visit.booking_code}" in page
    wrong = await _post(client, visit.id, "delete", token, confirm="DELETE")
    assert "Deleting a session cannot be undone" in await wrong.text()
    assert await _fresh(db, Session, visit.id) is not None
    deleted = await _post(client, visit.id, "delete", token, confirm=f"DELETE {visit.booking_code}")
    html = await deleted.text()
    assert f"Session {visit.booking_code} deleted for good. Its invoice is kept in the archive." in html
    assert str(deleted.url.path) == "/inbox/calendar"
    assert await _fresh(db, Session, visit.id) is None
    (kept,) = await _rows(db, select(Invoice).where(Invoice.snapshot["booking_code"].astext == visit.booking_code))
    assert kept.session_id is None and kept.archived_at is not None and kept.status == "void"
    deletions = await _rows(db, select(AuditEntry).where(AuditEntry.action == "session.deleted",
                                                          AuditEntry.entity_id == visit.id))  # fmt: skip
    assert len(deletions) == 1


async def test_a_doctor_works_on_their_own_visits_only(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    mine = await insert_session(db, clinic, starts_at=today_at(11), accepted=True)
    theirs = await _book(db, clinic, next_weekday(1, hour=11), "DENTAL")  # drg. Sari's
    token = await _sign_in_as_doctor(client, db, clinic.doctors["andi"].id)
    page = await client.get(f"/inbox/sessions/{mine.id}")
    html = await page.text()
    assert page.status == 200
    assert f"/inbox/sessions/{mine.id}/start" in html
    for desk_only in ("/cancel", "/no-show", "/accept", "/delete"):
        assert f"/inbox/sessions/{mine.id}{desk_only}" not in html, desk_only
    assert (await client.get(f"/inbox/sessions/{theirs.id}")).status == 403
    refused = await _post(client, mine.id, "cancel", token, reason="patient_request")
    assert refused.status == 403
    assert (await _fresh(db, Session, mine.id)).status == "waiting"
    started = await _post(client, mine.id, "start", token)
    assert "The visit has started" in await started.text()


async def test_another_branchs_visit_is_not_found(client: Client, db: AsyncSession) -> None:
    mine, theirs = await build_clinic(db), await build_clinic(db)
    visit = await _book(db, theirs, next_weekday(2, hour=11))
    token = await sign_in_page(client, db, "staff", branch_id=mine.branch.id)
    assert (await client.get(f"/inbox/sessions/{visit.id}")).status == 404
    assert (await client.get("/inbox/sessions/999999999")).status == 404
    assert (await client.get("/inbox/sessions/99999999999")).status == 404  # no row has so large an id
    tried = await client.post(
        f"/inbox/sessions/{visit.id}/lines",
        data={"csrf_token": token, "examination_id": str(theirs.examinations["FACIAL"].id), "quantity": "1"},
    )
    assert f"There is no session {visit.id}." in await tried.text()
    assert len(await _rows(db, select(SessionLine).where(SessionLine.session_id == visit.id))) == 1


async def test_a_post_without_the_pages_token_adds_nothing(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    visit = await _book(db, clinic, next_weekday(3, hour=11))
    await sign_in_page(client, db, "owner")
    forged = await client.post(
        f"/inbox/sessions/{visit.id}/lines",
        data={"csrf_token": "nope", "examination_id": str(clinic.examinations["FACIAL"].id), "quantity": "1"},
    )
    assert forged.status == 403
    deleted = await client.post(f"/inbox/sessions/{visit.id}/delete", data={"confirm": f"DELETE {visit.booking_code}"})
    assert deleted.status == 403
    assert len(await _rows(db, select(SessionLine).where(SessionLine.session_id == visit.id))) == 1
    assert await _fresh(db, Session, visit.id) is not None


async def test_a_patients_name_is_shown_as_text(client: Client, db: AsyncSession) -> None:
    clinic = await build_clinic(db)
    await db.execute(
        update(Patient).where(Patient.id == clinic.patients["siti"].id).values(name="<b>Siti</b><script>x()</script>")
    )
    await db.commit()
    visit = await _book(db, clinic, next_weekday(4, hour=14))
    await sign_in_page(client, db, "owner")
    html = await (await client.get(f"/inbox/sessions/{visit.id}")).text()
    assert "&lt;b&gt;Siti&lt;/b&gt;&lt;script&gt;x()&lt;/script&gt;" in html
    assert "<script>x()</script>" not in html
